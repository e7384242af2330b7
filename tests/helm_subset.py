"""Render Flowloom's Helm chart (deploy/helm/flowloom) without helm, for the tests.

There is no helm binary here. The chart's templates are kept to a subset of Go templates that this
module implements exactly, and it refuses anything else (so a template that grows `include`,
`toYaml`, `range`, ... fails the tests instead of being rendered wrongly):

- `{{ .Values.a.b }}`, `{{ .Release.Name }}`, `{{ .Release.Namespace }}`, `{{ .Chart.Name }}`,
  `{{ .Chart.Version }}`, `{{ .Chart.AppVersion }}`, each optionally piped to `quote`;
- `{{ if .Values.a.b }}` ... `{{ end }}` (Go's truthiness: false, 0, "", empty lists/maps and a
  missing value are false);
- the `{{-` and `-}}` trim markers (all whitespace, newlines included, before or after the action).

A reference to a value that does not exist is an error here (helm would print `<no value>`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
PATH = r"\.(?:Values|Release|Chart)(?:\.[A-Za-z_][A-Za-z0-9_]*)+"
OUTPUT = re.compile(rf"^({PATH})(?:\s*\|\s*(quote))?$")
IF = re.compile(rf"^if\s+({PATH})$")


class TemplateError(ValueError):
    """A template uses something outside the subset, or names a missing value."""


def _lookup(path: str, scope: dict[str, Any], *, required: bool) -> Any:
    node: Any = scope
    for part in path.lstrip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            if required:
                raise TemplateError(f"{path} is not defined")
            return None
        node = node[part]
    return node


def _print(value: Any, quote: bool) -> str:
    if isinstance(value, (dict, list)):
        raise TemplateError(f"cannot print a {type(value).__name__} without toYaml (not supported)")
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = ""
    else:
        text = str(value)
    return json.dumps(text) if quote else text  # Go's %q and JSON agree on printable text


def _truthy(value: Any) -> bool:
    return bool(value)  # None, False, 0, "", [], {} are false, as in Go templates


def render(text: str, scope: dict[str, Any], name: str = "template") -> str:
    """The template `text` rendered with `scope` ({"Values":..., "Release":..., "Chart":...})."""
    pieces: list[tuple[str, str]] = []  # ("text", s) or ("action", body)
    pos = 0
    for match in ACTION.finditer(text):
        before = text[pos : match.start()]
        if match.group(1):
            before = before.rstrip(" \t\r\n")
        pieces.append(("text", before))
        pieces.append(("action", match.group(2)))
        pos = match.end()
        if match.group(3):
            rest = text[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\r\n"))
    pieces.append(("text", text[pos:]))
    if "{{" in "".join(p for kind, p in pieces if kind == "text"):
        raise TemplateError(f"{name}: an unclosed or malformed action")

    out: list[str] = []
    stack: list[bool] = []  # whether each enclosing `if` block is being output
    for kind, piece in pieces:
        active = all(stack)
        if kind == "text":
            if active:
                out.append(piece)
            continue
        if (m := IF.match(piece)) is not None:
            stack.append(_truthy(_lookup(m.group(1), scope, required=False)))
        elif piece == "end":
            if not stack:
                raise TemplateError(f"{name}: `end` without `if`")
            stack.pop()
        elif (m := OUTPUT.match(piece)) is not None:
            if active:
                out.append(_print(_lookup(m.group(1), scope, required=True), m.group(2) == "quote"))
        else:
            raise TemplateError(f"{name}: `{{{{ {piece} }}}}` is outside the supported template subset")
    if stack:
        raise TemplateError(f"{name}: `if` without `end`")
    return "".join(out)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_chart(
    chart_dir: Path, overrides: dict[str, Any] | None = None, release: str = "flowloom"
) -> list[dict[str, Any]]:
    """Every manifest the chart renders to (like `helm template`), parsed, with values overridden."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    values = _merge(yaml.safe_load((chart_dir / "values.yaml").read_text()), overrides or {})
    scope = {
        "Values": values,
        "Release": {"Name": release, "Namespace": "default"},
        "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
    }
    manifests = []
    for template in sorted((chart_dir / "templates").glob("*.yaml")):
        rendered = render(template.read_text(), scope, template.name)
        manifests.extend(doc for doc in yaml.safe_load_all(rendered) if doc)
    return manifests

"""What the side panel shows of a selected edge (condition, label, error output) and of a node's
behaviour (retries with backoff, timeout, on-error, visit limit), and how typed text becomes a
definition value. Every check is the engine's: the definition model, check_expression, the
reference check of engine.expression_paths and engine.failure_policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pydantic
import reflex as rx

from app.pages.editor.graph import WorkingGraph
from components.config_form import UNSET, FormField, InputError, build_fields, parse_input
from engine.definition import ERROR_PORT, EdgeSpec, NodeSpec, RetryPolicy, WorkflowDefinition
from engine.errors import DefinitionError
from engine.expression_paths import condition_suggestions, reference_problems
from engine.expressions import check_expression
from engine.failure_policy import on_error_problem

SHOWN_SUGGESTIONS = 8
RETRY_FIELDS = ("max_attempts", "backoff_s", "backoff_factor", "max_backoff_s")
# The on-error select's words, and what each means in the definition.
ON_ERROR_CHOICES = {
    "Workflow default": None,
    "Take the error branch": "branch",
    "Fail the run": "fail",
}
_TOKEN = re.compile(r"[A-Za-z_][\w.]*$")


@dataclass
class EdgeForm:
    """The selected edge as the side panel shows it."""

    id: str = ""
    source: str = ""
    source_port: str = ""
    target: str = ""
    target_port: str = ""
    label: str = ""
    condition: str = ""
    is_error: bool = False
    condition_error: str = ""
    condition_warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)


def _definition(graph: WorkingGraph) -> WorkflowDefinition | None:
    try:
        return graph.to_definition()
    except DefinitionError:
        return None


def typed_token(text: str) -> str:
    """The dotted name being typed at the end of `text` ("output == steps.fe" -> "steps.fe")."""
    found = _TOKEN.search(text)
    return found.group(0) if found else ""


def complete(text: str, suggestion: str) -> str:
    """`text` with the name being typed at its end replaced by `suggestion`."""
    token = typed_token(text)
    return text[: len(text) - len(token)] + suggestion


class _PortNames(Mapping[str, list[str]]):
    """Node id -> its output port names, worked out only for the nodes asked about (a big graph)."""

    def __init__(self, graph: WorkingGraph) -> None:
        self.graph = graph

    def __getitem__(self, node_id: str) -> list[str]:
        names = self.graph.output_port_names(node_id)
        if names is None:
            raise KeyError(node_id)
        return names

    def __iter__(self) -> Iterator[str]:
        return (n["id"] for n in self.graph.nodes)

    def __len__(self) -> int:
        return len(self.graph.nodes)


def edge_form(graph: WorkingGraph, edge_id: str) -> EdgeForm:
    """The side panel's form of edge `edge_id`, its condition checked and completions offered."""
    raw = graph.edge(edge_id)
    if raw is None:
        return EdgeForm()
    condition = raw.get("condition") or ""
    form = EdgeForm(
        id=raw["id"], source=raw["source"], source_port=raw.get("source_port", "out"), target=raw["target"],
        target_port=raw.get("target_port", "in"), label=raw.get("label") or "", condition=condition,
        is_error=raw.get("source_port") == ERROR_PORT,
    )  # fmt: skip
    defn = _definition(graph)
    if defn is None:
        return form
    edge = EdgeSpec.model_validate({**raw, "condition": condition or None})
    if condition.strip():
        form.condition_error = check_expression(condition) or ""
        if not form.condition_error:
            form.condition_warnings = reference_problems(
                condition, defn, edge, graph.output_port_names(edge.source)
            )
    ports = _PortNames(graph)
    token = typed_token(condition)
    offered = [s for s in condition_suggestions(defn, edge, ports) if s.startswith(token) and s != token]
    form.suggestions = offered[:SHOWN_SUGGESTIONS]
    return form


def condition_value(text: str) -> str | None:
    """The definition's condition for what was typed: None for an empty field."""
    return text if text.strip() else None


# Node behaviour


@cache
def _behaviour_schema(mode: str) -> dict[str, Any]:
    """The fields of the behaviour form with the engine's own constraints and descriptions."""
    retry = RetryPolicy.model_json_schema()["properties"]
    node = NodeSpec.model_json_schema()["properties"]
    props: dict[str, Any] = {
        "max_attempts": {**retry["max_attempts"], "title": "Attempts",
                         "description": "How often the step runs before it counts as failed (1: no retry)"},
        "backoff_s": {**retry["backoff_s"], "title": "First backoff (s)",
                      "description": "The wait before the first retry; each next wait is multiplied by the factor"},
        "backoff_factor": {**retry["backoff_factor"], "title": "Backoff factor"},
        "max_backoff_s": {**retry["max_backoff_s"], "title": "Longest backoff (s)"},
        "timeout_s": {**node["timeout_s"], "title": "Timeout (s)",
                      "description": "A step running longer fails (and is retried); empty: the workflow's step timeout"},
        "on_error": {"type": "string", "enum": list(ON_ERROR_CHOICES), "title": "On error",
                     "description": "After the last attempt: take the edges of the red error output, or fail the run"},
    }  # fmt: skip
    if mode == "state_machine":
        props["max_visits"] = {**node["max_visits"], "title": "Visit limit",
                               "description": "How often a run may enter this state; empty: the workflow's limit"}  # fmt: skip
    return {"properties": props}


def behaviour_field_of(issue_field: str) -> str | None:
    """The behaviour form's field an issue's field points at ("retry.backoff_s" -> "backoff_s"), or None."""
    name = issue_field.removeprefix("retry.")
    known = (*RETRY_FIELDS, "timeout_s", "on_error", "max_visits")
    return name if name in known and (name in RETRY_FIELDS) == issue_field.startswith("retry.") else None


def behaviour_issues(report: Iterable[Mapping[str, Any]], node_id: str) -> dict[str, str]:
    """The validator's issues about node `node_id`'s behaviour fields (form field -> first message)."""
    found: dict[str, str] = {}
    for issue in report:
        name = behaviour_field_of(issue.get("field") or "") if issue.get("node_id") == node_id else None
        if name:
            found.setdefault(name, issue["message"])
    return found


def _values(node: Mapping[str, Any]) -> dict[str, Any]:
    retry = node.get("retry") or {}
    values = {k: retry[k] for k in RETRY_FIELDS if k in retry}
    for key in ("timeout_s", "max_visits"):
        if node.get(key) is not None:
            values[key] = node[key]
    choice = node.get("on_error")
    values["on_error"] = next(k for k, v in ON_ERROR_CHOICES.items() if v == choice)
    return values


def behaviour_fields(
    graph: WorkingGraph,
    node: Mapping[str, Any],
    drafts: Mapping[str, Mapping[str, str]],
    issues: Mapping[str, str],
) -> list[FormField]:
    """The behaviour form of `node`: typed drafts shown as typed, with their errors and the issues
    the validator found (field name -> message)."""
    errors = {k: v["error"] for k, v in drafts.items() if v.get("error")}
    for key, message in issues.items():
        errors.setdefault(key, message)
    if not drafts.get("on_error", {}).get("error"):  # checked against the graph now, not the last validation
        errors.pop("on_error", None)
        error_edges = [
            EdgeSpec.model_validate(e)
            for e in graph.edges
            if e["source"] == node["id"] and e.get("source_port") == ERROR_PORT
        ]
        try:
            spec = NodeSpec.model_validate(node)
        except pydantic.ValidationError:
            spec = None
        problem = on_error_problem(spec, error_edges) if spec is not None else None
        if problem:
            errors["on_error"] = problem
    shown = {k: v["text"] for k, v in drafts.items()}
    return build_fields(_behaviour_schema(graph.mode), _values(node), errors, shown)


def apply_behaviour(node: Mapping[str, Any], name: str, text: str) -> dict[str, Any]:
    """The node fields (retry, timeout_s, max_visits, on_error) after typing `text` into `name`;
    InputError with the definition model's message when the value is not allowed."""
    schema = _behaviour_schema("state_machine")["properties"]
    if name not in schema:
        raise InputError(f"unknown field {name!r}")
    if name == "on_error":
        if text not in ON_ERROR_CHOICES:
            raise InputError(f"choose one of: {', '.join(ON_ERROR_CHOICES)}")
        changes: dict[str, Any] = {"on_error": ON_ERROR_CHOICES[text]}
    else:
        if "{{" in text:
            raise InputError("enter a number (templates are not allowed here)")
        value = parse_input(schema[name], text)
        value = None if value is UNSET else value
        if name in RETRY_FIELDS:
            retry = {k: v for k, v in (node.get("retry") or {}).items() if k != name}
            if value is not None:
                retry[name] = value
            changes = {"retry": retry or None}
        else:
            changes = {name: value}
    candidate = {**node, **changes}
    try:
        NodeSpec.model_validate(candidate)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        raise InputError(error["msg"]) from None
    if "retry" in changes and changes["retry"] is not None:
        # Stored as the full policy, so the saved definition says what runs (defaults included).
        changes["retry"] = RetryPolicy.model_validate(changes["retry"]).model_dump()
    return changes


# Focusing the field a problem names


def control_of(issue_field: str, *, edge: bool = False) -> str:
    """The id of the side panel control an issue's field points at ("" when none shows it)."""
    if edge:
        return {"condition": "edge-condition-input", "label": "edge-label-input"}.get(issue_field, "")
    if issue_field.startswith("config."):
        return "node-config-form-" + issue_field.split(".")[1]
    behaviour = behaviour_field_of(issue_field)
    if behaviour:
        return "node-behaviour-form-" + behaviour
    return {"id": "node-id-input", "label": "node-label-input"}.get(issue_field, "")


# The panel renders after the state change reaches the browser: look for the control a few frames.
_FOCUS_SCRIPT = """(function find(tries) {
  const el = document.getElementById(%s);
  if (el) { el.scrollIntoView({block: "center"}); el.focus({preventScroll: true}); return; }
  if (tries > 0) setTimeout(() => find(tries - 1), 50);
})(40)"""


def focus_control(control_id: str) -> rx.event.EventSpec:
    """Scroll to and focus the control `control_id` once the side panel shows it."""
    return rx.call_script(_FOCUS_SCRIPT % json.dumps(control_id))

"""Parse workflow definitions from JSON, YAML or plain data; every failure says where."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic
import yaml

from engine.definition import (
    Annotations,
    EdgeSpec,
    ErrorHandling,
    GroupSpec,
    NodeSpec,
    NoteSpec,
    Position,
    RetryPolicy,
    WorkflowDefinition,
    WorkflowPolicy,
)
from engine.errors import DefinitionError
from engine.settings import get_settings

MAX_DEFINITION_BYTES = 5 * 1024 * 1024  # raw JSON/YAML text, checked before it is parsed
_MAX_LISTED_ERRORS = 10
_KNOWN_FIELDS = sorted(
    {
        name
        for model in (
            WorkflowDefinition,
            NodeSpec,
            EdgeSpec,
            Position,
            RetryPolicy,
            ErrorHandling,
            WorkflowPolicy,
            Annotations,
            NoteSpec,
            GroupSpec,
        )
        for name in model.model_fields
    }
)
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DefinitionLoader(yaml.SafeLoader):
    """A SafeLoader without aliases (no billion-laughs), duplicate keys or implicit dates."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in workflow definitions", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                raise yaml.constructor.ConstructorError(
                    None, None, "YAML merge keys (<<) are not allowed", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: the base class reports it with a mark
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Dates stay strings: a definition holds JSON values only.
_DefinitionLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(text: str) -> Any:
    loader = _DefinitionLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _DefinitionDumper(yaml.SafeDumper):
    """A SafeDumper that double-quotes strings holding Unicode line breaks, so they survive a reload."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # PyYAML writes NEL and the Unicode line/paragraph separators raw in plain or single-quoted
    # scalars, where a reader folds them into spaces; double quotes escape them.
    style = '"' if any(ch in text for ch in "\x85\u2028\u2029\ufeff") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_DefinitionDumper.add_representer(str, _represent_str)


def parse_json(text: str, source: str | None = None) -> WorkflowDefinition:
    """Parse a JSON workflow definition."""
    return parse_dict(load_json(text, source), source=source)


def load_json(text: str, source: str | None = None) -> Any:
    """Decode JSON text as definitions are read (size cap, no duplicate keys, no NaN), not yet
    checked as a definition: for files that hold one among other things (template files)."""
    _check_size(text, source)
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DefinitionError(f"invalid JSON: {exc.msg}", path=source, line=exc.lineno) from None
    except ValueError as exc:  # from the hooks above, or an integer too long to convert
        raise DefinitionError(f"invalid JSON: {exc}", path=source) from None
    except RecursionError:
        raise DefinitionError(_too_deep(), path=source) from None


def parse_yaml(text: str, source: str | None = None) -> WorkflowDefinition:
    """Parse a YAML workflow definition (one document, JSON-compatible values only)."""
    return parse_dict(load_yaml(text, source), source=source)


def load_yaml(text: str, source: str | None = None) -> Any:
    """Decode YAML text with the definitions' safe loader (size cap, no aliases, merge keys,
    duplicate keys or dates), not yet checked as a definition."""
    _check_size(text, source)
    try:
        return _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise DefinitionError(f"invalid YAML: {message}", path=source, line=line) from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"invalid YAML: {exc}", path=source) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. "!!int abc"
        raise DefinitionError(f"invalid YAML value: {exc}", path=source) from None
    except RecursionError:
        raise DefinitionError(_too_deep(), path=source) from None


def parse_file(path: str | Path) -> WorkflowDefinition:
    """Parse a definition file chosen by extension: .json, .yaml or .yml."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".py":
        raise DefinitionError(
            "Python definitions are built with engine.dsl in your own code; export them with to_json",
            path=str(path),
        )
    if suffix not in (".json", ".yaml", ".yml"):
        raise DefinitionError(
            f"unknown definition format {suffix!r}; use .json, .yaml or .yml", path=str(path)
        )
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_DEFINITION_BYTES + 1)
    except OSError as exc:
        raise DefinitionError(f"cannot read the file: {exc.strerror or exc}", path=str(path)) from None
    if len(raw) > MAX_DEFINITION_BYTES:
        raise DefinitionError(
            f"definition is over {MAX_DEFINITION_BYTES} bytes; the limit is {MAX_DEFINITION_BYTES} bytes",
            path=str(path),
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"not UTF-8 text (byte {exc.start})", path=str(path)) from None
    parse = parse_json if suffix == ".json" else parse_yaml
    return parse(text, source=str(path))


def parse_dict(data: Any, source: str | None = None) -> WorkflowDefinition:
    """Build a definition from already-decoded data (e.g. a request body or a database row)."""
    if not isinstance(data, Mapping):
        raise DefinitionError(
            f"a workflow definition is a mapping at the top level, not {_kind(data)}", path=source
        )
    _check_counts(data, source)
    if _check_values(data, source):
        data = json.loads(json.dumps(data))  # tuples become lists, as they would in a file
    _check_config_sizes(data, source)
    try:
        defn = WorkflowDefinition.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _from_pydantic(exc, data, source) from None
    except RecursionError:
        raise DefinitionError(_too_deep(), path=source) from None
    _check_unique_ids(defn, source)
    _check_annotations(defn, source)
    return defn


def to_json(defn: WorkflowDefinition) -> str:
    """The definition as indented JSON."""
    return json.dumps(defn.to_dict(), indent=2, ensure_ascii=False) + "\n"


def to_yaml(defn: WorkflowDefinition) -> str:
    """The definition as YAML, keys in model order."""
    return yaml.dump(defn.to_dict(), Dumper=_DefinitionDumper, sort_keys=False, allow_unicode=True)


def _check_size(text: str, source: str | None) -> None:
    if len(text) <= MAX_DEFINITION_BYTES // 4:
        return  # at most 4 bytes per character: certainly under the cap
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_DEFINITION_BYTES:
        raise DefinitionError(
            f"definition is {size} bytes; the limit is {MAX_DEFINITION_BYTES} bytes", path=source
        )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _too_deep() -> str:
    limit = get_settings().max_definition_depth
    return f"definition is nested too deeply; the limit is {limit} levels (FLOWLOOM_MAX_DEFINITION_DEPTH)"


def _check_counts(data: Mapping[str, Any], source: str | None) -> None:
    """Refuse more nodes or edges than the settings allow, before anything looks at them."""
    settings = get_settings()
    for key, limit, setting in (
        ("nodes", settings.max_definition_nodes, "FLOWLOOM_MAX_DEFINITION_NODES"),
        ("edges", settings.max_definition_edges, "FLOWLOOM_MAX_DEFINITION_EDGES"),
    ):
        items = data.get(key)
        if isinstance(items, list | tuple) and len(items) > limit:
            raise DefinitionError(
                f"definition has {len(items):,} {key}; the limit is {limit:,} ({setting})",
                path=_join(source, key),
            )


def _check_config_sizes(data: Mapping[str, Any], source: str | None) -> None:
    """Refuse a node config bigger (as JSON) than FLOWLOOM_MAX_NODE_CONFIG_BYTES."""
    limit = get_settings().max_node_config_bytes
    nodes = data.get("nodes")
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        config = node.get("config") if isinstance(node, Mapping) else None
        if not isinstance(config, Mapping):
            continue
        size = len(json.dumps(config, ensure_ascii=False).encode("utf-8"))
        if size > limit:
            node_id = node.get("id")
            raise DefinitionError(
                f"config is {size:,} bytes as JSON; the limit is {limit:,} (FLOWLOOM_MAX_NODE_CONFIG_BYTES);"
                " keep large data in run inputs or a memory collection",
                path=_join(source, f"nodes[{index}].config"),
                node_id=node_id if isinstance(node_id, str) else None,
            )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _check_values(data: Mapping[str, Any], source: str | None) -> bool:
    """Refuse what JSON (and PostgreSQL's JSONB) cannot hold, deep nesting and long strings.

    Returns True if tuples were seen.
    """
    settings = get_settings()
    max_depth, max_string = settings.max_definition_depth, settings.max_definition_string
    tuples = False
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > max_depth:
            raise DefinitionError(_too_deep(), path=_join(source, where))
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise DefinitionError(
                        f"mapping key {key!r} is {_kind(key)}; keys must be strings",
                        path=_join(source, where),
                    )
                _check_text(key, _join(source, where), "a key", max_string)
                stack.append((item, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(value, list | tuple):
            tuples = tuples or isinstance(value, tuple)
            for index, item in enumerate(value):
                stack.append((item, f"{where}[{index}]", depth + 1))
        elif isinstance(value, str):
            _check_text(value, _join(source, where), "a string", max_string)
        elif isinstance(value, float) and not math.isfinite(value):
            raise DefinitionError(f"{value} is not a JSON number", path=_join(source, where))
        elif value is not None and not isinstance(value, bool | int | float):
            raise DefinitionError(
                f"{_kind(value)} is not a JSON value; quote it to keep it as text",
                path=_join(source, where),
            )
    return tuples


def _check_text(text: str, path: str | None, what: str, max_length: int) -> None:
    if len(text) > max_length:
        raise DefinitionError(
            f"{what} of {len(text):,} characters; the limit is {max_length:,} (FLOWLOOM_MAX_DEFINITION_STRING)",
            path=path,
        )
    if "\x00" in text:
        raise DefinitionError(f"{what} contains a NUL character", path=path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DefinitionError(f"{what} contains an unpaired surrogate (invalid Unicode)", path=path) from None


def _join(source: str | None, where: str) -> str | None:
    if source and where:
        return f"{source}: {where}"
    return source or where or None


def loc_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a path people read, e.g. ("nodes", 2, "config") -> nodes[2].config."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _node_id_at(loc: tuple[Any, ...], data: Mapping[str, Any]) -> str | None:
    if len(loc) < 2 or loc[0] != "nodes" or not isinstance(loc[1], int):
        return None
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not 0 <= loc[1] < len(nodes):
        return None
    node = nodes[loc[1]]
    node_id = node.get("id") if isinstance(node, Mapping) else None
    return node_id if isinstance(node_id, str) and node_id else None


def _error_message(error: Any) -> str:
    message = str(error["msg"])
    if error["type"] == "extra_forbidden" and error["loc"]:
        close = difflib.get_close_matches(str(error["loc"][-1]), _KNOWN_FIELDS, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    return message


def _from_pydantic(
    exc: pydantic.ValidationError, data: Mapping[str, Any], source: str | None
) -> DefinitionError:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    message = _error_message(first)
    if len(errors) > 1:
        others = [f"{loc_path(e['loc']) or '(top level)'}: {_error_message(e)}" for e in errors[1:]]
        listed = others[:_MAX_LISTED_ERRORS]
        more = len(others) - len(listed)
        message += "; also " + "; ".join(listed) + (f"; and {more} more" if more else "")
    return DefinitionError(
        message, path=_join(source, loc_path(first["loc"])), node_id=_node_id_at(first["loc"], data)
    )


def _check_unique_ids(defn: WorkflowDefinition, source: str | None) -> None:
    seen: set[str] = set()
    for index, node in enumerate(defn.nodes):
        if node.id in seen:
            raise DefinitionError(
                f"duplicate node id {node.id!r}; node ids must be unique",
                path=_join(source, f"nodes[{index}].id"),
                node_id=node.id,
            )
        seen.add(node.id)
    seen.clear()
    for index, edge in enumerate(defn.edges):
        if edge.id in seen:
            raise DefinitionError(
                f"duplicate edge id {edge.id!r}; edge ids must be unique",
                path=_join(source, f"edges[{index}].id"),
            )
        seen.add(edge.id)


def _check_annotations(defn: WorkflowDefinition, source: str | None) -> None:
    """Note and group ids are unique; a group holds nodes of this workflow, each in one group."""
    seen: set[str] = set()
    kinds: tuple[tuple[str, Sequence[NoteSpec | GroupSpec]], ...] = (
        ("notes", defn.annotations.notes),
        ("groups", defn.annotations.groups),
    )
    for kind, items in kinds:
        for index, item in enumerate(items):
            if item.id in seen:
                raise DefinitionError(
                    f"duplicate annotation id {item.id!r}; note and group ids must be unique",
                    path=_join(source, f"annotations.{kind}[{index}].id"),
                )
            seen.add(item.id)
    node_ids = {node.id for node in defn.nodes}
    owner: dict[str, str] = {}
    for index, group in enumerate(defn.annotations.groups):
        for place, node_id in enumerate(group.nodes):
            where = _join(source, f"annotations.groups[{index}].nodes[{place}]")
            if node_id not in node_ids:
                raise DefinitionError(
                    f"group {group.id!r} holds {node_id!r}, which is not a node of this workflow",
                    path=where,
                    node_id=node_id,
                )
            if node_id in owner:
                raise DefinitionError(
                    f"node {node_id!r} is in two groups ({owner[node_id]!r} and {group.id!r}); a node"
                    " belongs to at most one group",
                    path=where,
                    node_id=node_id,
                )
            owner[node_id] = group.id

"""What changed between two versions of a workflow: nodes, edges, notes and groups added, removed,
changed or only moved, with a field-level list of each change.

The diff is made from the definitions' full JSON form (`WorkflowDefinition.to_dict`), so a field
that only got its default written out is no change. Definitions never hold secret values (a node
names a secret in the store), but a value typed into a plain field under a credential-like key
(a `headers.Authorization`, a `password` in a config) is shown as `[redacted]` on both sides: the
diff says that it changed, never what it is. Fields a node type declares as secret *names*
(`format: secret`, `x-secret-values`) are names, and are shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.contract import get_node_type
from engine.definition import WorkflowDefinition
from engine.secret_policy import REDACTED

ChangeKind = Literal["added", "removed", "changed", "moved"]
# Keys whose values may be credentials (lower-cased substrings).
SENSITIVE_WORDS = (
    "password",
    "passwd",
    "token",
    "secret",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
)
# Top-level fields compared field by field (nodes, edges and annotations are compared item by item;
# `version` is the number the two versions differ by anyway).
_WORKFLOW_FIELDS = (
    "name",
    "description",
    "mode",
    "inputs",
    "outputs",
    "error_handling",
    "policy",
    "triggers",
)
_LAYOUT_FIELDS = frozenset({"position", "width", "height"})
_MISSING: Any = object()


@dataclass(frozen=True)
class FieldChange:
    """One changed field: its dotted path (`config.url`, `retry.max_attempts`) and both values
    (None when the field is absent on that side); `redacted` when the values are hidden."""

    path: str
    before: Any = None
    after: Any = None
    redacted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after, "redacted": self.redacted}


@dataclass(frozen=True)
class ItemChange:
    """A node, edge, note or group that is new, gone, changed or only moved (layout)."""

    id: str
    kind: ChangeKind
    type: str = ""  # a node's type; "edge", "note" or "group" for the others
    summary: str = ""  # an edge's "source.port -> target.port"
    fields: tuple[FieldChange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "type": self.type,
            "summary": self.summary,
            "fields": [f.to_dict() for f in self.fields],
        }


@dataclass(frozen=True)
class VersionDiff:
    """Everything that differs between two definitions."""

    nodes: tuple[ItemChange, ...] = ()
    edges: tuple[ItemChange, ...] = ()
    annotations: tuple[ItemChange, ...] = ()
    workflow: tuple[FieldChange, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not (self.nodes or self.edges or self.annotations or self.workflow)

    def node_marks(self) -> dict[str, str]:
        """Node id -> change kind, for the canvas."""
        return {c.id: c.kind for c in self.nodes}

    def edge_marks(self) -> dict[str, str]:
        """Edge id -> change kind, for the canvas."""
        return {c.id: c.kind for c in self.edges}

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [c.to_dict() for c in self.nodes],
            "edges": [c.to_dict() for c in self.edges],
            "annotations": [c.to_dict() for c in self.annotations],
            "workflow": [f.to_dict() for f in self.workflow],
        }


def diff_definitions(before: WorkflowDefinition, after: WorkflowDefinition) -> VersionDiff:
    """What changed from `before` to `after`."""
    old, new = before.to_dict(), after.to_dict()
    nodes = _diff_items(old["nodes"], new["nodes"], _node_type, _node_exempt)
    edges = _diff_items(old["edges"], new["edges"], lambda _: "edge", lambda _: frozenset(), _edge_summary)
    annotations = _diff_items(
        old["annotations"]["notes"], new["annotations"]["notes"], lambda _: "note", lambda _: frozenset()
    ) + _diff_items(
        old["annotations"]["groups"], new["annotations"]["groups"], lambda _: "group", lambda _: frozenset()
    )
    workflow: list[FieldChange] = []
    for name in _WORKFLOW_FIELDS:
        workflow += _changes(name, old.get(name, _MISSING), new.get(name, _MISSING), frozenset())
    return VersionDiff(tuple(nodes), tuple(edges), tuple(annotations), tuple(workflow))


def _node_type(item: Mapping[str, Any]) -> str:
    return str(item.get("type", ""))


def _edge_summary(item: Mapping[str, Any]) -> str:
    return f"{item['source']}.{item.get('source_port', 'out')} -> {item['target']}.{item.get('target_port', 'in')}"


def _diff_items(old_items, new_items, type_of, exempt_of, summary_of=None) -> list[ItemChange]:
    old_by_id = {item["id"]: item for item in old_items}
    new_by_id = {item["id"]: item for item in new_items}
    out: list[ItemChange] = []
    # In the order of the newer version, then what was removed in the order it had.
    for item_id, item in new_by_id.items():
        summary = summary_of(item) if summary_of else ""
        exempt = exempt_of(item)
        previous = old_by_id.get(item_id)
        if previous is None:
            out.append(ItemChange(item_id, "added", type_of(item), summary, _whole(item, exempt, after=True)))
            continue
        if previous == item:
            continue
        changes = _changes("", _without_id(previous), _without_id(item), exempt | exempt_of(previous))
        layout_only = all(c.path.split(".", 1)[0] in _LAYOUT_FIELDS for c in changes)
        out.append(
            ItemChange(item_id, "moved" if layout_only else "changed", type_of(item), summary, tuple(changes))
        )
    for item_id, item in old_by_id.items():
        if item_id not in new_by_id:
            summary = summary_of(item) if summary_of else ""
            out.append(
                ItemChange(
                    item_id, "removed", type_of(item), summary, _whole(item, exempt_of(item), after=False)
                )
            )
    return out


def _without_id(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "id"}


def _whole(item: Mapping[str, Any], exempt: frozenset[str], *, after: bool) -> tuple[FieldChange, ...]:
    """An added or removed item's fields, as changes from (or to) nothing; layout left out."""
    data = {k: v for k, v in _without_id(item).items() if k not in _LAYOUT_FIELDS}
    changes = _changes("", _MISSING, data, exempt) if after else _changes("", data, _MISSING, exempt)
    return tuple(c for c in changes if not (c.before in (None, {}, []) and c.after in (None, {}, [])))


def _changes(path: str, before: Any, after: Any, exempt: frozenset[str]) -> list[FieldChange]:
    """The leaf fields that differ; mappings are compared key by key, anything else as a whole."""
    if before == after:
        return []
    if isinstance(before, Mapping) or isinstance(after, Mapping):
        if (before is _MISSING or isinstance(before, Mapping)) and (
            after is _MISSING or isinstance(after, Mapping)
        ):
            old = before if isinstance(before, Mapping) else {}
            new = after if isinstance(after, Mapping) else {}
            out: list[FieldChange] = []
            for key in [*old, *(k for k in new if k not in old)]:
                child = f"{path}.{key}" if path else str(key)
                out += _changes(child, old.get(key, _MISSING), new.get(key, _MISSING), exempt)
            return out
    if _sensitive(path, exempt):
        return [FieldChange(path, _shown(before, REDACTED), _shown(after, REDACTED), redacted=True)]
    return [
        FieldChange(
            path, _shown(before, _scrub(before, path, exempt)), _shown(after, _scrub(after, path, exempt))
        )
    ]


def _shown(value: Any, shown: Any) -> Any:
    return None if value is _MISSING else shown


def _sensitive(path: str, exempt: frozenset[str]) -> bool:
    if not path or _is_exempt(path, exempt):
        return False
    key = path.rsplit(".", 1)[-1].lower().replace("-", "_")
    return any(word in key for word in SENSITIVE_WORDS)


def _is_exempt(path: str, exempt: frozenset[str]) -> bool:
    """Whether `path` is a secret-name field ("config.auth.secret") or inside a mapping of them
    ("config.secret_headers.*")."""
    return path in exempt or any(e.endswith(".*") and path.startswith(e[:-1]) for e in exempt)


def _scrub(value: Any, path: str, exempt: frozenset[str]) -> Any:
    """`value` (a list or scalar compared as a whole) with credential-like keys inside it hidden."""
    if isinstance(value, Mapping):
        return {
            k: REDACTED if _sensitive(f"{path}.{k}", exempt) else _scrub(v, f"{path}.{k}", exempt)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v, path, exempt) for v in value]
    return value


def _node_exempt(node: Mapping[str, Any]) -> frozenset[str]:
    """Paths in a node that hold secret *names* by its type's config schema (shown, not hidden)."""
    node_type = get_node_type(str(node.get("type", "")))
    if node_type is None:
        return frozenset()
    schema = node_type.config_model.model_json_schema()
    return frozenset(_secret_name_paths(schema, schema.get("$defs") or {}, "config", 0))


def _secret_name_paths(
    schema: Mapping[str, Any], defs: Mapping[str, Any], prefix: str, depth: int
) -> list[str]:
    if depth > 8:
        return []
    out: list[str] = []
    for key, prop in (schema.get("properties") or {}).items():
        path = f"{prefix}.{key}"
        for option in [prop, *(prop.get("anyOf") or [])]:
            ref = option.get("$ref")
            if isinstance(ref, str):
                option = defs.get(ref.rsplit("/", 1)[-1], {})
            if option.get("format") == "secret":
                out.append(path)
            elif option.get("x-secret-values"):
                out.append(f"{path}.*")
            elif option.get("properties"):
                out += _secret_name_paths(option, defs, path, depth + 1)
    return out

"""Which workflows use which secrets: the secret names in node configs of each latest saved version.

A config field names a secret when its node type's JSON schema marks it `format: secret` (a
name) or `x-secret-values` (a mapping whose values are names), also inside nested objects
such as tool.http's `auth`. Node types declare this on their config models; nothing here
knows a node type by name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy.engine import Connection

from engine import workflows
from engine.contract import get_node_type


@dataclass(frozen=True)
class WorkflowRef:
    """A workflow that uses a secret, as the Secrets page lists it."""

    id: str
    name: str


@lru_cache(maxsize=256)
def _schema(node_type: str) -> dict[str, Any] | None:
    found = get_node_type(node_type)
    return None if found is None else found.config_model.model_json_schema()


def _resolve(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The property and what its $ref / anyOf options point at."""
    options = [prop, *prop.get("anyOf", [])]
    out = []
    for option in options:
        ref = option.get("$ref")
        out.append(defs.get(ref.rsplit("/", 1)[-1], {}) if isinstance(ref, str) else option)
    return out


def _names(schema: Mapping[str, Any], value: Any, defs: Mapping[str, Any]) -> Iterator[str]:
    if not isinstance(value, Mapping):
        return
    for key, prop in schema.get("properties", {}).items():
        if key not in value:
            continue
        for option in _resolve(prop, defs):
            if option.get("format") == "secret" and isinstance(value[key], str) and value[key]:
                yield value[key]
            elif option.get("x-secret-values") and isinstance(value[key], Mapping):
                yield from (v for v in value[key].values() if isinstance(v, str) and v)
            elif option.get("properties"):
                yield from _names(option, value[key], defs)


def secret_references(definition: Mapping[str, Any]) -> set[str]:
    """The secret names the definition's node configs refer to."""
    found: set[str] = set()
    for node in definition.get("nodes") or []:
        if not isinstance(node, Mapping):
            continue
        schema = _schema(str(node.get("type", "")))
        if schema is not None:
            found.update(_names(schema, node.get("config") or {}, schema.get("$defs", {})))
    return found


def workflows_by_secret(
    conn: Connection, *, workspace_id: str | uuid.UUID | None = None
) -> dict[str, list[WorkflowRef]]:
    """Secret name -> the workflows (of workspace `workspace_id` when given) whose latest saved
    version uses it, by workflow name."""
    usage: dict[str, list[WorkflowRef]] = {}
    for workflow_id, workflow_name, definition in workflows.latest_definitions(
        conn, workspace_id=workspace_id
    ):
        for name in secret_references(definition):
            usage.setdefault(name, []).append(WorkflowRef(workflow_id, workflow_name))
    return usage

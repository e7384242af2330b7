"""The lists the side panel's choice fields offer (config fields marked `x-choices`): the saved
workflows a sub-workflow node may call and the versions of the one it calls.

Only the caller's current workspace is listed (a child run of another workspace's workflow does not
start: engine/child_runs.py), without the open workflow itself (calling it is recursion, which the
validator refuses whatever is picked) and without workflows that have no saved version yet. The
lists are what to show; the value picked is checked by the engine as a typed one is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from app import db
from components.config_form import resolve
from engine import workflows
from engine.config_fields import CHOICES
from engine.db_errors import DB_ERRORS
from engine.ids import parse_id

log = logging.getLogger(__name__)

WORKFLOWS, WORKFLOW_VERSIONS = "workflows", "workflow_versions"
LISTED = 500  # workflows offered at most (the most recently updated first)


def choice_fields(schema: Mapping[str, Any]) -> dict[str, str]:
    """Field name -> the list it picks from (its `x-choices`), for the fields of `schema` that have one."""
    defs = schema.get("$defs", {})
    found = {}
    for name, raw in (schema.get("properties") or {}).items():
        kind = resolve(raw, defs).get(CHOICES)
        if isinstance(kind, str):
            found[name] = kind
    return found


def field_choices(
    schema: Mapping[str, Any], config: Mapping[str, Any], *, workspace_id: str, open_workflow: str
) -> dict[str, list[list[str]]]:
    """The [value, label] rows of each choice field of `schema` for a node configured with `config`,
    in workspace `workspace_id` (empty lists when the database cannot be read)."""
    fields = choice_fields(schema)
    if not fields:
        return {}
    called = next((config.get(n) for n, kind in fields.items() if kind == WORKFLOWS), None)
    try:
        with db.db_session() as session:
            return {
                name: _rows(session, kind, workspace_id, open_workflow, called)
                for name, kind in fields.items()
            }
    except DB_ERRORS as exc:
        log.warning("listing the side panel's choices failed: %s", exc)
        return {name: [] for name in fields}


def _rows(session, kind: str, workspace_id: str, open_workflow: str, called: Any) -> list[list[str]]:
    if kind == WORKFLOWS:
        listed = workflows.list_workflows(session, limit=LISTED, workspace_id=workspace_id)
        names = [w for w in listed if str(w.id) != open_workflow and w.latest_version > 0]
        return [[str(w.id), f"{w.name} (v{w.latest_version})"] for w in names]
    if kind == WORKFLOW_VERSIONS:
        workflow = _own_workflow(session, called, workspace_id)
        if workflow is None:
            return []
        published = workflow.published_version
        return [
            [str(v.version), _version_label(v, published)]
            for v in workflows.list_versions(session, workflow.id, limit=LISTED)
        ]
    return []


def _own_workflow(session, workflow_id: Any, workspace_id: str):
    """The workflow `workflow_id` names when it is of workspace `workspace_id`, else None."""
    parsed = parse_id(workflow_id) if isinstance(workflow_id, str) else None
    if parsed is None:
        return None
    return workflows.get_workflow(session, parsed, workspace_id=workspace_id)


def _version_label(version: workflows.VersionInfo, published: int | None) -> str:
    parts = [f"v{version.version}"]
    if version.version == published:
        parts.append("published")
    if version.note:
        parts.append(version.note[:60])
    return " · ".join(parts)


def pinned_versions(schema: Mapping[str, Any], name: str, value: Any, workspace_id: str) -> dict[str, int]:
    """When `value` was picked for the workflow field `name`: its version fields, pinned at the
    picked workflow's newest version (the old number was another workflow's); else nothing."""
    fields = choice_fields(schema)
    if fields.get(name) != WORKFLOWS or not isinstance(value, str):
        return {}
    newest = latest_version(value, workspace_id)
    if newest is None:
        return {}
    return {other: newest for other, kind in fields.items() if kind == WORKFLOW_VERSIONS}


def latest_version(workflow_id: str, workspace_id: str) -> int | None:
    """The newest saved version of workflow `workflow_id` of workspace `workspace_id` (what a
    freshly picked workflow is pinned at), or None."""
    try:
        with db.db_session() as session:
            workflow = _own_workflow(session, workflow_id, workspace_id)
            return workflow.latest_version or None if workflow is not None else None
    except DB_ERRORS as exc:
        log.warning("reading workflow %s failed: %s", workflow_id, exc)
        return None


__all__ = [
    "WORKFLOWS",
    "WORKFLOW_VERSIONS",
    "choice_fields",
    "field_choices",
    "latest_version",
    "pinned_versions",
]

"""GET /api/workflows/{workflow_id}/versions/diff?from=&to=: what changed between two saved versions.

Nodes, edges, notes and groups added, removed, changed or only moved, each with its changed fields;
workflow-level fields (mode, inputs, outputs, policies, triggers) field by field. Values under
credential-like keys are `[redacted]` (engine/version_diff.py). Included before the versions
router, so `/diff` is not read as a version number.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app import db
from app.api.callers import Caller
from app.api.versions import MAX_VERSION
from engine import shares, workflows
from engine.errors import DefinitionError, ErrorCode, FlowloomError, user_message
from engine.parse import parse_dict
from engine.version_diff import diff_definitions

router = APIRouter(prefix="/workflows/{workflow_id}/versions", tags=["workflows"])


class FieldChangePublic(BaseModel):
    """One changed field: `before` / `after` are JSON values (null when absent on that side)."""

    path: str = Field(description='dotted, e.g. "config.url", "retry.max_attempts", "position.x"')
    before: Any = None
    after: Any = None
    redacted: bool = Field(False, description="the values are hidden: the key looks like a credential")


class ItemChangePublic(BaseModel):
    """A node, edge, note or group that differs."""

    id: str
    kind: Literal["added", "removed", "changed", "moved"] = Field(
        description="moved: only its place or size changed"
    )
    type: str = Field(description='a node\'s type; "edge", "note" or "group" otherwise')
    summary: str = Field("", description='an edge\'s "source.port -> target.port"')
    fields: list[FieldChangePublic]


class VersionDiffPublic(BaseModel):
    """What changed from version `from_version` to version `to_version`."""

    workflow_id: uuid.UUID
    from_version: int
    to_version: int
    nodes: list[ItemChangePublic]
    edges: list[ItemChangePublic]
    annotations: list[ItemChangePublic] = Field(description="sticky notes and groups")
    workflow: list[FieldChangePublic] = Field(description="mode, inputs, outputs, policies, triggers")


def _definition(session, workflow_id: uuid.UUID, version: int):
    data = workflows.get_version(session, workflow_id, version)
    if data is None:
        raise FlowloomError(
            f"workflow {workflow_id} has no version {version}", code=ErrorCode.VERSION_NOT_FOUND
        )
    try:
        return parse_dict(data)
    except DefinitionError as exc:  # a version saved by an older release may no longer parse
        raise FlowloomError(
            f"version {version} cannot be read: {user_message(exc)}", code=ErrorCode.DEFINITION_INVALID
        ) from None


@router.get(
    "/diff",
    response_model=VersionDiffPublic,
    responses={404: {"description": "No such workflow, or it has no such version (version_not_found)"}},
)
def diff_versions(
    workflow_id: uuid.UUID,
    principal: Caller,
    from_version: int = Query(alias="from", ge=1, le=MAX_VERSION, description="the older version"),
    to_version: int = Query(alias="to", ge=1, le=MAX_VERSION, description="the newer version"),
) -> VersionDiffPublic:
    """What changed between two saved versions of the workflow."""
    with db.db_session() as session:
        reached = workflows.get_workflow(
            session, workflow_id, workspace_id=principal.workspace_id, user_id=principal.user_id,
            need=shares.READ,
        )  # fmt: skip
        if reached is None:  # neither its workspace's nor shared with the caller
            raise FlowloomError(f"workflow {workflow_id} not found", code=ErrorCode.WORKFLOW_NOT_FOUND)
        before = _definition(session, workflow_id, from_version)
        after = _definition(session, workflow_id, to_version)
    diff = diff_definitions(before, after).to_dict()
    return VersionDiffPublic(
        workflow_id=workflow_id, from_version=from_version, to_version=to_version, **diff
    )

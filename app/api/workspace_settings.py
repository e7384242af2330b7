"""/api/workspaces/{workspace_id}/settings and .../retention/preview: a workspace's review rule,
limits and retention, for its admins, through the doors the Settings page uses.

The review rule goes through engine.publishing.set_require_review, the limits and retention
through engine.workspace_limits.set_limits: each is audited there with before and after, in the
transaction of the change. A workspace the caller is not a member of answers 404.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.callers import Caller, administers
from app.db import database_url, db_session
from engine import dispatch, publishing, retention, workspace_limits
from engine.run_state import Dispatch
from models.db import get_engine

router = APIRouter(tags=["workspaces"])

Limit = Annotated[
    int | None,
    Field(
        strict=True, ge=1, le=workspace_limits.MAX_VALUE,
        description=f"a whole number from 1 to {workspace_limits.MAX_VALUE}; null: no limit / keep forever",
    ),
]  # fmt: skip
LIMIT_FIELDS = workspace_limits.FIELDS


class WorkspaceSettingsPublic(BaseModel):
    workspace_id: str
    require_review: bool = Field(description="A second editor approves a version before it is published")
    max_concurrent_runs: int | None = Field(
        description="Runs of the workspace running at once; null: no limit"
    )
    runs_per_hour: int | None = Field(description="Runs started per hour; null: no quota")
    retention_days: int | None = Field(description="Ended runs older than this are deleted; null: unset")
    retention_keep_last: int | None = Field(
        description="Only the newest N ended runs of each workflow are kept"
    )
    step_data_retention_days: int | None = Field(
        description="Step inputs and outputs are cleared this many days after the run ended"
    )
    effective_retention_days: int | None = Field(
        description="retention_days, or the compliance block's data_retention_days when unset; null: forever"
    )


class WorkspaceSettingsUpdate(BaseModel):
    """The settings to change; a field left out stays as it is, null clears a limit."""

    model_config = ConfigDict(extra="forbid")

    require_review: bool | None = Field(None, strict=True, description="true or false (not null)")
    max_concurrent_runs: Limit = None
    runs_per_hour: Limit = None
    retention_days: Limit = None
    retention_keep_last: Limit = None
    step_data_retention_days: Limit = None

    @field_validator("require_review")
    @classmethod
    def _not_null(cls, value: bool | None) -> bool:
        if value is None:
            raise ValueError("require_review is true or false; leave it out to keep it")
        return value


class PrunedRunPublic(BaseModel):
    id: str
    workflow: str | None = Field(description="null: a run of an unsaved definition")
    status: str
    finished_at: datetime | None
    by_age: bool = Field(description="older than the retention days")
    by_count: bool = Field(description="past the newest retention_keep_last of its workflow")


class RetentionPreviewPublic(BaseModel):
    retention_days: int | None = Field(
        description="the effective retention days (compliance default applied)"
    )
    retention_keep_last: int | None
    step_data_retention_days: int | None
    runs: int = Field(description="runs the next prune deletes")
    runs_by_age: int
    runs_by_count: int
    steps_cleared: int = Field(description="steps of kept runs whose inputs and outputs it clears")
    examples: list[PrunedRunPublic] = Field(description=f"up to {retention.EXAMPLES} of the runs it deletes")


def _settings(db: Any, workspace_id: uuid.UUID) -> WorkspaceSettingsPublic:
    limits = workspace_limits.get_limits(db, workspace_id)
    return WorkspaceSettingsPublic(
        workspace_id=str(workspace_id), require_review=publishing.requires_review_in(db, workspace_id),
        effective_retention_days=workspace_limits.effective_retention_days(limits),
        **{name: getattr(limits, name) for name in LIMIT_FIELDS},
    )  # fmt: skip


@router.get(
    "/workspaces/{workspace_id}/settings", response_model=WorkspaceSettingsPublic, responses={404: {}}
)
def get_settings_of(workspace_id: uuid.UUID, principal: Caller) -> WorkspaceSettingsPublic:
    """The workspace's review rule, limits and retention (its admins)."""
    administers(principal, workspace_id)
    with db_session() as session:
        return _settings(session.connection(), workspace_id)


@router.patch(
    "/workspaces/{workspace_id}/settings", response_model=WorkspaceSettingsPublic, responses={404: {}}
)
def update_settings(
    workspace_id: uuid.UUID, body: WorkspaceSettingsUpdate, principal: Caller
) -> WorkspaceSettingsPublic:
    """Change some of the workspace's settings (its admins); audited with before and after. A looser
    limit admits waiting runs at once."""
    role = administers(principal, workspace_id)
    given = body.model_fields_set
    admitted: list[Dispatch] = []
    with db_session() as session:
        conn = session.connection()
        if "require_review" in given and body.require_review is not None:
            publishing.set_require_review(session, workspace_id, body.require_review, role=role)
        if given & set(LIMIT_FIELDS):
            now = workspace_limits.get_limits(conn, workspace_id)
            wanted = {n: getattr(body if n in given else now, n) for n in LIMIT_FIELDS}
            if wanted != {n: getattr(now, n) for n in LIMIT_FIELDS}:
                admitted = workspace_limits.set_limits(
                    conn, workspace_id, workspace_limits.WorkspaceLimits(**wanted), actor=principal.actor
                )
        changed = _settings(conn, workspace_id)
    dispatch.send(admitted)  # after the commit: the admitted runs' first steps
    return changed


@router.get(
    "/workspaces/{workspace_id}/retention/preview", response_model=RetentionPreviewPublic, responses={404: {}}
)
def retention_preview(workspace_id: uuid.UUID, principal: Caller) -> RetentionPreviewPublic:
    """What the next prune of the workspace removes, from the statements the prune runs (its admins)."""
    administers(principal, workspace_id)
    with get_engine(database_url()).connect() as conn:
        policy = retention.Policy.of(conn, workspace_id)
        shown = retention.preview(conn, workspace_id, policy=policy)
    return RetentionPreviewPublic(
        retention_days=policy.retention_days, retention_keep_last=policy.keep_last,
        step_data_retention_days=policy.step_data_days, runs=shown.runs, runs_by_age=shown.runs_by_age,
        runs_by_count=shown.runs_by_count, steps_cleared=shown.steps_cleared,
        examples=[PrunedRunPublic(**vars(r)) for r in shown.examples],
    )  # fmt: skip

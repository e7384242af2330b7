"""GET /api/runs: runs, newest first, filtered and paged by an opaque cursor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.api.callers import Caller
from engine import runs

router = APIRouter(tags=["runs"])

MAX_PAGE = 200
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
StartedVia = Literal["ui", "api", "cli", "trigger"]


class RunSummary(BaseModel):
    """A run as a list shows it (GET /api/runs/{run_id} has its inputs, outputs and steps)."""

    id: uuid.UUID
    workflow_id: uuid.UUID | None = Field(description="null for a run of an inline definition")
    workflow_name: str | None
    version: int | None = Field(description="the saved version it runs; null for an inline definition")
    status: str
    started_by: str = Field(
        description='"user:<id>", "api_key:<id>", "trigger:<id>", "cli:<os user>" or "system"'
    )
    started_via: str = Field(description="ui | api | cli | trigger")
    trigger_id: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class RunPage(BaseModel):
    """One page of runs, newest first."""

    runs: list[RunSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


def _utc(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _public(run: runs.RunSummary) -> RunSummary:
    return RunSummary(
        id=run.id, workflow_id=run.workflow_id, workflow_name=run.workflow, version=run.version,
        status=run.status, started_by=run.started_by, started_via=run.started_via, trigger_id=run.trigger_id,
        created_at=run.created_at, started_at=run.started_at, finished_at=run.finished_at, error=run.error,
    )  # fmt: skip


@router.get("/runs", response_model=RunPage, responses={422: {"description": "A bad filter or cursor"}})
def list_runs(
    workflow_id: uuid.UUID | None = None,
    status: Annotated[list[RunStatus] | None, Query(description="repeat for several: any of them")] = None,
    started_via: StartedVia | None = None,
    trigger_id: uuid.UUID | None = None,
    created_by: uuid.UUID | None = Query(None, description="the user who started them (an API key's owner)"),
    started_by: str | None = Query(None, max_length=120, description='exactly, e.g. "api_key:<id>"'),
    created_after: datetime | None = Query(
        None, description="created at or after (ISO 8601; UTC if no zone)"
    ),
    created_before: datetime | None = Query(None, description="created before (ISO 8601; UTC if no zone)"),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
    *,
    principal: Caller,
) -> RunPage:
    """Runs matching every filter given, newest first; follow `next_cursor` for older ones."""
    found = runs.list_runs(
        workspace_id=principal.workspace_id, workflow_id=str(workflow_id) if workflow_id else None, status=status or None, started_via=started_via,
        trigger_id=str(trigger_id) if trigger_id else None, created_by=str(created_by) if created_by else None,
        started_by=started_by, created_after=_utc(created_after), created_before=_utc(created_before),
        cursor=cursor, limit=limit + 1,
    )  # fmt: skip
    page = found[:limit]
    next_cursor = runs.run_cursor(page[-1]) if len(found) > limit else None
    return RunPage(runs=[_public(r) for r in page], next_cursor=next_cursor)

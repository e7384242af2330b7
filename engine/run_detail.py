"""One run as its page shows it: the run with its workflow, version, starter and trigger, the
definition it ran, its steps, each step's latest progress report and the run's latest events.

A read beside the runs door (`engine.runs.get_run` gives the steps); nothing here changes a run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import aliased
from sqlmodel import col

from engine import events
from engine.ids import parse_id
from engine.run_events import RunEvent
from engine.runs import get_run
from engine.settings import get_settings
from models.auth import User
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Event, Run, StepRun, Workflow, WorkflowVersion
from models.triggers import Trigger

EVENTS_SHOWN = 200  # the run's latest events the page lists (its log)
_events = table_of(Event)


@dataclass(frozen=True)
class StepProgress:
    """The latest `workflow.step.progress` report of one step (StepContext.progress)."""

    done: float
    total: float | None
    note: str
    attempt: int | None
    at: datetime

    @property
    def fraction(self) -> float | None:
        """done / total between 0 and 1, None when the total is unknown."""
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))


@dataclass
class RunDetail:
    """A run with everything its detail page shows."""

    id: str
    status: str
    error: str | None
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None
    definition: dict[str, Any]
    steps: list[dict[str, Any]]  # engine.runs.get_run's steps, in the order they were queued
    workflow_id: str | None
    workflow_name: str | None
    version: int | None  # the saved version it ran (None for an unsaved definition)
    latest_version: int | None  # the workflow's latest saved version now
    started_by: str
    started_via: str
    starter_email: str | None
    trigger_id: str | None
    trigger_key: str | None  # the trigger's id in the definition
    trigger_kind: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested: bool
    progress: dict[str, StepProgress] = field(default_factory=dict)  # step row id -> latest report
    events: list[RunEvent] = field(default_factory=list)  # the latest EVENTS_SHOWN, oldest first
    source_run_id: str | None = None  # the run this one re-runs or forks (engine/rerun.py)
    source_kind: str = ""  # "rerun" | "fork" | ""
    source_node_id: str | None = None  # the node a re-run started again from
    parent_run_id: str | None = None  # a child run's parent run (a sub-workflow step started it)
    parent_node_id: str | None = None  # the node of that parent step


def _latest_progress(conn: Connection, run_id: Any) -> dict[str, StepProgress]:
    step = _events.c.payload["data"]["step_id"].astext
    rows = conn.execute(
        select(step.label("step_id"), _events.c.payload, _events.c.created_at)
        .where(_events.c.run_id == run_id, _events.c.event_type == events.STEP_PROGRESS)
        .ext(distinct_on(step))
        .order_by(step, _events.c.id.desc())
    )
    found: dict[str, StepProgress] = {}
    for r in rows:
        data = (r.payload or {}).get("data") or {}
        try:
            done = float(data.get("done") or 0)
            total = float(data["total"]) if data.get("total") is not None else None
        except (TypeError, ValueError):  # written by StepContext.progress, which checks; stay safe
            continue
        attempt = data.get("attempt") if isinstance(data.get("attempt"), int) else None
        found[r.step_id] = StepProgress(done, total, str(data.get("note") or ""), attempt, r.created_at)
    return found


def _latest_events(conn: Connection, run_id: Any, limit: int) -> list[RunEvent]:
    rows = conn.execute(
        select(
            _events.c.id, _events.c.event_id, _events.c.event_type, _events.c.payload, _events.c.created_at
        )
        .where(_events.c.run_id == run_id)
        .order_by(_events.c.id.desc())
        .limit(limit)
    ).all()
    return [RunEvent(r.id, str(r.event_id), r.event_type, r.payload, r.created_at) for r in reversed(rows)]


def get_run_detail(
    run_id: str,
    *,
    workspace_id: str | uuid.UUID | None = None,
    events_shown: int = EVENTS_SHOWN,
    database_url: str | None = None,
) -> RunDetail | None:
    """The run `run_id` as its page shows it; None when there is no such run (or the id is malformed)
    or it is in another workspace than `workspace_id` (the caller's; None: any workspace)."""
    rid = parse_id(run_id)
    if rid is None:
        return None
    view = get_run(str(rid), workspace_id=workspace_id, database_url=database_url)
    if view is None:
        return None
    versions = aliased(WorkflowVersion)
    latest = (
        select(func.max(versions.version))
        .where(col(versions.workflow_id) == col(Run.workflow_id))
        .correlate(Run)
        .scalar_subquery()
    )
    query = (
        select(col(Run.workflow_id), col(Workflow.name), col(WorkflowVersion.version), latest.label("latest"), col(Run.definition),
               col(User.email), col(Run.trigger_id), col(Trigger.key), col(Trigger.kind), col(Run.created_at), col(Run.started_at),
               col(Run.finished_at), col(Run.cancel_requested))
        .outerjoin(Workflow, col(Workflow.id) == col(Run.workflow_id))
        .outerjoin(WorkflowVersion, col(WorkflowVersion.id) == col(Run.version_id))
        .outerjoin(User, col(User.id) == col(Run.created_by))
        .outerjoin(Trigger, col(Trigger.id) == col(Run.trigger_id))
        .where(col(Run.id) == rid)
    )  # fmt: skip
    with get_engine(database_url or get_settings().database_url).connect() as conn:
        row = conn.execute(query).first()
        if row is None:  # deleted between the two reads
            return None
        progress = _latest_progress(conn, rid)
        recent = _latest_events(conn, rid, events_shown)
        parent_node = None
        if view.parent_step_id:
            parent_node = conn.execute(
                select(col(StepRun.node_id)).where(col(StepRun.id) == view.parent_step_id)
            ).scalar()
    return RunDetail(
        id=view.id, status=view.status, error=view.error, inputs=view.inputs, outputs=view.outputs,
        definition=dict(row.definition or {}), steps=view.steps,
        workflow_id=str(row.workflow_id) if row.workflow_id else None, workflow_name=row.name,
        version=row.version, latest_version=row.latest, started_by=view.started_by,
        started_via=view.started_via, starter_email=row.email,
        trigger_id=str(row.trigger_id) if row.trigger_id else None, trigger_key=row.key, trigger_kind=row.kind,
        created_at=row.created_at, started_at=row.started_at, finished_at=row.finished_at,
        cancel_requested=bool(row.cancel_requested), progress=progress, events=recent,
        source_run_id=view.source_run_id, source_kind=view.source_kind, source_node_id=view.source_node_id,
        parent_run_id=view.parent_run_id, parent_node_id=parent_node,
    )  # fmt: skip

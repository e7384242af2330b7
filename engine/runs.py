"""Runs: start, cancel, read one with its steps, list and count them.

The one door to runs for the pages, the REST API, the CLI and triggers. A start or cancel is
audited (`run.started`, `run.cancelled`) in the run's own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from engine import audit, dispatch, executor, json_schemas, workflows
from engine.definition import WorkflowDefinition
from engine.errors import ErrorCode, ValidationError
from engine.errors import Issue as _Issue
from engine.settings import get_settings
from engine.validate import ensure_valid
from models.auth import User
from models.db import get_engine
from models.tables import Run, StepRun, Workflow, WorkflowVersion

# Where a run was started from (runs.started_via); "" when a caller did not say (tests, internals).
STARTED_VIA = ("ui", "api", "cli", "trigger")


def _db(database_url: str | None = None):
    return get_engine(database_url or get_settings().database_url)


def _audit(conn: Connection, actor: str, action: str, run_id: str, details: dict[str, Any]) -> None:
    audit.record(conn, actor=actor, action=action, target_type="run", target_id=run_id, details=details)


def check_inputs(defn: WorkflowDefinition, inputs: dict[str, Any]) -> None:
    """Refuse run inputs that do not match the workflow's inputs schema, naming the field."""
    if not defn.inputs:
        return
    # The safe validator: "#..." references only (nothing is ever fetched), patterns on RE2.
    issues = [
        _Issue(message=p.message, code=ErrorCode.INPUT_INVALID, field=f"input.{p.path}")
        for p in json_schemas.instance_problems(defn.inputs, inputs)
    ]
    if issues:
        raise ValidationError(issues)


def start_run(
    defn: WorkflowDefinition,
    inputs: dict[str, Any] | None = None,
    *,
    workflow_id: str | None = None,
    version_id: str | None = None,
    created_by: str | None = None,
    started_by: str = "system",
    started_via: str = "",
    actor: str = "",
    database_url: str | None = None,
) -> str:
    """Validate, record and start a run; returns its id.

    `started_by` is "user:<id>", "api_key:<id>", "cli:<os user>" or "system"; `started_via` one of
    STARTED_VIA. The start is written to the audit log (as `actor`, else `started_by`) in the same
    transaction as the run.
    """
    if started_via and started_via not in STARTED_VIA:
        raise ValueError(f"started_via: {started_via!r} is not one of {', '.join(STARTED_VIA)}")
    ensure_valid(defn)
    inputs = dict(inputs or {})
    check_inputs(defn, inputs)
    with _db(database_url).begin() as conn:
        run_id, sent = executor.create_run(
            conn, defn, inputs, workflow_id=workflow_id, version_id=version_id, created_by=created_by,
            started_by=started_by, started_via=started_via,
        )  # fmt: skip
        version = workflows.version_number(conn, version_id)
        _audit(conn, actor or started_by, "run.started", run_id,
               {"workflow_id": workflow_id, "workflow": defn.name, "version_id": version_id, "version": version,
                "started_by": started_by, "via": started_via})  # fmt: skip
    dispatch.send(sent)
    return run_id


def cancel_run(
    run_id: str,
    *,
    cancelled_by: str = "system",
    via: str = "",
    actor: str = "",
    database_url: str | None = None,
) -> bool:
    """Cancel a run that is still going (audited); False if it had already ended."""
    with _db(database_url).begin() as conn:
        cancelled = executor.cancel_run(conn, run_id)
        if cancelled:
            row = conn.execute(
                select(Run.workflow_id, Run.version_id, WorkflowVersion.version)
                .outerjoin(WorkflowVersion, WorkflowVersion.id == Run.version_id)
                .where(Run.id == run_id)
            ).first()
            _audit(conn, actor or cancelled_by, "run.cancelled", run_id,
                   {"workflow_id": row.workflow_id, "version_id": row.version_id, "version": row.version,
                    "cancelled_by": cancelled_by, "via": via})  # fmt: skip
        return cancelled


@dataclass
class RunView:
    """A run and its steps as the CLI, API and run view show them."""

    id: str
    status: str
    inputs: dict | None
    outputs: dict | None
    error: str | None
    steps: list[dict[str, Any]]
    started_by: str = ""
    started_via: str = ""


_STEP_FIELDS = (
    "id", "node_id", "node_type", "visit", "status", "attempt", "inputs", "outputs", "error",
    "queued_at", "started_at", "finished_at", "metrics",
)  # fmt: skip


def get_run(run_id: str, *, database_url: str | None = None) -> RunView | None:
    """The run with its steps in the order they were queued; None if unknown."""
    if workflows.parse_id(run_id) is None:
        return None
    runs, steps = Run.__table__, StepRun.__table__
    with _db(database_url).connect() as conn:
        run = conn.execute(
            select(runs.c.id, runs.c.status, runs.c.inputs, runs.c.outputs, runs.c.error, runs.c.started_by,
                   runs.c.started_via).where(runs.c.id == run_id)
        ).first()  # fmt: skip
        if run is None:
            return None
        rows = conn.execute(
            select(*(steps.c[name] for name in _STEP_FIELDS))
            .where(steps.c.run_id == run_id)
            .order_by(steps.c.queued_at, steps.c.visit)
        ).mappings()
        step_list = [dict(r) for r in rows]
    return RunView(
        str(run.id), run.status, run.inputs, run.outputs, run.error, step_list,
        started_by=run.started_by, started_via=run.started_via,
    )  # fmt: skip


@dataclass(frozen=True)
class RunSummary:
    """A run as lists show it: its workflow, version, who started it (with their e-mail) and when."""

    id: str
    status: str
    workflow_id: str | None
    workflow: str | None  # the workflow's name; None for a run of an unsaved definition
    version: int | None
    started_by: str
    started_via: str
    starter_email: str | None
    created_at: datetime
    finished_at: datetime | None


def list_runs(
    *,
    workflow_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
    database_url: str | None = None,
) -> list[RunSummary]:
    """Runs, newest first, optionally of one workflow and/or in one status."""
    query = (
        select(Run.id, Run.status, Run.workflow_id, Workflow.name, WorkflowVersion.version, Run.started_by,
               Run.started_via, User.email, Run.created_at, Run.finished_at)
        .outerjoin(Workflow, Workflow.id == Run.workflow_id)
        .outerjoin(WorkflowVersion, WorkflowVersion.id == Run.version_id)
        .outerjoin(User, User.id == Run.created_by)
    )  # fmt: skip
    if workflow_id is not None:
        wanted = workflows.parse_id(workflow_id)
        if wanted is None:
            return []
        query = query.where(Run.workflow_id == wanted)
    if status:
        query = query.where(Run.status == status)
    query = query.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit).offset(offset)
    with _db(database_url).connect() as conn:
        rows = conn.execute(query).all()
    return [RunSummary(str(r[0]), r[1], str(r[2]) if r[2] else None, *r[3:]) for r in rows]


def count_by_status(*, database_url: str | None = None) -> dict[str, int]:
    """How many runs have each status."""
    with _db(database_url).connect() as conn:
        rows = conn.execute(select(Run.status, func.count().label("count")).group_by(Run.status)).all()
    return {row.status: row.count for row in rows}

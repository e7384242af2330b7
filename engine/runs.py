"""Runs: start, cancel, read one with its steps, list and count them.

The one door to runs for the pages, the REST API, the CLI and triggers. A start or cancel is
audited (`run.started`, `run.cancelled`) in the run's own transaction.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, Unpack

from sqlalchemy import ColumnElement, Connection, String, cast, exists, func, or_, select, tuple_, update
from sqlmodel import col

from engine import audit, dispatch, executor, json_schemas, logs, metrics, run_slots, tracing, workflows
from engine.definition import WorkflowDefinition
from engine.errors import ErrorCode, FlowloomError, ValidationError
from engine.errors import Issue as _Issue
from engine.run_state import Dispatch
from engine.settings import get_settings
from engine.validate import ensure_valid
from models.auth import User
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Run, StepRun, Workflow, WorkflowVersion

# Where a run was started from (runs.started_via); "" when a caller did not say (tests, internals).
STARTED_VIA = ("ui", "api", "cli", "trigger", "mcp")
_RUN_ID_PREFIX = re.compile(r"[0-9a-f-]{1,36}")  # what a search term must look like to match run ids
log = logging.getLogger("flowloom.runs")


def _db(database_url: str | None = None):
    return get_engine(database_url or get_settings().database_url)


def _audit(conn: Connection, actor: str, action: str, run_id: str, details: dict[str, Any]) -> None:
    # The source is where the run was started or cancelled from (a trigger's start says "trigger").
    audit.record(conn, actor=actor, action=action, target_type="run", target_id=run_id, details=details,
                 source=str(details.get("via") or ""))  # fmt: skip


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


class StartOptions(TypedDict, total=False):
    """Who starts a run, from where and of what (the keyword arguments of start_run and start_run_in)."""

    workflow_id: str | None
    version_id: str | None
    created_by: str | None
    started_by: str  # "user:<id>", "api_key:<id>", "cli:<os user>", "trigger:<id>" or "system" (default)
    started_via: str  # one of STARTED_VIA
    actor: str  # who the audit entry names (default: started_by)
    trigger_id: str | None
    session_id: str | None
    # The workspace of a run of an unsaved definition (the caller's); a saved workflow's run is
    # always in its workflow's workspace (a database trigger copies it).
    workspace_id: str | uuid.UUID | None


def start_run(
    defn: WorkflowDefinition,
    inputs: dict[str, Any] | None = None,
    *,
    database_url: str | None = None,
    **options: Unpack[StartOptions],
) -> str:
    """Validate, record and start a run in a transaction of its own; returns its id.

    The start is written to the audit log in the same transaction as the run; its first step is
    sent after the commit.
    """
    with _db(database_url).begin() as conn:
        run_id, sent = start_run_in(conn, defn, inputs, **options)
    with tracing.in_run(run_id):  # the first step's message carries the run's trace context
        dispatch.send(sent, database_url=database_url)  # the broker away: the sweeper sends it later
    return run_id


def start_run_in(
    conn: Connection,
    defn: WorkflowDefinition,
    inputs: dict[str, Any] | None = None,
    *,
    workflow_id: str | None = None,
    version_id: str | None = None,
    created_by: str | None = None,
    started_by: str = "system",
    started_via: str = "",
    actor: str = "",
    trigger_id: str | None = None,
    session_id: str | None = None,
    workspace_id: str | uuid.UUID | None = None,
    take_slot: bool = True,
) -> tuple[str, list[Dispatch]]:
    """`start_run` inside the caller's transaction (a trigger delivery, an idempotency key or a
    Kafka offset commits with the run); the caller sends the returned steps after its commit.

    The workspace's runs-per-hour quota may refuse it (RUN_QUOTA_EXCEEDED); over a concurrency
    limit it is recorded as queued and starts when a slot frees (engine/run_slots.py). A child run
    (`take_slot=False`) neither counts nor waits: its parent holds the slot.
    """
    if started_via and started_via not in STARTED_VIA:
        raise ValueError(f"started_via: {started_via!r} is not one of {', '.join(STARTED_VIA)}")
    ensure_valid(defn, workflow_id=workflow_id)
    inputs = dict(inputs or {})
    check_inputs(defn, inputs)
    limits = run_slots.before_start(conn, workflow_id, _scope(workspace_id)) if take_slot else None
    waits = limits is not None and limits.limited
    run_id, sent = executor.create_run(
        conn, defn, inputs, workflow_id=workflow_id, version_id=version_id, created_by=created_by,
        started_by=started_by, started_via=started_via, trigger_id=trigger_id, session_id=session_id,
        waiting=waits,
    )  # fmt: skip
    if workflow_id is None and workspace_id is not None:
        conn.execute(update(Run).where(col(Run.id) == run_id).values(workspace_id=_scope(workspace_id)))
    if limits is not None and waits:  # it starts now if a slot is free, behind older waiting runs
        sent = run_slots.admit(conn, limits.workspace_id)
    version = workflows.version_number(conn, version_id)
    details = {"workflow_id": workflow_id, "workflow": defn.name, "version_id": version_id, "version": version,
               "started_by": started_by, "via": started_via}  # fmt: skip
    if trigger_id:
        details["trigger_id"] = trigger_id
    _audit(conn, actor or started_by, "run.started", run_id, details)
    metrics.run_started(defn.name, started_via)
    with logs.bound(run_id=run_id, workflow_id=workflow_id):
        log.info("run started (%s, via %s)", defn.name, started_via or "api")
    return run_id, sent


def _scope(workspace_id: uuid.UUID | str | None) -> uuid.UUID | None:
    """The workspace a read is limited to; a malformed id is a workspace that has nothing."""
    if workspace_id is None:
        return None
    return workflows.parse_id(workspace_id) or uuid.UUID(int=0)


def in_workspace(run_id: str, *, workspace_id: uuid.UUID | str, database_url: str | None = None) -> bool:
    """Whether run `run_id` exists in the workspace (callers of other workspaces get a 404 otherwise)."""
    wanted = workflows.parse_id(run_id)
    if wanted is None:
        return False
    query = select(col(Run.id)).where(col(Run.id) == wanted, col(Run.workspace_id) == _scope(workspace_id))
    with _db(database_url).connect() as conn:
        return conn.execute(query).first() is not None


def cancel_run(
    run_id: str,
    *,
    workspace_id: uuid.UUID | str | None = None,
    cancelled_by: str = "system",
    via: str = "",
    actor: str = "",
    database_url: str | None = None,
) -> bool:
    """Cancel a run that is still going (audited); False if it had already ended.

    With `workspace_id` (routes and pages: the caller's), a run of another workspace is left alone
    (False); callers check `in_workspace` first to answer it as unknown.
    """
    if workspace_id is not None and not in_workspace(
        run_id, workspace_id=workspace_id, database_url=database_url
    ):
        return False
    sent: list[Dispatch] = []  # a cancelled child run resumes its parent's step, which may route on
    with _db(database_url).begin() as conn:
        cancelled = executor.cancel_run(conn, run_id, sent=sent)
        if cancelled:
            row = conn.execute(
                select(col(Run.workflow_id), col(Run.version_id), col(WorkflowVersion.version))
                .outerjoin(WorkflowVersion, col(WorkflowVersion.id) == col(Run.version_id))
                .where(col(Run.id) == run_id)
            ).first()
            _audit(conn, actor or cancelled_by, "run.cancelled", run_id,
                   {"workflow_id": row.workflow_id, "version_id": row.version_id, "version": row.version,
                    "cancelled_by": cancelled_by, "via": via})  # fmt: skip
    dispatch.send(sent)
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
    workflow_id: str | None = None
    version: int | None = None  # the saved version it ran (None for an editor's unsaved draft)
    trigger_id: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # The run this one re-runs ("rerun", from node source_node_id) or forks ("fork"): engine/rerun.py.
    source_run_id: str | None = None
    source_kind: str = ""
    source_node_id: str | None = None
    # A child run of a sub-workflow step: the run and step that wait for it (steps carry child_run_id).
    parent_run_id: str | None = None
    parent_step_id: str | None = None


_STEP_FIELDS = (
    "id", "node_id", "node_type", "visit", "status", "attempt", "inputs", "outputs", "error",
    "queued_at", "started_at", "finished_at", "metrics", "reused_from",
    "child_run_id",
)  # fmt: skip


def get_run(
    run_id: str, *, workspace_id: uuid.UUID | str | None = None, database_url: str | None = None
) -> RunView | None:
    """The run with its steps in the order they were queued; None if unknown or, with `workspace_id`
    (routes and pages pass the caller's; None: engine-internal reads), of another workspace."""
    if workflows.parse_id(run_id) is None:
        return None
    runs, steps, versions = table_of(Run), table_of(StepRun), table_of(WorkflowVersion)
    with _db(database_url).connect() as conn:
        run = conn.execute(
            select(runs.c.id, runs.c.status, runs.c.inputs, runs.c.outputs, runs.c.error, runs.c.started_by,
                   runs.c.started_via, runs.c.workflow_id, versions.c.version, runs.c.trigger_id,
                   runs.c.created_at, runs.c.started_at, runs.c.finished_at, runs.c.source_run_id,
                   runs.c.source_kind, runs.c.source_node_id, runs.c.parent_run_id, runs.c.parent_step_id)
            .select_from(runs.outerjoin(versions, versions.c.id == runs.c.version_id))
            .where(runs.c.id == run_id)
            .where(*(() if workspace_id is None else (runs.c.workspace_id == _scope(workspace_id),)))
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
        workflow_id=str(run.workflow_id) if run.workflow_id else None, version=run.version,
        trigger_id=str(run.trigger_id) if run.trigger_id else None, created_at=run.created_at,
        started_at=run.started_at, finished_at=run.finished_at,
        source_run_id=str(run.source_run_id) if run.source_run_id else None, source_kind=run.source_kind,
        source_node_id=run.source_node_id,
        parent_run_id=str(run.parent_run_id) if run.parent_run_id else None,
        parent_step_id=str(run.parent_step_id) if run.parent_step_id else None,
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
    trigger_id: str | None = None
    started_at: datetime | None = None
    error: str | None = None


def run_cursor(run: RunSummary) -> str:
    """The opaque cursor of the page that follows `run` in `list_runs`' order."""
    raw = json.dumps([run.created_at.isoformat(), run.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_position(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, run_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = datetime.fromisoformat(created), uuid.UUID(run_id)
    except (ValueError, TypeError) as exc:  # binascii.Error and JSONDecodeError are ValueErrors
        raise FlowloomError(
            "cursor is not one this API gave out; pass next_cursor from the previous page",
            code=ErrorCode.REQUEST_INVALID, field="cursor",
        ) from exc  # fmt: skip
    if position[0].tzinfo is None:
        raise FlowloomError("cursor has no time zone", code=ErrorCode.REQUEST_INVALID, field="cursor")
    return position


def list_runs(
    *,
    workspace_id: uuid.UUID | str | None = None,
    workflow_id: str | None = None,
    status: str | Sequence[str] | None = None,
    started_via: str | None = None,
    trigger_id: str | None = None,
    created_by: str | None = None,
    started_by: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    search: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
    offset: int = 0,
    database_url: str | None = None,
) -> list[RunSummary]:
    """Runs, newest first (created_at, then id), matching every filter given.

    `status` may be several (any of them); `created_by` is a user id, `started_by` the exact
    "user:<id>"/"api_key:<id>"/... value; created_after <= created_at < created_before; `search`
    matches the start of the run id or part of the workflow's name (any case). `cursor`
    (from `run_cursor` of the last run of a page) continues after that run: pages stay stable
    while new runs start. A malformed cursor is a REQUEST_INVALID naming the field.
    `workspace_id` limits them to one workspace (routes and pages pass the caller's).
    """
    query = (
        select(col(Run.id), col(Run.status), col(Run.workflow_id), col(Workflow.name), col(WorkflowVersion.version), col(Run.started_by),
               col(Run.started_via), col(User.email), col(Run.created_at), col(Run.finished_at), col(Run.trigger_id), col(Run.started_at),
               col(Run.error))
        .outerjoin(Workflow, col(Workflow.id) == col(Run.workflow_id))
        .outerjoin(WorkflowVersion, col(WorkflowVersion.id) == col(Run.version_id))
        .outerjoin(User, col(User.id) == col(Run.created_by))
    )  # fmt: skip
    if workspace_id is not None:
        query = query.where(col(Run.workspace_id) == _scope(workspace_id))
    for column, value in (
        (col(Run.workflow_id), workflow_id),
        (col(Run.trigger_id), trigger_id),
        (col(Run.created_by), created_by),
    ):
        if value is not None:
            wanted = workflows.parse_id(value)
            if wanted is None:  # a malformed id matches no run
                return []
            query = query.where(column == wanted)
    statuses = [status] if isinstance(status, str) else list(status or [])
    if statuses:
        query = query.where(col(Run.status).in_(statuses))
    if started_via is not None:
        query = query.where(col(Run.started_via) == started_via)
    if started_by is not None:
        query = query.where(col(Run.started_by) == started_by)
    if created_after is not None:
        query = query.where(col(Run.created_at) >= created_after)
    if created_before is not None:
        query = query.where(col(Run.created_at) < created_before)
    if search and search.strip():
        query = query.where(_matches(search.strip()))
    if cursor:
        query = query.where(tuple_(col(Run.created_at), col(Run.id)) < tuple_(*_cursor_position(cursor)))
    query = query.order_by(col(Run.created_at).desc(), col(Run.id).desc()).limit(limit).offset(offset)
    with _db(database_url).connect() as conn:
        rows = conn.execute(query).all()
    return [
        RunSummary(
            str(r.id),
            r.status,
            str(r.workflow_id) if r.workflow_id else None,
            r.name,
            r.version,
            r.started_by,
            r.started_via,
            r.email,
            r.created_at,
            r.finished_at,
            trigger_id=str(r.trigger_id) if r.trigger_id else None,
            started_at=r.started_at,
            error=r.error,
        )  # fmt: skip
        for r in rows
    ]


def _matches(term: str) -> ColumnElement[bool]:
    """Runs whose id starts with `term` or whose workflow's name contains it."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    by_name = col(Workflow.name).ilike(f"%{escaped}%", escape="\\")
    prefix = term.lower()
    if not _RUN_ID_PREFIX.fullmatch(prefix):
        return by_name
    return or_(cast(col(Run.id), String).like(f"{prefix}%"), by_name)


def run_starters(
    *, workspace_id: uuid.UUID | str | None = None, limit: int = 200, database_url: str | None = None
) -> list[tuple[str, str]]:
    """The users who started at least one run (of the workspace, when given), as (user id, e-mail) by
    e-mail: a "started by" filter's choices."""
    started = exists().where(col(Run.created_by) == col(User.id))
    if workspace_id is not None:
        started = started.where(col(Run.workspace_id) == _scope(workspace_id))
    query = select(col(User.id), col(User.email)).where(started).order_by(col(User.email)).limit(limit)
    with _db(database_url).connect() as conn:
        return [(str(r.id), r.email) for r in conn.execute(query)]


def count_by_status(
    *, workspace_id: uuid.UUID | str | None = None, database_url: str | None = None
) -> dict[str, int]:
    """How many runs (of the workspace, when given) have each status."""
    query = select(col(Run.status), func.count().label("count")).group_by(col(Run.status))
    if workspace_id is not None:
        query = query.where(col(Run.workspace_id) == _scope(workspace_id))
    with _db(database_url).connect() as conn:
        rows = conn.execute(query).all()
    return {row.status: row.count for row in rows}

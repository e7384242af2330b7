"""Retention: what a workspace's policy prunes, shown before it happens and done in small batches.

A workspace's policy (engine/workspace_limits.py) has three rules, each off when unset:

- `retention_days`: an ended run whose end is older than this many days is deleted (its steps,
  approvals and events with it). Unset, the compliance block's `data_retention_days` applies; a
  run whose workflow sets `policy.guardrails.compliance.data_retention_days` keeps the shorter.
- `retention_keep_last`: of each workflow's ended runs only the newest N are kept (runs of an
  unsaved definition count as one group).
- `step_data_retention_days`: a run's step inputs and outputs are cleared this many days after it
  ended; the run's summary (status, inputs, outputs, error, times) stays until a rule above deletes it.

Every rule that is set applies (a run goes when any of them says so). Only ended top-level runs
are judged; running, waiting and queued runs never go, and a child run goes with its parent.
`preview` and `prune` read the same statements, so the settings page shows exactly what the next
prune removes. `prune` takes the list of runs first, then deletes them `FLOWLOOM_PRUNE_BATCH_SIZE`
at a time, each batch its own short transaction with a lock timeout: it never holds the tables long.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.sql import Select

from engine import workspace_limits
from engine.run_state import status_literals
from engine.settings import get_settings
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Event, Run, StepRun, Workflow
from models.workspaces import Workspace

_runs, _steps, _events = table_of(Run), table_of(StepRun), table_of(Event)
_workflows, _workspaces = table_of(Workflow), table_of(Workspace)
ENDED = status_literals("succeeded", "failed", "cancelled")
SNAPSHOT_LIMIT = 50_000  # runs one prune pass lists; the next pass continues
EXAMPLES = 20
log = logging.getLogger("flowloom.retention")


@dataclass(frozen=True)
class Policy:
    """One workspace's retention rules, with the compliance default applied (None: rule off)."""

    workspace_id: uuid.UUID
    retention_days: int | None
    keep_last: int | None
    step_data_days: int | None
    workflow_compliance: bool = True  # a workflow's compliance.data_retention_days may shorten retention_days

    @classmethod
    def of(cls, conn: Connection, workspace_id: uuid.UUID | str) -> Policy:
        """The policy of the workspace as stored, the compliance block filling retention_days."""
        limits = workspace_limits.get_limits(conn, workspace_id)
        return cls(uuid.UUID(str(workspace_id)), workspace_limits.effective_retention_days(limits),
                   limits.retention_keep_last, limits.step_data_retention_days)  # fmt: skip


@dataclass(frozen=True)
class PrunedRun:
    """A run the policy deletes, and which rule says so."""

    id: str
    workflow: str | None
    status: str
    finished_at: datetime | None
    by_age: bool
    by_count: bool


@dataclass
class PruneReport:
    """What a prune removes (`preview`) or removed (`prune`)."""

    runs: int = 0
    runs_by_age: int = 0
    runs_by_count: int = 0
    steps_cleared: int = 0
    examples: list[PrunedRun] = field(default_factory=list)
    run_ids: set[str] = field(default_factory=set)
    step_ids: set[str] = field(default_factory=set)


def _days_ago(days: Any) -> ColumnElement[Any]:
    return func.now() - func.make_interval(0, 0, 0, days)


def _workflow_days() -> ColumnElement[Any]:
    """The run's own definition's compliance.data_retention_days (NULL when it sets none)."""
    raw = _runs.c.definition["policy"]["guardrails"]["compliance"]["data_retention_days"].astext
    return case((raw.op("~")("^[1-9][0-9]{0,6}$"), cast(raw, Integer)), else_=None)


def _doomed(policy: Policy) -> Select[Any]:
    """The ended top-level runs of the workspace with whether each rule deletes it, oldest first."""
    ended = and_(_runs.c.workspace_id == policy.workspace_id, _runs.c.parent_run_id.is_(None),
                 _runs.c.status.in_(ENDED))  # fmt: skip
    ended_at = func.coalesce(_runs.c.finished_at, _runs.c.created_at)
    days = func.least(literal(policy.retention_days, Integer), _workflow_days()) if policy.workflow_compliance \
        else literal(policy.retention_days, Integer)  # fmt: skip
    rank = func.row_number().over(partition_by=_runs.c.workflow_id,
                                  order_by=(_runs.c.created_at.desc(), _runs.c.id.desc()))  # fmt: skip
    ranked = (
        select(_runs.c.id, _runs.c.workflow_id, _runs.c.status, _runs.c.finished_at, _runs.c.created_at,
               and_(days.is_not(None), ended_at < _days_ago(days)).label("by_age"), rank.label("rank"))
        .where(ended)
        .subquery()
    )  # fmt: skip
    by_count = ranked.c.rank > policy.keep_last if policy.keep_last is not None else literal(False)
    return (
        select(ranked.c.id, ranked.c.workflow_id, ranked.c.status, ranked.c.finished_at,
               func.coalesce(ranked.c.by_age, False).label("by_age"), by_count.label("by_count"))
        .where(or_(ranked.c.by_age, by_count))
        .order_by(ranked.c.created_at, ranked.c.id)
    )  # fmt: skip


def _step_data(policy: Policy, spared: set[str] | None = None) -> Select[Any]:
    """Steps with inputs or outputs left, of ended runs older than step_data_days (not `spared`)."""
    query = (
        select(_steps.c.id)
        .select_from(_steps.join(_runs, _runs.c.id == _steps.c.run_id))
        .where(
            _runs.c.workspace_id == policy.workspace_id,
            _runs.c.status.in_(ENDED),
            func.coalesce(_runs.c.finished_at, _runs.c.created_at) < _days_ago(policy.step_data_days),
            or_(_steps.c.inputs.is_not(None), _steps.c.outputs.is_not(None)),
        )
    )
    if spared:
        ids = [uuid.UUID(i) for i in spared]
        query = query.where(
            _runs.c.id.not_in(ids), or_(_runs.c.parent_run_id.is_(None), _runs.c.parent_run_id.not_in(ids))
        )
    return query


def preview(conn: Connection, workspace_id: uuid.UUID | str, *, policy: Policy | None = None) -> PruneReport:
    """What the next prune of the workspace removes: runs (and why), and steps whose data it clears."""
    policy = policy or Policy.of(conn, workspace_id)
    report = PruneReport()
    if policy.retention_days is not None or policy.keep_last is not None or policy.workflow_compliance:
        doomed = _doomed(policy).subquery()
        rows = conn.execute(
            select(doomed, _workflows.c.name).outerjoin(_workflows, _workflows.c.id == doomed.c.workflow_id)
        ).all()
        for r in rows:
            report.run_ids.add(str(r.id))
            report.runs_by_age += bool(r.by_age)
            report.runs_by_count += bool(r.by_count)
            if len(report.examples) < EXAMPLES:
                report.examples.append(
                    PrunedRun(str(r.id), r.name, r.status, r.finished_at, r.by_age, r.by_count)
                )
        report.runs = len(report.run_ids)
    if policy.step_data_days is not None:
        report.step_ids = {str(i) for i in conn.execute(_step_data(policy, report.run_ids)).scalars()}
        report.steps_cleared = len(report.step_ids)
    return report


_CHILDREN = select(_runs.c.id).where(_runs.c.parent_run_id == func.any(bindparam("ids", type_=ARRAY(UUID))))


def _with_descendants(conn: Connection, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    found, level = list(ids), list(ids)
    while level:
        level = [i for i in conn.execute(_CHILDREN, {"ids": level}).scalars() if i not in found]
        found += level
    return found


def _short_locks(conn: Connection) -> None:
    """A batch that would wait for a lock gives up (the next pass retries) rather than queue writers."""
    conn.execute(select(func.set_config("lock_timeout", "2s", True)))


def _delete_runs(engine: Engine, ids: list[uuid.UUID], batch: int) -> set[str]:
    deleted: set[str] = set()
    for start in range(0, len(ids), batch):
        with engine.begin() as conn:
            _short_locks(conn)
            chunk = ids[start : start + batch]
            everything = _with_descendants(conn, chunk)
            conn.execute(delete(_events).where(_events.c.run_id.in_(everything)))
            gone = conn.execute(
                delete(_runs).where(_runs.c.id.in_(chunk), _runs.c.status.in_(ENDED)).returning(_runs.c.id)
            )  # steps, approvals and child runs go by their foreign keys (ON DELETE CASCADE)
            deleted |= {str(i) for i in gone.scalars()}
    return deleted


def _clear_step_data(engine: Engine, policy: Policy, batch: int) -> set[str]:
    cleared: set[str] = set()
    while True:
        with engine.begin() as conn:
            _short_locks(conn)
            chosen = _step_data(policy).limit(batch).scalar_subquery()
            rows = conn.execute(
                update(_steps)
                .where(_steps.c.id.in_(chosen))
                .values(inputs=null(), outputs=null())  # SQL NULL: None would store JSON null
                .returning(_steps.c.id)
            )
            done = {str(i) for i in rows.scalars()}
        cleared |= done
        if len(done) < batch:
            return cleared


def prune(
    workspace_id: uuid.UUID | str, *, database_url: str | None = None, batch: int | None = None
) -> PruneReport:
    """Apply the workspace's policy now, in batches; what was removed."""
    engine = get_engine(database_url or get_settings().database_url)
    batch = batch or get_settings().prune_batch_size
    with engine.connect() as conn:
        policy = Policy.of(conn, workspace_id)
        doomed = conn.execute(_doomed(policy).limit(SNAPSHOT_LIMIT)).all()
    report = PruneReport()
    report.run_ids = _delete_runs(engine, [r.id for r in doomed], batch)
    report.runs = len(report.run_ids)
    report.runs_by_age = sum(1 for r in doomed if r.by_age and str(r.id) in report.run_ids)
    report.runs_by_count = sum(1 for r in doomed if r.by_count and str(r.id) in report.run_ids)
    if policy.step_data_days is not None:
        report.step_ids = _clear_step_data(engine, policy, batch)
        report.steps_cleared = len(report.step_ids)
    return report


def prune_all(*, database_url: str | None = None) -> dict[str, PruneReport]:
    """Prune every workspace (one worker at a time: the others skip while one holds the lock)."""
    engine = get_engine(database_url or get_settings().database_url)
    key = func.hashtextextended("flowloom.retention.prune", 0)
    with engine.connect() as lock:
        if not lock.execute(select(func.pg_try_advisory_lock(key))).scalar():
            return {}
        lock.commit()
        try:
            workspaces = list(lock.execute(select(_workspaces.c.id)).scalars())
            lock.commit()
            reports = {str(ws): prune(ws, database_url=database_url) for ws in workspaces}
        finally:
            lock.execute(select(func.pg_advisory_unlock(key)))
            lock.commit()
    for ws, report in reports.items():
        if report.runs or report.steps_cleared:
            log.info("retention: workspace %s: deleted %d run(s), cleared the data of %d step(s)",
                     ws, report.runs, report.steps_cleared)  # fmt: skip
    return reports

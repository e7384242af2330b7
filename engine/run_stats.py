"""What the dashboard charts: runs over time by status, success rate, step durations by node type,
the slowest workflows, queue depth and approvals waiting over time, for one period.

All read from the run, step and approval rows (the database is the source of truth; Prometheus
keeps its own history of engine/metrics.py). Times are bucketed on the database's clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Float,
    and_,
    cast,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine

from models.core_tables import table_of
from models.tables import Approval, Run, StepRun, Workflow

# Period key (the runs list's time ranges) -> (how far back, bucket width).
PERIODS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=5)),
    "24h": (timedelta(days=1), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(hours=6)),
    "30d": (timedelta(days=30), timedelta(days=1)),
}
RUN_STATUSES = ("succeeded", "failed", "cancelled", "running", "queued")
ENDED = ("succeeded", "failed", "cancelled")
SLOWEST = 5
QUEUED_LOOKBACK = timedelta(days=1)  # a step queued for longer than this before the period is not counted

_runs, _steps, _approvals, _workflows = (
    table_of(Run),
    table_of(StepRun),
    table_of(Approval),
    table_of(Workflow),
)


@dataclass
class Bucket:
    """One slice of the period: runs started in it by status, and what waited at its end."""

    start: datetime
    runs: dict[str, int] = field(default_factory=dict)
    queued_steps: int = 0
    pending_approvals: int = 0

    @property
    def success_rate(self) -> float | None:
        """Succeeded / ended runs started in this bucket (None when none ended)."""
        ended = sum(self.runs.get(s, 0) for s in ENDED)
        return self.runs.get("succeeded", 0) / ended if ended else None


@dataclass(frozen=True)
class NodeTypeDurations:
    node_type: str
    steps: int
    p50_s: float
    p95_s: float


@dataclass(frozen=True)
class WorkflowDuration:
    workflow_id: str | None
    name: str
    runs: int
    p95_s: float
    max_s: float


@dataclass
class DashboardStats:
    period: str
    since: datetime
    until: datetime
    buckets: list[Bucket]
    durations: list[NodeTypeDurations]
    slowest: list[WorkflowDuration]
    queue_depth: int
    oldest_queued_s: float
    pending_approvals: int
    oldest_approval_s: float

    @property
    def totals(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for bucket in self.buckets:
            for status, count in bucket.runs.items():
                found[status] = found.get(status, 0) + count
        return found

    @property
    def success_rate(self) -> float | None:
        totals = self.totals
        ended = sum(totals.get(s, 0) for s in ENDED)
        return totals.get("succeeded", 0) / ended if ended else None


def _epoch(column):
    return func.extract("epoch", column)


def _bucket_of(column, since: datetime, width: timedelta):
    """The index of the bucket a timestamp falls in."""
    return func.floor(
        (_epoch(column) - _epoch(literal(since, DateTime(timezone=True)))) / width.total_seconds()
    )


@dataclass(frozen=True)
class _Scope:
    """Which rows count: the runs of one workspace (and their steps and approvals), or all."""

    runs: ColumnElement[bool]
    steps: ColumnElement[bool]
    approvals: ColumnElement[bool]

    @classmethod
    def of(cls, workspace_id: str | uuid.UUID | None) -> _Scope:
        if workspace_id is None:
            return cls(true(), true(), true())
        try:
            wanted = uuid.UUID(str(workspace_id))
        except ValueError:
            wanted = uuid.UUID(int=0)  # names no workspace: nothing counts
        ids = select(_runs.c.id).where(_runs.c.workspace_id == wanted)
        return cls(_runs.c.workspace_id == wanted, _steps.c.run_id.in_(ids), _approvals.c.run_id.in_(ids))


def dashboard_stats(
    engine: Engine, period: str = "24h", *, workspace_id: str | uuid.UUID | None = None
) -> DashboardStats:
    """Every chart's data for `period` (a key of PERIODS), up to now; of one workspace's runs when
    `workspace_id` is given (the dashboard passes the caller's)."""
    back, width = PERIODS[period]
    scope = _Scope.of(workspace_id)
    with engine.connect() as conn:
        until = conn.execute(select(func.now())).scalar_one()
        since = until - back
        count = int(back / width)
        buckets = [Bucket(start=since + width * i) for i in range(count)]
        _runs_by_status(conn, buckets, since, width, scope)
        _waiting_over_time(conn, buckets, width, scope)
        durations = _step_durations(conn, since, scope)
        slowest = _slowest_workflows(conn, since, scope)
        queue_depth, oldest_queued = _queue_now(conn, scope)
        pending, oldest_approval = _approvals_now(conn, scope)
    return DashboardStats(
        period,
        since,
        until,
        buckets,
        durations,
        slowest,
        queue_depth,
        oldest_queued,
        pending,
        oldest_approval,
    )


def _runs_by_status(
    conn: Connection, buckets: list[Bucket], since: datetime, width: timedelta, scope: _Scope
) -> None:
    index = _bucket_of(_runs.c.created_at, since, width).label("i")
    rows = conn.execute(
        select(index, _runs.c.status, func.count().label("n"))
        .where(_runs.c.created_at >= since, scope.runs)
        .group_by(index, _runs.c.status)
    ).all()
    for row in rows:
        i = min(int(row.i), len(buckets) - 1)
        buckets[i].runs[row.status] = buckets[i].runs.get(row.status, 0) + row.n


def _waiting_over_time(conn: Connection, buckets: list[Bucket], width: timedelta, scope: _Scope) -> None:
    """At each bucket's end: steps recorded but not started yet, and approvals not decided yet."""
    ends = [b.start + width for b in buckets]
    moments = (
        func.unnest(literal(ends, type_=ARRAY(DateTime(timezone=True))))
        .table_valued("t")
        .render_derived(name="m")
    )
    t = moments.c.t
    queued = conn.execute(
        select(t, func.count(_steps.c.id))
        .select_from(moments)
        .outerjoin(
            _steps,
            and_(
                _steps.c.queued_at <= t,
                or_(
                    _steps.c.started_at > t, and_(_steps.c.started_at.is_(None), _steps.c.status == "queued")
                ),
                _steps.c.queued_at >= buckets[0].start - QUEUED_LOOKBACK,  # older ones long ran
                scope.steps,
            ),
        )
        .group_by(t)
    ).all()
    pending = conn.execute(
        select(t, func.count(_approvals.c.id))
        .select_from(moments)
        .outerjoin(
            _approvals,
            and_(
                _approvals.c.created_at <= t,
                or_(
                    _approvals.c.decided_at > t,
                    and_(_approvals.c.decided_at.is_(None), _approvals.c.status == "pending"),
                ),
                scope.approvals,
            ),
        )
        .group_by(t)
    ).all()
    queued_at = {row[0]: row[1] for row in queued}
    pending_at = {row[0]: row[1] for row in pending}
    for bucket, end in zip(buckets, ends, strict=True):
        bucket.queued_steps = int(queued_at.get(end, 0))
        bucket.pending_approvals = int(pending_at.get(end, 0))


def _step_durations(conn: Connection, since: datetime, scope: _Scope) -> list[NodeTypeDurations]:
    seconds = cast(_epoch(_steps.c.finished_at - _steps.c.started_at), Float)
    rows = conn.execute(
        select(
            _steps.c.node_type,
            func.count().label("n"),
            func.percentile_cont(0.5).within_group(seconds).label("p50"),
            func.percentile_cont(0.95).within_group(seconds).label("p95"),
        )
        .where(
            _steps.c.finished_at >= since,
            _steps.c.started_at.is_not(None),
            _steps.c.status.in_(("succeeded", "failed")),
            scope.steps,
        )
        .group_by(_steps.c.node_type)
        .order_by(func.percentile_cont(0.95).within_group(seconds).desc())
    ).all()
    return [NodeTypeDurations(r.node_type, r.n, float(r.p50 or 0), float(r.p95 or 0)) for r in rows]


def _slowest_workflows(conn: Connection, since: datetime, scope: _Scope) -> list[WorkflowDuration]:
    seconds = cast(_epoch(_runs.c.finished_at - _runs.c.created_at), Float)
    p95 = func.percentile_cont(0.95).within_group(seconds)
    name = func.coalesce(func.max(_workflows.c.name), "(no saved workflow)")
    rows = conn.execute(
        select(
            _runs.c.workflow_id,
            name.label("name"),
            func.count().label("n"),
            p95.label("p95"),
            func.max(seconds).label("max"),
        )  # fmt: skip
        .select_from(_runs.outerjoin(_workflows, _workflows.c.id == _runs.c.workflow_id))
        .where(_runs.c.finished_at >= since, _runs.c.status.in_(ENDED), scope.runs)
        .group_by(_runs.c.workflow_id)
        .order_by(p95.desc())
        .limit(SLOWEST)
    ).all()
    return [
        WorkflowDuration(
            str(r.workflow_id) if r.workflow_id else None, r.name, r.n, float(r.p95 or 0), float(r.max or 0)
        )
        for r in rows
    ]


def _queue_now(conn: Connection, scope: _Scope) -> tuple[int, float]:
    due = (
        (_steps.c.status == "queued")
        & (_steps.c.not_before.is_(None) | (_steps.c.not_before <= func.now()))
        & scope.steps
    )
    n, age = conn.execute(
        select(func.count(), _epoch(func.now() - func.min(_steps.c.queued_at))).where(due)
    ).one()
    return int(n), float(age or 0)


def _approvals_now(conn: Connection, scope: _Scope) -> tuple[int, float]:
    n, age = conn.execute(
        select(func.count(), _epoch(func.now() - func.min(_approvals.c.created_at))).where(
            _approvals.c.status == "pending", scope.approvals
        )
    ).one()
    return int(n), float(age or 0)

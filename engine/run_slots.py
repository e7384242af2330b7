"""Run slots: concurrency limits per workflow and per workspace, and the runs-per-hour quota.

A run started while its workflow (`workflows.max_concurrent_runs`) or its workspace
(`workspaces.max_concurrent_runs`) already has as many runs running as allowed is recorded with
status `queued` and its start step queued but not sent: `claim_step` takes steps of running runs
only, so nothing of it runs. When a slot frees (a run ends, in the transaction that ends it) or on
each sweep of every worker (`admit_waiting`: nothing waits forever when a worker died between the
commit and the admission), the oldest waiting runs (created_at, id) are admitted: status
`running`, `workflow.started`, and their queued steps sent after the commit.

Every decision about one workspace (admit, queue, count toward the quota) is taken under a
transaction-scoped advisory lock of that workspace, so two runs ending at once, or a start racing
an end on another worker, never admit more than the limits allow. A waiting run being cancelled
holds its row lock; admission skips it (`SKIP LOCKED`), and a cancelled run is never admitted.

Child runs (a sub-workflow step waits for them) neither queue nor count: their parent holds a
slot, and queueing a child behind its own parent would wait forever.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from engine import events
from engine.errors import ErrorCode, FlowloomError
from engine.run_state import Dispatch, status_literal
from models.core_tables import table_of
from models.tables import Run, StepRun, Workflow
from models.workspace_column import DEFAULT_WORKSPACE_ID
from models.workspaces import Workspace

_runs, _steps, _workflows, _workspaces = (
    table_of(Run),
    table_of(StepRun),
    table_of(Workflow),
    table_of(Workspace),
)
ADMIT_BATCH = 1000  # waiting runs looked at per admission (the oldest first)


@dataclass(frozen=True)
class StartLimits:
    """What applies to a new run of one workflow (None: no such limit)."""

    workspace_id: uuid.UUID
    workspace_name: str
    workspace_max: int | None
    workflow_max: int | None
    runs_per_hour: int | None

    @property
    def limited(self) -> bool:
        """Whether a new run may have to wait for a slot."""
        return self.workspace_max is not None or self.workflow_max is not None


_WORKFLOW_LIMITS = (
    select(
        _workspaces.c.id,
        _workspaces.c.name,
        _workspaces.c.max_concurrent_runs,
        _workflows.c.max_concurrent_runs.label("workflow_max"),
        _workspaces.c.runs_per_hour,
    )
    .select_from(_workflows.join(_workspaces, _workspaces.c.id == _workflows.c.workspace_id))
    .where(_workflows.c.id == bindparam("wf"))
)
_WORKSPACE_LIMITS = select(
    _workspaces.c.id,
    _workspaces.c.name,
    _workspaces.c.max_concurrent_runs,
    literal(None).label("workflow_max"),
    _workspaces.c.runs_per_hour,
).where(_workspaces.c.id == bindparam("ws"))


def start_limits(
    conn: Connection, workflow_id: str | None, workspace_id: uuid.UUID | None = None
) -> StartLimits | None:
    """The limits a new run of `workflow_id` meets (None: an unsaved definition, run in
    `workspace_id` or the default workspace)."""
    if workflow_id is not None:
        row = conn.execute(_WORKFLOW_LIMITS, {"wf": workflow_id}).first()
    else:
        row = conn.execute(_WORKSPACE_LIMITS, {"ws": workspace_id or DEFAULT_WORKSPACE_ID}).first()
    if row is None:
        return None
    return StartLimits(row.id, row.name, row.max_concurrent_runs, row.workflow_max, row.runs_per_hour)


def lock_workspace(conn: Connection, workspace_id: uuid.UUID | str) -> None:
    """Serialize slot decisions of one workspace until this transaction ends."""
    key = func.hashtextextended(f"flowloom.run_slots:{workspace_id}", 0)
    conn.execute(select(func.pg_advisory_xact_lock(key)))


_STARTED_LAST_HOUR = select(func.count()).where(
    _runs.c.workspace_id == bindparam("ws"),
    _runs.c.parent_run_id.is_(None),
    _runs.c.created_at > func.now() - func.make_interval(0, 0, 0, 0, 1),
)


def check_quota(conn: Connection, limits: StartLimits) -> None:
    """Refuse a start past the workspace's runs_per_hour (RUN_QUOTA_EXCEEDED); call under the lock."""
    if limits.runs_per_hour is None:
        return
    started = conn.execute(_STARTED_LAST_HOUR, {"ws": limits.workspace_id}).scalar_one()
    if started >= limits.runs_per_hour:
        raise FlowloomError(
            f'workspace "{limits.workspace_name}" started {started} runs in the last hour; its quota is '
            f"{limits.runs_per_hour} runs per hour (Settings, Limits and retention): try again later",
            code=ErrorCode.RUN_QUOTA_EXCEEDED,
        )


def before_start(
    conn: Connection, workflow_id: str | None, workspace_id: uuid.UUID | None = None
) -> StartLimits | None:
    """Lock the workspace and check its quota when a limit or quota applies; the limits, or None."""
    limits = start_limits(conn, workflow_id, workspace_id)
    if limits is None or not (limits.limited or limits.runs_per_hour is not None):
        return None
    lock_workspace(conn, limits.workspace_id)
    check_quota(conn, limits)
    return limits


_WAITING = (
    select(_runs.c.id, _runs.c.workflow_id, _workflows.c.max_concurrent_runs)
    .select_from(_runs.outerjoin(_workflows, _workflows.c.id == _runs.c.workflow_id))
    .where(_runs.c.workspace_id == bindparam("ws"), _runs.c.status == status_literal("queued"))
    .order_by(_runs.c.created_at, _runs.c.id)
    .limit(ADMIT_BATCH)
    .with_for_update(of=_runs, skip_locked=True)
)
_RUNNING = (
    select(_runs.c.workflow_id, func.count().label("n"))
    .where(
        _runs.c.workspace_id == bindparam("ws"),
        _runs.c.status == status_literal("running"),
        _runs.c.parent_run_id.is_(None),
    )
    .group_by(_runs.c.workflow_id)
)
_ids = bindparam("ids", type_=ARRAY(UUID(as_uuid=True)))
_ADMIT = (
    update(_runs)
    .values(status="running", started_at=func.now())
    .where(_runs.c.id == func.any(_ids), _runs.c.status == status_literal("queued"))
    .returning(_runs.c.id, _runs.c.definition["id"].astext.label("wf"),
               _runs.c.definition["name"].astext.label("name"), _runs.c.inputs)
)  # fmt: skip
_SEND_STEPS = (
    update(_steps)
    .values(sent_at=func.now())
    .where(_steps.c.run_id == func.any(_ids), _steps.c.status == status_literal("queued"))
    .returning(_steps.c.id)
)
_WORKSPACE_MAX = select(_workspaces.c.max_concurrent_runs).where(_workspaces.c.id == bindparam("ws"))


def admit(conn: Connection, workspace_id: uuid.UUID | str) -> list[Dispatch]:
    """Admit the oldest waiting runs of the workspace that fit its limits; their steps to send."""
    lock_workspace(conn, workspace_id)
    waiting = conn.execute(_WAITING, {"ws": workspace_id}).all()
    if not waiting:
        return []
    workspace_max = conn.execute(_WORKSPACE_MAX, {"ws": workspace_id}).scalar()
    by_workflow = Counter({r.workflow_id: r.n for r in conn.execute(_RUNNING, {"ws": workspace_id})})
    running = sum(by_workflow.values())
    chosen: list[uuid.UUID] = []
    for run in waiting:
        if workspace_max is not None and running >= workspace_max:
            break
        if run.max_concurrent_runs is not None and by_workflow[run.workflow_id] >= run.max_concurrent_runs:
            continue  # its workflow is full; a later run of another workflow may still fit
        chosen.append(run.id)
        by_workflow[run.workflow_id] += 1
        running += 1
    if not chosen:
        return []
    for row in conn.execute(_ADMIT, {"ids": chosen}):
        events.emit(conn, events.WORKFLOW_STARTED, str(row.id), workflow=row.wf, name=row.name,
                    inputs=row.inputs or {})  # fmt: skip
    return [Dispatch(str(step_id)) for step_id in conn.execute(_SEND_STEPS, {"ids": chosen}).scalars()]


_ENDED_RUN_LIMITED = (
    select(_runs.c.workspace_id)
    .select_from(
        _runs.join(_workspaces, _workspaces.c.id == _runs.c.workspace_id).outerjoin(
            _workflows, _workflows.c.id == _runs.c.workflow_id
        )
    )
    .where(
        _runs.c.id == bindparam("run"),
        _runs.c.parent_run_id.is_(None),
        or_(_workspaces.c.max_concurrent_runs.is_not(None), _workflows.c.max_concurrent_runs.is_not(None)),
    )
)


def run_ended(conn: Connection, run_id: str) -> list[Dispatch]:
    """In the transaction that ends a run: admit what its slot lets start (nothing without limits)."""
    workspace_id = conn.execute(_ENDED_RUN_LIMITED, {"run": run_id}).scalar()
    return [] if workspace_id is None else admit(conn, workspace_id)


_WORKSPACES_WAITING = (
    select(_runs.c.workspace_id).where(_runs.c.status == status_literal("queued")).distinct()
)


def workspaces_waiting(conn: Connection) -> list[uuid.UUID]:
    """The workspaces with at least one run waiting for a slot."""
    return list(conn.execute(_WORKSPACES_WAITING).scalars())


_WAITING_AHEAD = select(func.count()).where(
    _runs.c.workspace_id == bindparam("ws"),
    _runs.c.status == status_literal("queued"),
    or_(
        _runs.c.created_at < bindparam("created"),
        and_(_runs.c.created_at == bindparam("created"), _runs.c.id < bindparam("run")),
    ),
)


def waiting_ahead(conn: Connection, run_id: str) -> int | None:
    """How many runs of its workspace wait before this queued run; None if it does not wait."""
    run = conn.execute(
        select(_runs.c.workspace_id, _runs.c.created_at, _runs.c.status).where(_runs.c.id == run_id)
    ).first()
    if run is None or run.status != "queued":
        return None
    params = {"ws": run.workspace_id, "created": run.created_at, "run": run_id}
    return int(conn.execute(_WAITING_AHEAD, params).scalar_one())

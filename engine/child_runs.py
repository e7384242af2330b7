"""Child runs: a step whose node returned `ChildRun` starts a saved workflow version and waits.

The parent step is parked as `waiting` (no worker is held) with the child's id in
`step_runs.child_run_id`; the child run records `parent_run_id` and `parent_step_id`. When the
child ends, `executor._end_run` finishes the parent step in the same transaction (outputs, or the
child's error), and when the parent ends first it cancels the child. A step with `timeout_s` is
parked with that deadline in `not_before`; the worker sweeper (`expire_due`) cancels the child
run of a step still waiting past it and fails the step with a timeout. All of it is one
transaction per change, so a worker that dies at any point loses nothing: the child's steps are
resent by the sweeper like any run's, and the parent step waits in the database.
"""

from __future__ import annotations

from sqlalchemy import Connection, Interval, bindparam, func, select, update

from engine import dispatch, events, executor, runs, waiting
from engine.contract import ChildRun, called_workflow
from engine.definition import RetryPolicy
from engine.errors import ErrorCode, FlowloomError, ValidationError
from engine.run_state import STEP_COLUMNS, ClaimedStep, Dispatch, RunContext, claimed, status_literal
from engine.settings import get_settings
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Run, StepRun

_runs, _steps = table_of(Run), table_of(StepRun)
_now = func.now()

_PARK = (
    update(_steps)
    # not_before is the step's deadline (its timeout_s); NULL without one: it waits for the child.
    .values(status="waiting", lease_until=None, not_before=_now + bindparam("deadline_in", type_=Interval))
    .where(
        _steps.c.id == bindparam("step"),
        _steps.c.status == status_literal("running"),
        _steps.c.attempt == bindparam("step_attempt"),
    )
    .returning(_steps.c.id)
)
_LINK_STEP = update(_steps).values(child_run_id=bindparam("child")).where(_steps.c.id == bindparam("step"))
_LINK_RUN = (
    update(_runs)
    .values(parent_run_id=bindparam("parent"), parent_step_id=bindparam("parent_step"))
    .where(_runs.c.id == bindparam("child"))
)
_STARTER = select(_runs.c.created_by, _runs.c.started_by, _runs.c.started_via).where(
    _runs.c.id == bindparam("run")
)


def start_child(conn: Connection, step: ClaimedStep, run: RunContext, child: ChildRun) -> list[Dispatch]:
    """Start `child` linked to `step` and park the step until the child ends; returns what to send.

    A call nested deeper than FLOWLOOM_MAX_SUBWORKFLOW_DEPTH, a version that does not exist and
    inputs the called workflow refuses fail the step instead (no retry: the same call fails again).
    """
    where = f'node "{step.node_id}" ({step.node_type})'
    limit = get_settings().max_subworkflow_depth
    depth = len(executor.ancestors(conn, run)) + 1  # of the child run
    if depth > limit:
        message = (
            f"{where}: the child run would be nested {depth} deep; the limit is {limit} "
            "(FLOWLOOM_MAX_SUBWORKFLOW_DEPTH)"
        )
        return _fail(conn, step, message, ErrorCode.SUBWORKFLOW_DEPTH, "config.workflow_id", "running")
    try:
        called = called_workflow(child.workflow_id, child.version)
    except FlowloomError as exc:
        return _fail(conn, step, f"{where}: {exc}", exc.code, "config.workflow_id", "running")
    if called is not None and run.workspace_id and called.workspace_id != run.workspace_id:
        called = None  # a workflow of another workspace does not exist for this run
    if called is None:
        message = f"{where}: workflow {child.workflow_id} has no saved version {child.version}"
        return _fail(conn, step, message, ErrorCode.VERSION_NOT_FOUND, "config.version", "running")
    deadline_in = executor.interval(run.graph.nodes[step.node_id].timeout_s)
    parked = {"step": step.step_id, "step_attempt": step.attempt, "deadline_in": deadline_in}
    if conn.execute(_PARK, parked).first() is None:
        return []  # our lease expired and another worker owns the step now
    starter = conn.execute(_STARTER, {"run": run.run_id}).one()
    savepoint = conn.begin_nested()
    try:
        child_id, sent = runs.start_run_in(
            conn, called.definition, child.inputs, workflow_id=called.workflow_id,
            version_id=called.version_id, created_by=starter.created_by, started_by=starter.started_by,
            started_via=starter.started_via, take_slot=False,  # the parent holds the slot
        )  # fmt: skip
    except ValidationError as exc:
        savepoint.rollback()
        field = next((i.field for i in exc.issues if i.field), None)
        message = f'{where}: "{called.name}" v{called.version} refused the call: {exc}'
        return _fail(conn, step, message, ErrorCode.INPUT_INVALID, field, "waiting")
    savepoint.commit()
    conn.execute(_LINK_RUN, {"parent": run.run_id, "parent_step": step.step_id, "child": child_id})
    conn.execute(_LINK_STEP, {"child": child_id, "step": step.step_id})
    events.emit_step(
        conn, events.STEP_WAITING, step, kind="child_run",
        child_run_id=child_id, child_workflow_id=called.workflow_id, child_version=called.version,
    )  # fmt: skip
    return sent


# Steps waiting for a child run past their deadline (of running runs: the others end by themselves).
_OVERDUE = (
    select(_steps.c.id, _steps.c.run_id)
    .join(_runs, _runs.c.id == _steps.c.run_id)
    .where(
        _steps.c.status == status_literal("waiting"),
        _steps.c.child_run_id.is_not(None),
        _steps.c.not_before <= _now,
        _runs.c.status == status_literal("running"),
    )
    .order_by(_steps.c.not_before)
    .limit(bindparam("n"))
)
_OVERDUE_STEP = (
    select(*STEP_COLUMNS, _steps.c.child_run_id)
    .where(
        _steps.c.id == bindparam("step"),
        _steps.c.status == status_literal("waiting"),
        _steps.c.child_run_id.is_not(None),
        _steps.c.not_before <= _now,
    )
    .with_for_update()
)
# Within the transaction that applies the timeout: the step is no longer waiting, so cancelling
# its child does not resume it with the child's error (executor._resume_parent looks for waiting).
_TAKE = update(_steps).values(status="running", not_before=None).where(_steps.c.id == bindparam("step"))
_LOCK_RUN = select(_runs.c.status).where(_runs.c.id == bindparam("run")).with_for_update()
_CHILD_EXISTS = select(_runs.c.id).where(_runs.c.id == bindparam("child"))


def expire_due(*, database_url: str | None = None, limit: int = 100) -> int:
    """Apply the timeout of every sub-workflow step waiting past its `timeout_s` (one transaction
    each): its child run (and theirs) is cancelled and the step fails, or is retried as its retry
    policy says; returns how many steps timed out."""
    engine = get_engine(database_url or get_settings().database_url)
    with engine.connect() as conn:
        due = conn.execute(_OVERDUE, {"n": limit}).all()
    expired = 0
    for row in due:
        with engine.begin() as conn:
            sent = _expire(conn, str(row.id), str(row.run_id))
        if sent is not None:
            expired += 1
            dispatch.send(sent)
    return expired


def _expire(conn: Connection, step_id: str, run_id: str) -> list[Dispatch] | None:
    """Time out one overdue step (None: it is no longer overdue: its child or its run ended)."""
    run = executor.load_run(conn, run_id)
    # Parents before children, as every transaction that ends or resumes a run of the chain.
    chain = [*reversed(executor.ancestors(conn, run)), run.run_id]
    statuses = [conn.execute(_LOCK_RUN, {"run": r}).scalar_one() for r in chain]
    if statuses[-1] != "running":
        return None
    row = conn.execute(_OVERDUE_STEP, {"step": step_id}).first()
    if row is None:
        return None
    step, child_id = claimed(row), str(row.child_run_id)
    node = run.graph.nodes[step.node_id]
    timeout = node.timeout_s or 0
    child_exists = conn.execute(_CHILD_EXISTS, {"child": child_id}).first() is not None
    message = (
        f'node "{step.node_id}" ({step.node_type}) timed out after {timeout:g}s (timeout_s) waiting for '
        f"child run {child_id}; "
        + ("the child run was cancelled" if child_exists else "the child run no longer exists")
    )
    conn.execute(_TAKE, {"step": step.step_id})
    sent: list[Dispatch] = []
    if child_exists:  # (deleting its workflow deletes it)
        executor.cancel_run(
            conn, child_id, sent=sent,
            error=f'cancelled: the step "{step.node_id}" of its parent run timed out after {timeout:g}s (timeout_s)',
        )  # fmt: skip
    retry: RetryPolicy = node.retry or run.defn.error_handling.retry
    if step.attempt < retry.max_attempts:  # a new attempt starts a new child run
        return sent + waiting.schedule_retry(
            conn, step, delay_s=retry.backoff_for(step.attempt), error=message
        )
    code = ErrorCode.STEP_TIMEOUT.value
    error = {"message": message, "code": code, "field": "timeout_s", "child_run_id": child_id}
    return sent + executor.finish_step(
        conn, step, outputs={"error": error}, error=message, error_code=code, error_field="timeout_s"
    )


def _fail(
    conn: Connection, step: ClaimedStep, message: str, code: ErrorCode, field: str | None, expected: str
) -> list[Dispatch]:
    error = {"message": message, "code": code.value, **({"field": field} if field else {})}
    return executor.finish_step(
        conn, step, outputs={"error": error}, error=message, error_code=code.value, error_field=field,
        expected_status=expected,
    )  # fmt: skip

"""Child runs: a step whose node returned `ChildRun` starts a saved workflow version and waits.

The parent step is parked as `waiting` (no worker is held) with the child's id in
`step_runs.child_run_id`; the child run records `parent_run_id` and `parent_step_id`. When the
child ends, `executor._end_run` finishes the parent step in the same transaction (outputs, or the
child's error), and when the parent ends first it cancels the child. All of it is one
transaction per change, so a worker that dies at any point loses nothing: the child's steps are
resent by the sweeper like any run's, and the parent step waits in the database.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select, update

from engine import events, executor, runs
from engine.contract import ChildRun, called_workflow
from engine.errors import ErrorCode, FlowloomError, ValidationError
from engine.run_state import ClaimedStep, Dispatch, RunContext, status_literal
from engine.settings import get_settings
from models.core_tables import table_of
from models.tables import Run, StepRun

_runs, _steps = table_of(Run), table_of(StepRun)

_PARK = (
    update(_steps)
    .values(status="waiting", lease_until=None, not_before=None)
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
    if conn.execute(_PARK, {"step": step.step_id, "step_attempt": step.attempt}).first() is None:
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


def _fail(
    conn: Connection, step: ClaimedStep, message: str, code: ErrorCode, field: str | None, expected: str
) -> list[Dispatch]:
    error = {"message": message, "code": code.value, **({"field": field} if field else {})}
    return executor.finish_step(
        conn, step, outputs={"error": error}, error=message, error_code=code.value, error_field=field,
        expected_status=expected,
    )  # fmt: skip

"""Durable step transitions: every change of a run or step is one short transaction.

Functions here take an open connection (inside a transaction) and return the step ids
whose Celery messages must be sent after the commit. They never talk to Celery.

The statements are SQLAlchemy Core over the model tables, built once at import (a prebuilt
statement's compiled form is cached, so a step pays no more than for SQL text); each one is the
same single round trip as before: a conditional `UPDATE ... RETURNING`, `INSERT ... ON CONFLICT`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from enum import Enum
from typing import Any

from sqlalchemy import (
    Connection,
    Interval,
    Text,
    and_,
    bindparam,
    cast,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from engine import events, expressions, failure_policy, metrics, run_slots, tracing
from engine.definition import WorkflowDefinition
from engine.errors import ErrorCode, FlowloomError
from engine.run_state import (
    ACTIVE,
    STEP_COLUMNS,
    ClaimedStep,
    Dispatch,
    LazyMapping,
    RunContext,
    RunStates,
    claimed,
    finished_order,
    has_active_steps,
    last_visit,
    load_run,
    outputs_of,
    primary_output,
    status_literal,
    status_literals,
    step_outputs,
)
from engine.scheduler import TERMINAL, Graph, dag_decide, fired_edges, port_inputs
from engine.settings import get_settings
from models.core_tables import table_of
from models.tables import Approval, Run, StepRun

_runs, _steps, _approvals = table_of(Run), table_of(StepRun), table_of(Approval)
_now = func.now()
# A JSON value or, for None, SQL NULL (the column type's default would store the JSON value null).
JSON_OR_NULL = JSONB(none_as_null=True)


def interval(seconds: float | None) -> timedelta | None:
    """`seconds` as a bound interval (None: SQL NULL, and now() + NULL is NULL)."""
    return None if seconds is None else timedelta(seconds=float(seconds))


_INSERT_RUN = insert(_runs).values(
    id=bindparam("id"),
    workflow_id=bindparam("wf"),
    version_id=bindparam("ver"),
    # pydantic writes the definition's JSON itself (faster than a dict through json.dumps).
    definition=cast(bindparam("d", type_=Text), JSONB),
    status="running",
    inputs=bindparam("inputs", type_=JSON_OR_NULL),
    cancel_requested=False,
    created_by=bindparam("by"),
    started_by=bindparam("started_by"),
    started_via=bindparam("via"),
    trigger_id=bindparam("trigger"),
    session_id=bindparam("session"),
    created_at=_now,
    started_at=_now,
)
# A run over a concurrency limit: recorded, its start step queued, nothing sent (engine/run_slots.py).
_INSERT_WAITING_RUN = _INSERT_RUN.values(status="queued", started_at=None)


def create_run(
    conn: Connection,
    defn: WorkflowDefinition,
    inputs: dict[str, Any],
    *,
    workflow_id: str | None = None,
    version_id: str | None = None,
    created_by: str | None = None,
    started_by: str = "",
    started_via: str = "",
    trigger_id: str | None = None,
    session_id: str | None = None,
    waiting: bool = False,
) -> tuple[str, list[Dispatch]]:
    """Insert a running run and its start step; returns the run id and the start step to send.

    `waiting`: the run waits for a slot (status queued); nothing is sent until `run_slots.admit`.
    """
    run_id = str(uuid.uuid4())
    conn.execute(
        _INSERT_WAITING_RUN if waiting else _INSERT_RUN,
        {
            "id": run_id,
            "wf": workflow_id,
            "ver": version_id,
            "d": defn.model_dump_json(),
            "inputs": inputs,
            "by": created_by,
            "started_by": started_by[:120],
            "via": started_via[:20],
            "trigger": trigger_id,
            "session": session_id,
        },
    )
    graph = Graph(defn)
    if not waiting:  # a waiting run emits workflow.started when it is admitted
        events.emit(conn, events.WORKFLOW_STARTED, run_id, workflow=defn.id, name=defn.name, inputs=inputs)
    step_id = _insert_step(conn, run_id, graph, graph.start, 1, {})
    return run_id, [] if waiting else [Dispatch(step_id)]


_INSERT_STEP = insert(_steps).values(
    id=bindparam("id"),
    run_id=bindparam("run"),
    node_id=bindparam("node"),
    node_type=bindparam("type"),
    visit=bindparam("visit"),
    status="queued",
    attempt=0,
    inputs=bindparam("inputs", type_=JSON_OR_NULL),
    queued_at=_now,
    sent_at=_now,
)


def _insert_step(conn: Connection, run_id: str, graph: Graph, node_id: str, visit: int, inputs: dict) -> str:
    return _insert_steps(conn, run_id, graph, [(node_id, visit, inputs)])[0]


def _insert_steps(
    conn: Connection, run_id: str, graph: Graph, steps: list[tuple[str, int, dict]]
) -> list[str]:
    """Record queued steps (node id, visit, inputs) in one statement (a fan-out's hundreds of
    branches cost one round trip, not one each); their new ids, in order."""
    ids = [str(uuid.uuid4()) for _ in steps]
    rows: list[dict[str, Any]] = [
        {"id": step_id, "run": run_id, "node": node_id, "type": graph.nodes[node_id].type,
         "visit": visit, "inputs": inputs}
        for step_id, (node_id, visit, inputs) in zip(ids, steps, strict=True)
    ]  # fmt: skip
    if len(rows) == 1:  # a plain execute: psycopg runs a list of parameter sets in pipeline mode
        conn.execute(_INSERT_STEP, rows[0])
    elif rows:
        conn.execute(_INSERT_STEP, rows)
    return ids


_CLAIM = (
    update(_steps)
    .values(
        status="running",
        attempt=_steps.c.attempt + 1,
        lease_until=_now + bindparam("lease", type_=Interval),
        started_at=func.coalesce(_steps.c.started_at, _now),
        worker=bindparam("worker"),
    )
    .where(
        _steps.c.id == bindparam("step"),
        _runs.c.id == _steps.c.run_id,
        _runs.c.status == status_literal("running"),
        _steps.c.attempt < bindparam("max_attempts"),
        or_(
            and_(
                _steps.c.status == status_literal("queued"),
                or_(_steps.c.not_before.is_(None), _steps.c.not_before <= _now),
            ),
            and_(_steps.c.status == status_literal("running"), _steps.c.lease_until < _now),
        ),
    )
    .returning(*STEP_COLUMNS)
)


_CLAIMED = _CLAIM.cte("claimed")
# The claim and its step-started event in one statement (one round trip; the event only if claimed).
_CLAIM_WITH_EVENT = select(*_CLAIMED.c).add_cte(
    events.step_event_from(events.STEP_STARTED, _CLAIMED, attempt=_CLAIMED.c.attempt).cte("started")
)


def claim_step(conn: Connection, step_id: str, *, lease_s: float, worker: str) -> ClaimedStep | None:
    """Take a queued step (or one whose lease expired) and record that it started; None if it is
    not ours to run."""
    max_attempts = get_settings().max_step_attempts  # past it, lost_steps fails the step
    row = conn.execute(
        _CLAIM_WITH_EVENT,
        {
            "step": step_id,
            "lease": interval(lease_s),
            "worker": worker,
            "max_attempts": max_attempts,
            **events.step_event_params(events.STEP_STARTED),
        },  # fmt: skip
    ).first()
    return None if row is None else claimed(row)


_LOCK_RUN = select(_runs.c.status).where(_runs.c.id == bindparam("run")).with_for_update()


def _lock_run(conn: Connection, run_id: str) -> str:
    return conn.execute(_LOCK_RUN, {"run": run_id}).scalar_one()


_CANCEL_STEP = (
    update(_steps)
    .values(status="cancelled", finished_at=_now, lease_until=None)
    .where(_steps.c.id == bindparam("step"), _steps.c.status.in_(ACTIVE))
)
_FINISH_STEP = (
    update(_steps)
    .values(
        status=bindparam("new_status"),
        outputs=bindparam("outputs", type_=JSON_OR_NULL),
        error=bindparam("new_error"),
        fired_edges=bindparam("fired", type_=JSON_OR_NULL),
        finished_at=_now,
        lease_until=None,
        metrics=bindparam("metrics", type_=JSON_OR_NULL),
    )
    .where(
        _steps.c.id == bindparam("step"),
        _steps.c.status == bindparam("expected"),
        _steps.c.attempt == bindparam("step_attempt"),
    )
    .returning(_steps.c.id, _steps.c.run_id, _steps.c.node_id)
)
_FINISHED = _FINISH_STEP.cte("finished")
# The step's end and its completed/failed event in one statement (the event only if it matched).
_FINISH_SUCCEEDED = select(_FINISHED.c.id).add_cte(
    events.step_event_from(
        events.STEP_COMPLETED, _FINISHED, fired_edges=bindparam("event_fired", type_=JSONB)
    ).cte("completed")
)
_FINISH_FAILED = select(_FINISHED.c.id).add_cte(
    events.step_event_from(
        events.STEP_FAILED, _FINISHED, strip_nulls=True,
        error=bindparam("event_error", type_=Text), error_code=bindparam("event_error_code", type_=Text),
        error_field=bindparam("event_error_field", type_=Text),
    ).cte("failed")
)  # fmt: skip


def _json_text(value: object) -> str | None:
    """What json.dumps writes for an event field (a str enum's value), or None when unset."""
    if not value:
        return None
    return str(value.value) if isinstance(value, Enum) else str(value)


def finish_step(
    conn: Connection,
    step: ClaimedStep,
    *,
    outputs: dict[str, Any] | None,
    error: str | None = None,
    error_code: str | None = None,
    error_field: str | None = None,
    expected_status: str = "running",
    metrics: dict[str, Any] | None = None,
    end_run: bool = False,
) -> list[Dispatch]:
    """Store a step's result, route to what is ready next, and finish the run when it is done.

    `end_run` (a failed step only): fire no edge, not even an error edge, and end the run failed.
    """
    run = load_run(conn, step.run_id)
    if _lock_run_chain(conn, run) != "running":
        conn.execute(_CANCEL_STEP, {"step": step.step_id})
        return []
    failed = error is not None
    variables = {"input": run.inputs, "steps": LazyMapping(lambda: step_outputs(conn, step.run_id))}
    try:
        with expressions.evaluation_budget():  # one budget for all of this step's edge conditions
            fired = [] if failed and end_run else fired_edges(run.graph, step.node_id, outputs, failed=failed,
                                                              variables=variables)  # fmt: skip
    except FlowloomError as exc:
        failed, error, fired, outputs = True, str(exc), [], {"error": {"message": str(exc)}}
    event_type = events.STEP_FAILED if failed else events.STEP_COMPLETED
    done = conn.execute(
        _FINISH_FAILED if failed else _FINISH_SUCCEEDED,
        {
            "new_status": "failed" if failed else "succeeded",
            "outputs": outputs,
            "new_error": error,
            "fired": fired,
            "metrics": metrics,
            "step": step.step_id,
            "expected": expected_status,
            "step_attempt": step.attempt,
            "event_fired": fired,
            "event_error": error,
            "event_error_code": _json_text(error_code),
            "event_error_field": _json_text(error_field),
            **events.step_event_params(event_type),
        },
    ).first()
    if done is None:  # our lease expired and another worker owns the step now
        return []
    if failed and not fired and (end_run or failure_policy.ends_run(run.graph.nodes[step.node_id], run.defn)):
        return _end_run(conn, run, "failed", error=f'node "{step.node_id}" failed: {error}')
    if run.defn.mode == "state_machine":
        return _next_state(conn, run, step, fired, outputs or {})
    return _next_dag_steps(conn, run, step, outputs or {})


_INSERT_SKIPPED = (
    pg_insert(_steps)
    .values(
        id=bindparam("id"),
        run_id=bindparam("run"),
        node_id=bindparam("node"),
        node_type=bindparam("type"),
        visit=1,
        status="skipped",
        attempt=0,
        queued_at=_now,
        finished_at=_now,
    )
    .on_conflict_do_nothing()
)


def _next_dag_steps(conn: Connection, run: RunContext, step: ClaimedStep, outputs: dict) -> list[Dispatch]:
    states = RunStates(conn, step.run_id, run.graph.node_ids)
    candidates = [e.target for e in run.graph.out[step.node_id]]
    decision = dag_decide(run.graph, candidates, states, states)
    for node_id in decision.skipped:
        conn.execute(
            _INSERT_SKIPPED,
            {
                "id": str(uuid.uuid4()),
                "run": step.run_id,
                "node": node_id,
                "type": run.graph.nodes[node_id].type,
            },
        )
        events.emit(conn, events.STEP_SKIPPED, step.run_id, node_id=node_id)
    ready = []
    for node_id in decision.ready:
        sources = [e.source for e in run.graph.inc[node_id] if e.source != step.node_id]
        outs = outputs_of(conn, step.run_id, sources)
        outs[step.node_id] = outputs
        fired = {e.source: states[e.source].fired_edges for e in run.graph.inc[node_id] if e.source in states}
        ready.append((node_id, 1, port_inputs(run.graph, node_id, fired, outs)))
    dispatches = [Dispatch(step_id) for step_id in _insert_steps(conn, step.run_id, run.graph, ready)]
    if not dispatches and not has_active_steps(conn, step.run_id):
        return _complete_run(conn, run)
    return dispatches


def _next_state(
    conn: Connection, run: RunContext, step: ClaimedStep, fired: list[str], outputs: dict
) -> list[Dispatch]:
    node = run.graph.nodes[step.node_id]
    if not fired:
        if node.type == "end":
            return _complete_run(conn, run)
        return _end_run(
            conn, run, "failed", error=f'state "{step.node_id}": no transition matched its output'
        )
    edge = next(e for e in run.graph.out[step.node_id] if e.id == fired[0])
    target = run.graph.nodes[edge.target]
    visit = 1 + last_visit(conn, step.run_id, target.id)
    limit = target.max_visits or run.defn.policy.max_visits
    if visit > limit:
        return _end_run(
            conn,
            run,
            "failed",
            error=f'state "{target.id}" would be visited {visit} times; the limit is {limit} (max_visits)',
        )
    inputs = {edge.target_port: outputs.get(edge.source_port)}
    return [Dispatch(_insert_step(conn, step.run_id, run.graph, target.id, visit, inputs))]


def _complete_run(conn: Connection, run: RunContext) -> list[Dispatch]:
    rows = finished_order(conn, run.run_id)
    ends = [r for r in rows if r.node_type == "end" and r.status == "succeeded"]
    if not ends:
        failed = [r.node_id for r in rows if r.status == "failed"]
        reason = f"failed nodes: {', '.join(failed)}" if failed else "every path was skipped"
        return _end_run(conn, run, "failed", error=f"no end node was reached ({reason})")
    if run.defn.outputs:
        variables = {"input": run.inputs, "steps": step_outputs(conn, run.run_id)}
        outputs = {}
        with expressions.evaluation_budget():  # one budget for all of the run's outputs
            for key, template in run.defn.outputs.items():
                try:
                    outputs[key] = expressions.render_value(template, variables)
                except FlowloomError as exc:
                    error = f'run output "{key}" (outputs.{key}) failed: {exc}; fix that template'
                    return _end_run(conn, run, "failed", error=error)
    else:
        last = primary_output(ends[-1].outputs)
        outputs = last if isinstance(last, dict) else {"out": last}
    return _end_run(conn, run, "succeeded", outputs=outputs)


_END_RUN = (
    update(_runs)
    .values(
        status=bindparam("new_status"),
        error=bindparam("new_error"),
        outputs=bindparam("outputs", type_=JSON_OR_NULL),
        finished_at=_now,
    )
    .where(_runs.c.id == bindparam("run"), _runs.c.status.in_(status_literals("running", "queued")))
)
_CANCEL_WAITING = (
    update(_steps)
    .values(status="cancelled", finished_at=_now, lease_until=None)
    .where(_steps.c.run_id == bindparam("run"), _steps.c.status.in_(status_literals("queued", "waiting")))
)
_CANCEL_APPROVALS = (
    update(_approvals)
    .values(status="cancelled")
    .where(_approvals.c.run_id == bindparam("run"), _approvals.c.status == status_literal("pending"))
)


def _end_run(
    conn: Connection, run: RunContext, status: str, *, error: str | None = None, outputs: dict | None = None
) -> list[Dispatch]:
    """Mark the run ended, cancel what still waits (its child runs too) and, for a child run,
    finish the parent's waiting step; returns the steps that became ready in the parent."""
    conn.execute(_END_RUN, {"new_status": status, "new_error": error, "outputs": outputs, "run": run.run_id})
    conn.execute(_CANCEL_WAITING, {"run": run.run_id})
    conn.execute(_CANCEL_APPROVALS, {"run": run.run_id})
    kind = {"succeeded": events.WORKFLOW_COMPLETED, "failed": events.WORKFLOW_FAILED}.get(
        status, events.WORKFLOW_CANCELLED
    )
    events.emit(conn, kind, run.run_id, status=status, error=error, outputs=outputs)
    _observe_run_end(conn, run, status, error)
    sent = _cancel_children(conn, run.run_id)
    sent += run_slots.run_ended(conn, run.run_id)  # its slot admits the next waiting run
    return sent + _resume_parent(conn, run, status, error=error, outputs=outputs)


def _observe_run_end(conn: Connection, run: RunContext, status: str, error: str | None) -> None:
    """Count the ended run and, with tracing on, emit its root span (from its creation to now)."""
    metrics.run_finished(run.defn.name, status)
    if tracing.enabled():
        started_at = conn.execute(select(_runs.c.created_at).where(_runs.c.id == run.run_id)).scalar()
        tracing.emit_run_span(run_id=run.run_id, workflow=run.defn.name, workflow_id=run.workflow_id,
                              status=status, started_at=started_at, error=error)  # fmt: skip


_REQUEST_CANCEL = update(_runs).values(cancel_requested=True).where(_runs.c.id == bindparam("run"))
_CANCEL_RUNNING = (
    update(_steps)
    .values(status="cancelled", finished_at=_now, lease_until=None)
    .where(_steps.c.run_id == bindparam("run"), _steps.c.status == status_literal("running"))
)


def cancel_run(
    conn: Connection, run_id: str, *, error: str = "cancelled by request", sent: list[Dispatch] | None = None
) -> bool:
    """Cancel a running (or slot-waiting) run; queued and waiting steps are cancelled, running ones discarded.

    Its child runs are cancelled too; a cancelled child run fails its parent's waiting step, and
    the steps that makes ready are added to `sent` (to send after the commit).
    """
    run = load_run(conn, run_id)
    if _lock_run_chain(conn, run) not in ("running", "queued"):
        return False
    conn.execute(_REQUEST_CANCEL, {"run": run_id})
    ready = _end_run(conn, run, "cancelled", error=error)
    conn.execute(_CANCEL_RUNNING, {"run": run_id})
    if sent is not None:
        sent.extend(ready)
    return True


# ---------------------------------------------------------------------------------------------
# Child runs (a sub-workflow step waits for one): the locks, the cancellation, the resumption.


def ancestors(conn: Connection, run: RunContext) -> list[str]:
    """The ids of the runs `run` is a child of, nearest first (empty for a run no step started)."""
    found: list[str] = []
    parent = run.parent_run_id
    while parent is not None and parent not in found:
        found.append(parent)
        parent = load_run(conn, parent).parent_run_id
    return found


def _lock_run_chain(conn: Connection, run: RunContext) -> str:
    """Lock the run's ancestors top-down, then the run; returns the run's status.

    A child run that ends resumes its parent in the same transaction, and a parent that ends
    cancels its children: both lock parents before children, so they never deadlock.
    """
    for parent in reversed(ancestors(conn, run)):
        _lock_run(conn, parent)
    return _lock_run(conn, run.run_id)


_RUNNING_CHILDREN = select(_runs.c.id).where(
    _runs.c.parent_run_id == bindparam("run"), _runs.c.status == status_literal("running")
)


def _cancel_children(conn: Connection, run_id: str) -> list[Dispatch]:
    sent: list[Dispatch] = []
    for child_id in conn.execute(_RUNNING_CHILDREN, {"run": run_id}).scalars().all():
        cancel_run(conn, str(child_id), error="cancelled: its parent run ended", sent=sent)
    return sent


_PARENT_STEP = (
    select(*STEP_COLUMNS)
    .where(
        _steps.c.id == bindparam("step"),
        _steps.c.status == status_literal("waiting"),
        _steps.c.child_run_id == bindparam("child"),
    )
    .with_for_update()
)


def _resume_parent(
    conn: Connection, run: RunContext, status: str, *, error: str | None, outputs: dict | None
) -> list[Dispatch]:
    """Finish the parent's step that waits for this child run: its outputs, or its error."""
    if run.parent_step_id is None:
        return []
    row = conn.execute(_PARENT_STEP, {"step": run.parent_step_id, "child": run.run_id}).first()
    if row is None:  # the parent ended first (and cancelled this run)
        return []
    step = claimed(row)
    if status == "succeeded":
        return finish_step(conn, step, outputs=outputs or {}, expected_status="waiting")
    message = f"child run {run.run_id} {status}: {error or 'no reason given'}"
    code = ErrorCode.CHILD_RUN_FAILED.value
    return finish_step(
        conn,
        step,
        outputs={"error": {"message": message, "code": code, "child_run_id": run.run_id}},
        error=message,
        error_code=code,
        expected_status="waiting",
    )


__all__ = [
    "TERMINAL",
    "ClaimedStep",
    "Dispatch",
    "LazyMapping",
    "RunContext",
    "load_run",
    "step_outputs",
]

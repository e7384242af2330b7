"""Steps parked outside a worker: a retry waiting out its backoff, a step waiting for a human or a timer.

No worker is held while a step waits; the answer (a decision, a due timer, the backoff's end)
resumes it through `waiting_step` / `due_timer_step` and `executor.finish_step`.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Interval, bindparam, exists, func, insert, select, update

from engine import events
from engine.executor import JSON_OR_NULL, finish_step, interval
from engine.run_state import STEP_COLUMNS, ClaimedStep, Dispatch, claimed, status_literal
from engine.settings import get_settings
from models.core_tables import table_of
from models.tables import Approval, StepRun

_steps, _approvals = table_of(StepRun), table_of(Approval)
_now = func.now()


_RETRY = (
    update(_steps)
    .values(
        status="queued",
        error=bindparam("new_error"),
        lease_until=None,
        not_before=_now + bindparam("delay", type_=Interval),
        sent_at=_now,
    )
    .where(
        _steps.c.id == bindparam("step"),
        _steps.c.status == status_literal("running"),
        _steps.c.attempt == bindparam("step_attempt"),
    )
    .returning(_steps.c.id)
)


def schedule_retry(conn: Connection, step: ClaimedStep, *, delay_s: float, error: str) -> list[Dispatch]:
    """Put a failed step back in the queue after `delay_s` (backoff); fail it at the attempt cap."""
    max_attempts = get_settings().max_step_attempts
    if step.attempt >= max_attempts:  # whatever the node's retry policy says
        error = f"{error} (gave up after {step.attempt} attempts: FLOWLOOM_MAX_STEP_ATTEMPTS)"
        return finish_step(conn, step, outputs={"error": {"message": error}}, error=error)
    row = conn.execute(
        _RETRY,
        {"new_error": error, "delay": interval(delay_s), "step": step.step_id, "step_attempt": step.attempt},
    ).first()
    if row is None:
        return []
    events.emit_step(conn, events.STEP_RETRYING, step, attempt=step.attempt, delay_s=delay_s, error=error)
    return [Dispatch(step.step_id, countdown=delay_s)]


_SUSPEND = (
    update(_steps)
    # A NULL interval leaves not_before NULL: only a timer wakes the step by itself.
    .values(status="waiting", lease_until=None, not_before=_now + bindparam("after", type_=Interval))
    .where(
        _steps.c.id == bindparam("step"),
        _steps.c.status == status_literal("running"),
        _steps.c.attempt == bindparam("step_attempt"),
    )
    .returning(_steps.c.id)
)
_INSERT_APPROVAL = insert(_approvals).values(
    id=bindparam("id"),
    run_id=bindparam("run"),
    step_id=bindparam("step"),
    node_id=bindparam("node"),
    status="pending",
    title=bindparam("title"),
    body=bindparam("body"),
    request=bindparam("request", type_=JSON_OR_NULL),
    deadline=_now + bindparam("deadline_in", type_=Interval),  # NULL without a deadline
    created_at=_now,
)


def suspend_step(
    conn: Connection, step: ClaimedStep, *, kind: str, request: dict[str, Any]
) -> list[Dispatch]:
    """Park a step that waits for a human (approval) or a timer; no worker is held."""
    resume_after = float(request.get("resume_after_s") or 0) if kind == "timer" else 0.0
    row = conn.execute(
        _SUSPEND,
        {
            "after": interval(resume_after) if resume_after > 0 else None,
            "step": step.step_id,
            "step_attempt": step.attempt,
        },
    ).first()
    if row is None:
        return []
    events.emit_step(conn, events.STEP_WAITING, step, kind=kind)
    if kind == "approval":
        approval_id = str(uuid.uuid4())
        conn.execute(
            _INSERT_APPROVAL,
            {
                "id": approval_id,
                "run": step.run_id,
                "step": step.step_id,
                "node": step.node_id,
                "title": str(request.get("title", ""))[:300],
                "body": str(request.get("body", "")),
                "request": request,
                "deadline_in": interval(request.get("deadline_s")),
            },
        )
        events.emit(
            conn,
            events.APPROVAL_REQUESTED,
            step.run_id,
            approval_id=approval_id,
            step_id=step.step_id,
            node_id=step.node_id,
            title=request.get("title", ""),
        )
    return []


_WAITING_STEP = (
    select(*STEP_COLUMNS)
    .where(_steps.c.id == bindparam("step"), _steps.c.status == status_literal("waiting"))
    .with_for_update()
)
_DUE_TIMER_STEP = (
    select(*STEP_COLUMNS)
    .where(
        _steps.c.id == bindparam("step"),
        _steps.c.status == status_literal("waiting"),
        _steps.c.not_before <= _now,
        ~exists().where(_approvals.c.step_id == _steps.c.id),
        _steps.c.child_run_id.is_(None),  # a sub-workflow step's not_before is its deadline
    )
    .with_for_update(of=_steps)
)


def waiting_step(conn: Connection, step_id: str) -> ClaimedStep | None:
    """A waiting step, locked, ready to be resumed with the outside world's answer."""
    row = conn.execute(_WAITING_STEP, {"step": step_id}).first()
    return None if row is None else claimed(row)


def due_timer_step(conn: Connection, step_id: str) -> ClaimedStep | None:
    """A waiting step whose timer is due (a delay node, not an approval nor a child run), locked;
    None otherwise."""
    row = conn.execute(_DUE_TIMER_STEP, {"step": step_id}).first()
    return None if row is None else claimed(row)

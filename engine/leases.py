"""Leases of running steps: the heartbeat that extends them, and the sweep that finds lost steps.

A step is lost when its lease expired (its worker died) or its Celery message never left (sent
long ago and never taken, or marked unsent by engine/dispatch.py when the broker refused it); the
sweeper in every worker sends it again. A step that used up FLOWLOOM_MAX_STEP_ATTEMPTS is failed
instead, so no step is redelivered forever.
"""

from __future__ import annotations

from sqlalchemy import ARRAY, Connection, Interval, Text, and_, bindparam, cast, func, or_, select, update
from sqlalchemy.dialects.postgresql import UUID

from engine.executor import finish_step, interval
from engine.run_state import STEP_COLUMNS, Dispatch, claimed, status_literal
from engine.settings import get_settings
from models.core_tables import table_of
from models.tables import Run, StepRun

_runs, _steps = table_of(Run), table_of(StepRun)
_now = func.now()

_EXTEND = (
    update(_steps)
    .values(lease_until=_now + bindparam("lease", type_=Interval))
    .where(
        _steps.c.id == func.any(cast(bindparam("steps", type_=ARRAY(Text)), ARRAY(UUID))),
        _steps.c.status == status_literal("running"),
    )
)


def extend_leases(conn: Connection, step_ids: list[str], *, lease_s: float) -> None:
    """Give the running steps among `step_ids` a fresh lease of `lease_s` seconds."""
    conn.execute(_EXTEND, {"lease": interval(lease_s), "steps": step_ids})


_EXHAUSTED = (
    select(*STEP_COLUMNS, _steps.c.status)
    .join(_runs, and_(_runs.c.id == _steps.c.run_id, _runs.c.status == status_literal("running")))
    .where(
        _steps.c.attempt >= bindparam("max_attempts"),
        or_(
            and_(_steps.c.status == status_literal("running"), _steps.c.lease_until < _now),
            and_(
                _steps.c.status == status_literal("queued"),
                or_(_steps.c.not_before.is_(None), _steps.c.not_before <= _now),
            ),
        ),
    )
    .limit(bindparam("limit"))
)


def _fail_exhausted_steps(conn: Connection, limit: int) -> list[Dispatch]:
    """Fail steps that used up FLOWLOOM_MAX_STEP_ATTEMPTS (claim_step no longer takes them)."""
    max_attempts = get_settings().max_step_attempts
    rows = conn.execute(_EXHAUSTED, {"max_attempts": max_attempts, "limit": limit}).all()
    sent: list[Dispatch] = []
    for row in rows:
        error = (
            f"started {row.attempt} times without finishing (its worker stopped or it outlived its"
            f" lease every time); the limit is {max_attempts} attempts (FLOWLOOM_MAX_STEP_ATTEMPTS)"
        )
        outputs = {"error": {"message": error}}
        sent += finish_step(conn, claimed(row), outputs=outputs, error=error, expected_status=row.status)
    return sent


_s2 = _steps.alias("s2")
_after = bindparam("after", type_=Interval)
# Sent long enough ago without being taken, or never sent (NULL: the broker refused the message,
# engine/dispatch.py), which goes at the next sweep.
_UNDELIVERED = or_(_s2.c.sent_at.is_(None), _s2.c.sent_at < _now - _after)
_LOST = (
    select(_s2.c.id)
    # Only steps of running runs: the steps of runs waiting for a slot (queued runs) must not
    # fill the limit and keep lost steps of running runs from being found.
    .join(_runs, and_(_runs.c.id == _s2.c.run_id, _runs.c.status == status_literal("running")))
    .where(
        or_(
            and_(_s2.c.status == status_literal("running"), _s2.c.lease_until < _now),
            and_(
                _s2.c.status == status_literal("queued"),
                _UNDELIVERED,
                or_(_s2.c.not_before.is_(None), _s2.c.not_before <= _now),
            ),
            and_(  # a due timer; a sub-workflow step's deadline is child_runs.expire_due's
                _s2.c.status == status_literal("waiting"),
                _s2.c.child_run_id.is_(None),
                _s2.c.not_before.is_not(None),
                _s2.c.not_before <= _now,
                _UNDELIVERED,
            ),
        )
    )
    .limit(bindparam("limit"))
    .with_for_update(of=_s2, skip_locked=True)
)
_RESEND = (
    update(_steps)
    .values(sent_at=_now)
    .where(
        _steps.c.id.in_(_LOST.scalar_subquery()),
        _runs.c.id == _steps.c.run_id,
        _runs.c.status == status_literal("running"),
    )
    .returning(_steps.c.id)
)


def lost_steps(conn: Connection, *, resend_after_s: float, limit: int = 500) -> list[Dispatch]:
    """Steps to send again: leases that expired (worker died) or messages never delivered.

    Steps that already had FLOWLOOM_MAX_STEP_ATTEMPTS attempts are failed instead (their error
    edges, if any, are what is sent); no step is redelivered forever.
    """
    exhausted = _fail_exhausted_steps(conn, limit)
    rows = conn.execute(_RESEND, {"after": interval(resend_after_s), "limit": limit})
    return exhausted + [Dispatch(str(r.id)) for r in rows]

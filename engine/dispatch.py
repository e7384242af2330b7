"""Sends step messages to Celery after the transaction that recorded them has committed.

The step row is the outbox: it is in PostgreSQL (queued, with its `sent_at`) before its message
leaves. A send the broker refuses (Redis or RabbitMQ down or hanging) gives up within seconds
(`engine.celery_app.SEND_TIMEOUT_S`, one retry), marks the steps it could not send as unsent
(`sent_at` NULL) and returns; the sweeper of any worker sends them once the broker answers
(`engine.leases.lost_steps`). So a caller (the REST API, a trigger, the CLI) never waits for the
broker, and no run is lost or half-written.
"""

from __future__ import annotations

import logging

from sqlalchemy import ARRAY, Text, bindparam, cast, func, update
from sqlalchemy.dialects.postgresql import UUID

from engine import metrics, tracing
from engine.celery_app import current_celery
from engine.run_state import Dispatch, status_literals
from engine.settings import get_settings
from models.core_tables import table_of
from models.db import get_engine
from models.tables import StepRun

log = logging.getLogger("flowloom.dispatch")

STEP_TASK = "flowloom.step"

_steps = table_of(StepRun)
_MARK_UNSENT = (
    update(_steps)
    .values(sent_at=None)
    .where(
        _steps.c.id == func.any(cast(bindparam("steps", type_=ARRAY(Text)), ARRAY(UUID))),
        _steps.c.status.in_(status_literals("queued", "waiting")),
    )
)


def send(dispatches: list[Dispatch], *, database_url: str | None = None) -> list[str]:
    """Send each step's message; returns the ids of the steps that could not be sent.

    After the first refused send the rest are not tried (the broker is away); those steps are
    marked unsent and the sweeper sends them later.
    """
    if not dispatches:
        return []
    app = current_celery()
    headers = tracing.inject_headers() or None  # the run's trace context (W3C traceparent)
    for i, d in enumerate(dispatches):
        try:
            app.send_task(
                STEP_TASK,
                args=[d.step_id],
                countdown=d.countdown or None,
                headers=headers,
                ignore_result=True,
            )
        except Exception as exc:  # the broker is down: the step stays recorded and the sweeper sends it
            unsent = [u.step_id for u in dispatches[i:]]
            log.warning("the broker did not take step %s (%s: %s); %d step(s) left for the sweeper to send",
                        d.step_id, type(exc).__name__, exc, len(unsent))  # fmt: skip
            metrics.STEP_SENDS_DEFERRED.inc(len(unsent))
            mark_unsent(unsent, database_url=database_url)
            return unsent
    return []


def mark_unsent(step_ids: list[str], *, database_url: str | None = None) -> None:
    """Mark steps whose message did not leave (`sent_at` NULL): the next sweep sends them."""
    try:
        with get_engine(database_url or get_settings().database_url).begin() as conn:
            conn.execute(_MARK_UNSENT, {"steps": step_ids})
    except Exception:  # PostgreSQL away too: the sweeper resends them once their lease time passed
        log.warning("could not mark %d step(s) unsent", len(step_ids), exc_info=True)

"""Sends step messages to Celery after the transaction that recorded them has committed."""

from __future__ import annotations

import logging

from engine import tracing
from engine.celery_app import current_celery
from engine.run_state import Dispatch

log = logging.getLogger("flowloom.dispatch")

STEP_TASK = "flowloom.step"


def send(dispatches: list[Dispatch]) -> None:
    """Send each step's message; a failed send is retried later by the sweeper."""
    if not dispatches:
        return
    app = current_celery()
    headers = tracing.inject_headers() or None  # the run's trace context (W3C traceparent)
    for d in dispatches:
        try:
            app.send_task(STEP_TASK, args=[d.step_id], countdown=d.countdown or None, headers=headers)
        except Exception:  # the broker is down: the step stays recorded and the sweeper resends it
            log.warning("could not send step %s; the sweeper will resend it", d.step_id, exc_info=True)

"""agent.* events written by nodes into the engine's outbox, each in its own short transaction."""

from __future__ import annotations

import logging
import time
from typing import Any

from engine import events
from engine.context import StepContext
from engine.settings import get_settings
from models.db import get_engine

log = logging.getLogger("flowloom.agent")
# Live chunks of a streamed generation; written only once the engine knows this event type.
STREAM_EVENT = events.AGENT_STREAM


def emit(ctx: StepContext, event_type: str, **data: Any) -> None:
    """Write one agent event for the step's run; a failed write is logged, never fatal to the step."""
    url = get_settings().database_url
    if not url:
        return
    # A secret the step used never reaches the outbox, whatever a node put in the event.
    data = ctx.redact({"node_id": ctx.node_id, "step_id": ctx.step_id, "attempt": ctx.attempt, **data})
    try:
        with get_engine(url).begin() as conn:
            events.emit(conn, event_type, ctx.run_id, **data)
    except Exception:  # the events are a view of the step; its outputs are the record
        log.warning("could not write %s for step %s", event_type, ctx.step_id, exc_info=True)


class StreamRecorder:
    """Collects streamed chunks and writes them to the outbox in batches (when the engine allows)."""

    def __init__(self, ctx: StepContext, *, enabled: bool = True, every: int = 16, seconds: float = 0.25):
        self.ctx = ctx
        self.enabled = enabled
        self.every = every
        self.seconds = seconds
        self.chunks: list[str] = []
        self._sent = 0
        self._last = time.monotonic()

    def __call__(self, chunk: str) -> bool:
        """Record one chunk; returns False (keep generating)."""
        self.chunks.append(chunk)
        due = len(self.chunks) - self._sent >= self.every or time.monotonic() - self._last >= self.seconds
        if self.enabled and due:
            self.flush()
        return False

    def flush(self) -> None:
        """Write the chunks not written yet as one event."""
        if not self.enabled or self._sent == len(self.chunks):
            return
        batch = self.chunks[self._sent :]
        emit(self.ctx, STREAM_EVENT, index=self._sent, chunks=batch)
        self._sent = len(self.chunks)
        self._last = time.monotonic()

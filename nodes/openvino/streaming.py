"""Streamed model output written to the outbox as it comes, in batches, so the run view shows it live."""

from __future__ import annotations

import time

from engine.contract import AGENT_STREAM, StepContext


class StreamRecorder:
    """Collects streamed chunks and writes them to the outbox in batches (when `enabled`)."""

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
        self.ctx.emit(AGENT_STREAM, index=self._sent, chunks=batch)
        self._sent = len(self.chunks)
        self._last = time.monotonic()

"""Streamed model output written to the outbox as it comes, in batches (`agent.stream` events), so a
run view, a chat page or an SSE client shows the text while it is being generated."""

from __future__ import annotations

import time
from typing import Any

from engine.contract.context import StepContext
from engine.events import AGENT_STREAM


class StreamRecorder:
    """Collects streamed text chunks and writes them to the outbox in batches (when `enabled`).

    Each event carries `index` (how many chunks this recorder wrote before it), `chunks` and the
    recorder's `fields`; joining a recorder's chunks in index order gives the text streamed so far.
    The first chunk is written at once, later ones every `every` chunks or `seconds`.
    """

    def __init__(
        self,
        ctx: StepContext,
        *,
        enabled: bool = True,
        every: int = 16,
        seconds: float = 0.25,
        fields: dict[str, Any] | None = None,
    ):
        self.ctx = ctx
        self.fields = dict(fields or {})  # added to every event (an agent's model call: iteration)
        self.enabled = enabled
        self.every = every
        self.seconds = seconds
        self.chunks: list[str] = []
        self._sent = 0
        self._last = time.monotonic()

    def __call__(self, chunk: str) -> bool:
        """Record one chunk; returns False (a generation callback's "keep generating")."""
        self.chunks.append(chunk)
        due = (
            self._sent == 0  # the first chunk goes out at once: the reader sees the answer begin
            or len(self.chunks) - self._sent >= self.every
            or time.monotonic() - self._last >= self.seconds
        )
        if self.enabled and due:
            self.flush()
        return False

    def flush(self) -> None:
        """Write the chunks not written yet as one event."""
        if not self.enabled or self._sent == len(self.chunks):
            return
        batch = self.chunks[self._sent :]
        self.ctx.emit(AGENT_STREAM, **self.fields, index=self._sent, chunks=batch)
        self._sent = len(self.chunks)
        self._last = time.monotonic()

    @property
    def text(self) -> str:
        """Everything recorded so far."""
        return "".join(self.chunks)

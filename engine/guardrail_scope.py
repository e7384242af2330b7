"""The running step's guard, where the egress client and the LLM-call counter can reach it.

The step runner sets `active` around a node's run function (a context variable: it follows the
node into its asyncio tasks and worker threads), so every outbound connection and every model
call of that step is checked against the step's guardrails without the node doing anything.
This module imports nothing of ours, so the egress client and `engine.llm_calls` can use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class Guard(Protocol):
    """What the step's guard answers while the node runs (raising GuardrailViolation to refuse)."""

    def check_destination(self, host: str, port: int) -> None: ...

    def before_llm_call(self, provider: str, model: str) -> None: ...

    def after_llm_call(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> None: ...


active: ContextVar[Guard | None] = ContextVar("flowloom_step_guard", default=None)


@contextmanager
def guarding(guard: Guard | None) -> Iterator[None]:
    """Make `guard` the running step's guard inside the block."""
    token = active.set(guard)
    try:
        yield
    finally:
        active.reset(token)


def check_destination(host: str, port: int) -> None:
    """Refuse host:port when the running step's network restrictions do (no guard: allowed)."""
    guard = active.get()
    if guard is not None:
        guard.check_destination(host, port)

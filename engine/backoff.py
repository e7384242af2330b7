"""Waiting out failures in the long-running loops (event relay, Kafka trigger consumers, scheduler).

One policy for all of them, built on tenacity: after a failure, wait exponentially longer (with
jitter, so many processes that lost the same broker do not come back in step) up to a cap, try
again, and start from the shortest wait after a success. The wait is on the loop's stop event, so
a shutdown ends it at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

T = TypeVar("T")

log = logging.getLogger(__name__)


def _report(what: str, transient: tuple[type[BaseException], ...]) -> Callable[[RetryCallState], None]:
    """Log a failure before the wait: one line for an expected outage, the traceback for anything else."""

    def report(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        if isinstance(exc, transient):
            log.warning("%s: %s; retrying in %.1f s", what, _describe(exc), wait)
        else:
            log.error("%s: unexpected error; retrying in %.1f s", what, wait, exc_info=exc)

    return report


def _describe(exc: BaseException) -> str:
    """`KafkaError: ...`, or the message alone for our own signals (e.g. events waiting for a broker)."""
    return str(exc) if isinstance(exc, Waiting) else f"{type(exc).__name__}: {exc}"


class Waiting(Exception):
    """Raised by a loop's step to back off without an error: the work is there but cannot go out yet."""


def call_until_stopped(
    step: Callable[[], T],
    stop: threading.Event,
    *,
    what: str,
    transient: tuple[type[BaseException], ...],
    fatal: tuple[type[BaseException], ...] = (),
    on_failure: Callable[[], None] | None = None,
    initial_s: float = 0.5,
    max_s: float = 10.0,
) -> T | None:
    """`step()`'s result, calling it again after each failure until it succeeds; None once `stop` is set.

    Waits grow from `initial_s`, doubling, plus up to `initial_s` of jitter, never beyond `max_s`.
    Exceptions of the `transient` types (and `Waiting`) are logged as one line, others with their
    traceback: a bug must not end the loop for good. `fatal` exceptions (and BaseExceptions such as
    KeyboardInterrupt) propagate. `on_failure` runs after each failure, before the wait (e.g. to drop
    a broken connection).
    """
    transient = (*transient, Waiting)

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, Exception) and not isinstance(exc, fatal)

    def before_wait(state: RetryCallState) -> None:
        if on_failure is not None:
            on_failure()
        report(state)

    def wait(seconds: float) -> None:
        stop.wait(seconds)  # ends at once when the loop is told to stop

    report = _report(what, transient)
    retrying = Retrying(
        retry=retry_if_exception(retryable),
        wait=wait_exponential_jitter(multiplier=initial_s, max=max_s, jitter=initial_s),
        sleep=wait,
        before_sleep=before_wait,
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            if stop.is_set():
                return None
            return step()
    return None  # not reached: the loop above returns or raises

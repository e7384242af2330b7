"""engine.backoff: the loops' one retry policy (tenacity) — growing, capped, jittered waits on the stop event."""

from __future__ import annotations

import logging
import threading

import pytest

from engine.backoff import Waiting, call_until_stopped


class RecordingStop(threading.Event):
    """A stop event whose waits return at once and are recorded (no test waits on the clock)."""

    def __init__(self, stop_after_waits: int | None = None) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.stop_after_waits = stop_after_waits

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0.0))
        if self.stop_after_waits is not None and len(self.waits) >= self.stop_after_waits:
            self.set()
        return self.is_set()


class Flaky:
    """A step that raises `exc` on its first `times` calls, then returns "done"."""

    def __init__(self, times: int, exc: Exception) -> None:
        self.times, self.exc, self.calls = times, exc, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.exc
        return "done"


def test_failures_are_retried_with_doubling_capped_jittered_waits_until_success() -> None:
    stop = RecordingStop()
    step = Flaky(6, ConnectionError("broker away"))

    result = call_until_stopped(step, stop, what="t", transient=(OSError,), initial_s=0.5, max_s=4.0)

    assert result == "done" and step.calls == 7
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # initial * 2**n, never above max_s
    for waited, base in zip(stop.waits, ceilings, strict=True):
        assert base <= waited <= min(base + 0.5, 4.0)  # plus up to initial_s of jitter, capped


def test_a_success_starts_the_next_failure_from_the_shortest_wait() -> None:
    stop = RecordingStop()
    for _ in range(2):
        assert (
            call_until_stopped(Flaky(3, OSError("x")), stop, what="t", transient=(OSError,), max_s=60)
            == "done"
        )
    first, second = stop.waits[:3], stop.waits[3:]
    assert len(second) == 3 and second[0] < 1.0 and first[2] >= 2.0


def test_stop_ends_the_loop_without_another_try_and_returns_none() -> None:
    stop = RecordingStop(stop_after_waits=2)
    step = Flaky(100, OSError("down"))

    assert call_until_stopped(step, stop, what="t", transient=(OSError,)) is None
    assert step.calls == 2  # tried, waited, tried, waited (stopped): no third try


def test_fatal_errors_propagate_and_unexpected_ones_are_logged_with_their_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(KeyError):
        call_until_stopped(
            Flaky(1, KeyError("gone")), RecordingStop(), what="t", transient=(), fatal=(KeyError,)
        )

    dropped: list[int] = []
    with caplog.at_level(logging.WARNING, logger="engine.backoff"):
        result = call_until_stopped(
            Flaky(2, ValueError("a bug")), RecordingStop(), what="relay", transient=(OSError,),
            on_failure=lambda: dropped.append(1),
        )  # fmt: skip
    assert result == "done" and dropped == [1, 1]
    records = [r for r in caplog.records if r.name == "engine.backoff"]
    assert [r.levelno for r in records] == [logging.ERROR, logging.ERROR]
    assert records[0].exc_info and "relay: unexpected error; retrying in" in records[0].getMessage()


def test_waiting_backs_off_with_one_line_naming_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="engine.backoff"):
        call_until_stopped(Flaky(1, Waiting("3 events wait for the broker")), RecordingStop(), what="relay",
                           transient=())  # fmt: skip
    (record,) = [r for r in caplog.records if r.name == "engine.backoff"]
    assert record.levelno == logging.WARNING and not record.exc_info
    assert record.getMessage().startswith("relay: 3 events wait for the broker; retrying in ")

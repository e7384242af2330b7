"""app.api.health_cache: a check runs at most once per TTL however many callers ask, and once at a time."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app.api.health_cache import CheckCache
from engine.ops.health import CheckResult


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Counted:
    """A check that counts its runs; it can be held until released, and made to fail."""

    def __init__(self, hold: threading.Event | None = None, fail: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.hold = hold
        self.fail = fail

    def __call__(self, url: str) -> CheckResult:
        self.calls.append((url,))
        if self.hold is not None:
            assert self.hold.wait(30), "the test never released the check"
        if self.fail:
            raise RuntimeError("the check blew up")
        return CheckResult("database", True, f"run {len(self.calls)}")


def test_results_are_reused_until_they_are_older_than_the_ttl() -> None:
    clock, check = Clock(), Counted()
    cache = CheckCache(ttl_s=5, clock=clock)

    async def ask() -> list[str]:
        seen = [(await cache.get(check, "pg://a")).detail for _ in range(10)]
        clock.now += 4.9
        seen.append((await cache.get(check, "pg://a")).detail)
        clock.now += 0.2  # 5.1 s after the run: stale
        seen.append((await cache.get(check, "pg://a")).detail)
        return seen

    assert asyncio.run(ask()) == ["run 1"] * 11 + ["run 2"]
    assert len(check.calls) == 2 == cache.runs


def test_callers_arriving_while_a_check_runs_wait_for_that_run() -> None:
    release = threading.Event()
    check = Counted(hold=release)
    cache = CheckCache(ttl_s=5, clock=Clock())

    async def crowd() -> list[CheckResult]:
        waiting = [asyncio.ensure_future(cache.get(check, "pg://a")) for _ in range(25)]
        await asyncio.sleep(0)  # every caller reaches the cache before the check may finish
        release.set()
        return await asyncio.gather(*waiting)

    results = asyncio.run(crowd())
    assert len(check.calls) == 1
    assert {r.detail for r in results} == {"run 1"}


def test_other_arguments_fresh_requests_and_failures_run_the_check_again() -> None:
    clock, check, broken = Clock(), Counted(), Counted(fail=True)
    cache = CheckCache(ttl_s=5, clock=clock)

    async def ask() -> None:
        await cache.get(check, "pg://a")
        await cache.get(check, "pg://b")  # another URL is another check
        assert (await cache.get(check, "pg://a", fresh=True)).detail == "run 3"
        assert (await cache.get(check, "pg://a")).detail == "run 3"  # the fresh result is kept
        for _ in range(2):
            with pytest.raises(RuntimeError, match="blew up"):
                await cache.get(broken, "pg://a")

    asyncio.run(ask())
    assert check.calls == [("pg://a",), ("pg://b",), ("pg://a",)]
    assert len(broken.calls) == 2  # an error is never served from the cache

"""Health check results shared for a few seconds, so callers cannot make the web process check per request.

The health routes are public (load balancers and orchestrators probe them without credentials);
each check opens a connection, and the workers' ping waits up to two seconds. Within `ttl_s` every
caller gets the last result of a check, and callers that arrive while it runs wait for that one run
instead of starting their own. So however many requests come, each check runs at most once per
`ttl_s` in each web process. A check that raises is not kept: the next caller runs it again.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from engine.ops.health import CheckResult

CACHE_S = 5.0  # how old an answer of a public health route may be

Check = Callable[..., CheckResult]
_Key = tuple[Check, tuple[Hashable, ...], frozenset[tuple[str, Hashable]]]


@dataclass(frozen=True)
class _Entry:
    at: float
    result: CheckResult


class CheckCache:
    """The latest result of each (check, arguments), reused for `ttl_s` seconds; one run at a time."""

    def __init__(self, ttl_s: float = CACHE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.runs = 0  # checks actually run (for tests and metrics)
        self._entries: dict[_Key, _Entry] = {}
        # In-flight runs per event loop (a TestClient runs each app in a loop of its own).
        self._running: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[_Key, asyncio.Task[CheckResult]]
        ]
        self._running = weakref.WeakKeyDictionary()

    async def get(
        self, check: Check, *args: Hashable, fresh: bool = False, **kwargs: Hashable
    ) -> CheckResult:
        """`check(*args, **kwargs)`'s result, at most `ttl_s` old unless `fresh` (run it now, and keep it)."""
        key: _Key = (check, args, frozenset(kwargs.items()))
        entry = self._entries.get(key)
        if not fresh and entry is not None and self.clock() - entry.at < self.ttl_s:
            return entry.result
        running = self._running.setdefault(asyncio.get_running_loop(), {})
        task = running.get(key)
        if task is None:
            task = asyncio.ensure_future(self._run(key, check, args, kwargs))
            running[key] = task
            task.add_done_callback(lambda _: running.pop(key, None))
        # A caller that goes away (a client disconnects) does not cancel the run the others wait for.
        return await asyncio.shield(task)

    async def _run(
        self, key: _Key, check: Check, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> CheckResult:
        self.runs += 1
        result = await run_in_threadpool(check, *args, **kwargs)  # checks block on network timeouts
        self._entries[key] = _Entry(self.clock(), result)
        return result

    def clear(self) -> None:
        """Forget every result (tests; a settings change)."""
        self._entries.clear()

"""Waiting for the next event of runs without missing one that lands between a read and the wait.

A watcher re-reads what it shows each time a run has a new event. Registering the wait only after
the read would lose an event committed in between (until the timeout), so `arm` registers first:
arm, read, show, then `wait` on the armed waiter, which returns at once if an event came meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from engine import run_events

ANY_RUN = run_events.ANY_RUN


class Armed:
    """Waits registered with engine.run_events for one or more runs (or ANY_RUN)."""

    def __init__(self, tasks: list[asyncio.Task[bool]], timeout: float) -> None:
        self._tasks = tasks
        self._timeout = timeout

    async def wait(self) -> bool:
        """Until one of the runs has a new event (True) or the timeout passes (False)."""
        if not self._tasks:
            await asyncio.sleep(self._timeout)
            return False
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        self.cancel()
        return any(not t.cancelled() and t.exception() is None and t.result() for t in done)

    def cancel(self) -> None:
        """Stop waiting (safe to call more than once)."""
        for task in self._tasks:
            task.cancel()


async def arm(run_ids: Iterable[str], timeout: float, *, database_url: str | None = None) -> Armed:
    """Register a wait for a new event of any of `run_ids` (ANY_RUN: of any run), to await later."""
    tasks = [
        asyncio.ensure_future(run_events.wait_async(run_id, timeout, database_url=database_url))
        for run_id in dict.fromkeys(str(r) for r in run_ids)
    ]
    # One turn of the loop runs each task up to its wait, where it is registered with the hub.
    await asyncio.sleep(0)
    return Armed(tasks, timeout)

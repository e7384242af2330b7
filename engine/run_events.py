"""A run's events as they happen: read the outbox after a given event id, and wait for new ones.

Every insert into `events` NOTIFYs the channel `flowloom_events` with the run id (a row trigger
in PostgreSQL, migration 0003: no extra round trip on the engine's path; PostgreSQL delivers it at
commit and folds repeats of one transaction). One listener thread per process fans the
notifications out to waiters, sync (`wait`) or asyncio (`await wait_async`). A wait also ends on
its timeout, so a lost notification (a dropped listener connection) delays, never loses, an event:
callers re-read the outbox after every wait.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, select
from sqlmodel import col

from engine.ids import parse_id
from engine.settings import get_settings
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Event, Run

log = logging.getLogger(__name__)

CHANNEL = "flowloom_events"
ANY_RUN = "*"  # waiting on this wakes on a new event of any run (the Runs page)
TERMINAL_RUN = ("succeeded", "failed", "cancelled")
_events = table_of(Event)


@dataclass(frozen=True)
class RunEvent:
    """One outbox row of a run; `seq` (the row id) orders a run's events and resumes streams."""

    seq: int
    event_id: str
    event_type: str
    payload: dict[str, Any]
    created_at: datetime


def events_after(
    conn: Connection, run_id: str | uuid.UUID, after: int = 0, limit: int = 500
) -> list[RunEvent]:
    """The run's events with a sequence number above `after`, oldest first."""
    rid = parse_id(run_id)
    if rid is None:
        return []
    rows = conn.execute(
        select(
            _events.c.id, _events.c.event_id, _events.c.event_type, _events.c.payload, _events.c.created_at
        )
        .where(_events.c.run_id == rid, _events.c.id > after)
        .order_by(_events.c.id)
        .limit(limit)
    )
    return [RunEvent(r.id, str(r.event_id), r.event_type, r.payload, r.created_at) for r in rows]


def run_status(conn: Connection, run_id: str | uuid.UUID) -> str | None:
    """The run's status, None if there is no such run."""
    rid = parse_id(run_id)
    if rid is None:
        return None
    return conn.execute(select(col(Run.status)).where(col(Run.id) == rid)).scalar()


class _Hub:
    """One LISTEN connection per process; waiters are woken by run id."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._lock = threading.Lock()
        self._sync: dict[str, list[threading.Event]] = defaultdict(list)
        self._async: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(list)
        self._thread = threading.Thread(target=self._listen, name="flowloom-run-events", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        url = self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        while True:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._wake_all()  # anything missed while (re)connecting is re-read by the waiters
                    for note in conn.notifies():
                        self._wake(note.payload)
            except Exception as exc:  # noqa: BLE001 - the listener must outlive a database restart
                log.warning("run events listener: %s; reconnecting", exc)
                threading.Event().wait(1.0)

    def _wake(self, run_id: str) -> None:
        with self._lock:
            sync, asy = self._sync.pop(run_id, []), self._async.pop(run_id, [])
            sync += self._sync.pop(ANY_RUN, [])
            asy += self._async.pop(ANY_RUN, [])
        for event in sync:
            event.set()
        for loop, async_event in asy:
            try:
                loop.call_soon_threadsafe(async_event.set)
            except RuntimeError:  # the waiter's event loop has closed: nobody is waiting any more
                pass

    def _wake_all(self) -> None:
        with self._lock:
            keys = set(self._sync) | set(self._async)
        for key in keys:
            self._wake(key)

    def wait(self, run_id: str, timeout: float) -> bool:
        event = threading.Event()
        with self._lock:
            self._sync[run_id].append(event)
        woken = event.wait(timeout)
        if not woken:
            with self._lock:
                if event in self._sync.get(run_id, []):
                    self._sync[run_id].remove(event)
        return woken

    async def wait_async(self, run_id: str, timeout: float) -> bool:
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            self._async[run_id].append(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                waiting = self._async.get(run_id, [])
                if entry in waiting:
                    waiting.remove(entry)


_hubs: dict[str, _Hub] = {}
_hubs_lock = threading.Lock()


def _hub(database_url: str | None = None) -> _Hub:
    url = database_url or get_settings().database_url
    with _hubs_lock:
        if url not in _hubs:
            _hubs[url] = _Hub(url)
        return _hubs[url]


def wait(run_id: str | uuid.UUID, timeout: float = 5.0, *, database_url: str | None = None) -> bool:
    """Block until the run has a new event or `timeout` passes; True when woken by an event."""
    return _hub(database_url).wait(str(run_id), timeout)


async def wait_async(
    run_id: str | uuid.UUID, timeout: float = 5.0, *, database_url: str | None = None
) -> bool:
    """`wait` for asyncio code (an SSE stream): does not hold a thread while waiting."""
    return await _hub(database_url).wait_async(str(run_id), timeout)


def wait_for_end(run_id: str | uuid.UUID, timeout: float, *, database_url: str | None = None) -> str | None:
    """Wait until the run ends or `timeout` passes; its status then (None if there is no such run)."""
    engine = get_engine(database_url or get_settings().database_url)
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            status = run_status(conn, run_id)
        left = deadline - time.monotonic()
        if status is None or status in TERMINAL_RUN or left <= 0:
            return status
        wait(run_id, min(left, 2.0), database_url=database_url)

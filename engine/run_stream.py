"""A run's events for a stream: read in id order without gaps, then wait for the next ones.

Outbox ids come from a sequence: an insert takes its id at once but shows it only at commit, so two
transactions writing events of one run (parallel branches, an agent's token batches) can commit
out of id order. A reader that sent id 12 before 11 committed would never send 11, and neither
would a resume after 12. A read therefore stops at a horizon: an id below which every insert into
`events` has committed or rolled back. An INSERT holds RowExclusiveLock on the table from before it
takes its id until its transaction ends, so the sequence's value read first is such a horizon once
every transaction that held that lock just after (pg_locks) has ended; usually none did, and the
horizon is the sequence's value at once. (UPDATEs and DELETEs of `events` hold the lock too and
may delay a read by their own short transaction.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from engine import run_events, run_watch
from engine.run_events import RunEvent
from engine.settings import get_settings
from models.db import get_engine

BATCH = 500
HOLD_S = 0.05  # re-read this soon while a committed event waits behind an open insert,
HOLD_MAX_S = 1.0  # backing off to this while that insert stays open
WAIT_S = 15.0  # re-read at least this often without a notification (one lost on a reconnect)

_SEQUENCE_VALUE = text(
    "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'id')::regclass), 0)"
)
_OPEN_WRITERS = text(
    "SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation' AND relation = 'events'::regclass"
    " AND mode = 'RowExclusiveLock' AND granted AND pid <> pg_backend_pid()"
)


@dataclass
class Batch:
    """What one read found: the events to send, the run's status, whether to read again at once."""

    events: list[RunEvent]
    status: str | None
    held_back: bool = False  # a committed event waits behind an insert still open
    full: bool = False  # more events are already there

    @property
    def ended(self) -> bool:
        """The run is over (or gone) and everything it wrote has been read."""
        finished = self.status is None or self.status in run_events.TERMINAL_RUN
        return finished and not self.held_back and not self.full


@dataclass
class Reader:
    """Reads one run's events after `after`, in id order, never past the horizon."""

    run_id: str
    after: int = 0
    _horizon: int = 0
    _pending: list[tuple[int, frozenset[str]]] = field(default_factory=list)

    def _advance(self, conn: Connection) -> int:
        value = int(conn.execute(_SEQUENCE_VALUE).scalar() or 0)
        open_now = frozenset(conn.execute(_OPEN_WRITERS).scalars())
        self._pending.append((value, open_now))
        # A value is safe once every writer open just after it was read has ended.
        for candidate, writers in self._pending:
            if not writers & open_now:
                self._horizon = max(self._horizon, candidate)
        self._pending = [(v, w) for v, w in self._pending if v > self._horizon][-16:]
        return self._horizon

    def read(self, conn: Connection, limit: int = BATCH) -> Batch:
        """The events committed since the last read that no earlier open insert could precede."""
        status = run_events.run_status(conn, self.run_id)  # before the events: a final status covers them
        horizon = self._advance(conn)
        found = run_events.events_after(conn, self.run_id, self.after, limit)
        ready = [e for e in found if e.seq <= horizon]
        if ready:
            self.after = ready[-1].seq
        held_back = len(ready) < len(found)
        return Batch(ready, status, held_back=held_back, full=not held_back and len(found) >= limit)


def _read(reader: Reader, database_url: str | None) -> Batch:
    with get_engine(database_url or get_settings().database_url).connect() as conn:
        return reader.read(conn)


async def follow(
    run_id: str, after: int = 0, *, idle_s: float = WAIT_S, database_url: str | None = None
) -> AsyncIterator[RunEvent | None]:
    """The run's events after `after` as they commit, and None after each `idle_s` without any
    (a stream's keep-alive); ends once the run has ended and everything it wrote was yielded."""
    reader, hold = Reader(str(run_id), after), HOLD_S
    while True:
        armed = await run_watch.arm([reader.run_id], idle_s, database_url=database_url)
        try:
            batch = await asyncio.to_thread(_read, reader, database_url)
            for event in batch.events:
                yield event
            if batch.ended:
                return
            if batch.held_back:  # no notification tells when another run's insert ends: look again
                await asyncio.sleep(hold)
                hold = min(hold * 2, HOLD_MAX_S)
                continue
            hold = HOLD_S
            if not batch.full and not await armed.wait():
                yield None
        finally:
            armed.cancel()

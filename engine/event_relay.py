"""The outbox relay: publish committed events to Kafka in id order, then mark them published.

One batch is one PostgreSQL transaction: take the oldest unpublished rows (FOR UPDATE SKIP LOCKED),
publish them, wait for the broker's acks, set `published_at` on those acknowledged (or dead-lettered)
and commit. A crash between the ack and the commit publishes the batch again: delivery is at least
once, and consumers de-duplicate on `event_id`. A transaction-scoped advisory lock lets one relay
at a time publish, so several relays (a standby) cannot interleave a run's events.

The relay is a process of its own (`flowloom relay`, started by `flowloom up`), not a loop in every
worker: one ordered reader and one producer, and workers that never wait on a broker.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from kafka.errors import KafkaError
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import SQLAlchemyError

from engine import dead_letters
from engine.backoff import Waiting, call_until_stopped
from engine.event_facts import RunFactsCache, load_step_facts
from engine.event_publisher import EventPublisher, Item, Outcome, PublisherConfig
from engine.event_schema import (
    OutboxRow,
    UnpublishableEvent,
    family_of,
    step_facts_wanted,
    to_envelope,
)
from engine.events import WORKFLOW_CANCELLED, WORKFLOW_COMPLETED, WORKFLOW_FAILED
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Event

log = logging.getLogger(__name__)

_events = table_of(Event)
_RELAY_LOCK = 0x466C6F776C6F6F6D  # "Flowloom": pg_try_advisory_xact_lock key of the publishing relay
_RUN_ENDS = (WORKFLOW_COMPLETED, WORKFLOW_FAILED, WORKFLOW_CANCELLED)
_TRY_LOCK = select(func.pg_try_advisory_xact_lock(_RELAY_LOCK))
_UNPUBLISHED = (
    select(_events.c.id, _events.c.event_id, _events.c.event_type, _events.c.run_id, _events.c.payload)
    .where(_events.c.published_at.is_(None), _events.c.id >= bindparam("floor"))
    .order_by(_events.c.id)
    .limit(bindparam("n"))
    .with_for_update(skip_locked=True)
)
# clock_timestamp(): when the acks were in, not when the batch's transaction began.
_MARK_PUBLISHED = (
    update(_events)
    .where(_events.c.id.in_(bindparam("ids", expanding=True)))
    .values(published_at=func.clock_timestamp())
)
# A dead letter also leaves its mark on the outbox row, so PostgreSQL can list them (the row is kept).
_MARK_DEAD = (
    update(_events)
    .where(_events.c.id == bindparam("row_id"))
    .values(
        published_at=func.clock_timestamp(),
        payload=_events.c.payload.op("||")(bindparam("mark", type_=JSONB)),
    )
)


@dataclass(frozen=True)
class RelayConfig:
    """How the relay reads the outbox."""

    batch_size: int = 500
    poll_interval_s: float = 0.2  # how soon a new event is seen when the outbox was empty
    # Rows a little below the newest one published are read again: an insert that committed after a
    # later id did (concurrent branches of a run) is still found. A full scan catches anything older.
    lookback: int = 1000
    full_scan_interval_s: float = 60.0
    max_backoff_s: float = 10.0  # after a broker or database failure, waits double up to this


@dataclass
class BatchResult:
    """What one batch did."""

    read: int = 0
    sent: int = 0
    dead_lettered: int = 0
    pending: int = 0


class EventRelay:
    """Publishes the outbox to Kafka until stopped; make one per process."""

    def __init__(
        self, database_url: str, publisher_config: PublisherConfig, config: RelayConfig | None = None
    ) -> None:
        self.engine = get_engine(database_url)
        self.publisher_config = publisher_config
        self.config = config or RelayConfig()
        self.facts = RunFactsCache()
        self.totals = BatchResult()
        self._publisher: EventPublisher | None = None
        self._high = 0  # the highest id published so far
        self._floor = 0
        self._last_full_scan = 0.0

    def relay_batch(self) -> BatchResult | None:
        """Publish the oldest unpublished events once; None if another relay holds the lock."""
        publisher = self._connected()
        with self.engine.begin() as conn:
            if not conn.execute(_TRY_LOCK).scalar():
                return None
            rows = self._fetch(conn)
            items = self._items(conn, rows)
            if items:
                publisher.publish(items)
            self._mark(conn, items)
        if not publisher.healthy:
            self._drop_publisher()
        return self._account(items)

    def run(self, stop: threading.Event, report_every_s: float = 10.0) -> None:
        """Relay until `stop` is set: batches back to back while there is work; after a failure (the
        broker or the database away, events the broker did not take) the wait grows (engine.backoff)."""
        last_report, reported = time.monotonic(), BatchResult()
        while not stop.is_set():
            result = call_until_stopped(
                self._relay_or_wait, stop, what="relay", transient=(KafkaError, SQLAlchemyError, OSError),
                on_failure=self._drop_publisher, max_s=self.config.max_backoff_s,
            )  # fmt: skip
            if result is None or result.read < self.config.batch_size:
                stop.wait(self.config.poll_interval_s)
            if time.monotonic() - last_report >= report_every_s:
                reported = self._report(reported, time.monotonic() - last_report)
                last_report = time.monotonic()
        self._drop_publisher()

    def _relay_or_wait(self) -> BatchResult | None:
        """One batch (None: another relay holds the lock); Waiting when some of it waits for the broker."""
        result = self.relay_batch()
        if result is not None and result.pending:
            raise Waiting(f"{result.pending} events wait for the broker")
        return result

    def _connected(self) -> EventPublisher:
        if self._publisher is None:
            self._publisher = EventPublisher(self.publisher_config)
            log.info("relay: connected to %s", self.publisher_config.bootstrap_servers)
        return self._publisher

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    def _fetch(self, conn: Connection) -> list[OutboxRow]:
        floor = self._floor
        if time.monotonic() - self._last_full_scan >= self.config.full_scan_interval_s:
            floor, self._last_full_scan = 0, time.monotonic()
        result = conn.execute(_UNPUBLISHED, {"floor": floor, "n": self.config.batch_size})
        return [
            OutboxRow(r.id, str(r.event_id), r.event_type, str(r.run_id) if r.run_id else None, r.payload)
            for r in result
        ]

    def _items(self, conn: Connection, rows: list[OutboxRow]) -> list[Item]:
        """Each row with its envelope and topic, or the reason it has none."""
        run_ids = {r.run_id for r in rows if r.run_id}
        ended = {r.run_id for r in rows if r.run_id and r.event_type in _RUN_ENDS}
        runs = self.facts.load(conn, run_ids, ended)
        steps = load_step_facts(conn, (s for s in map(_wanted_step, rows) if s))
        items = []
        for row in rows:
            item = Item(
                row.id, row.event_id, row.event_type, row.run_id, row.payload, topic=None, envelope=None
            )
            try:
                family, envelope = to_envelope(
                    row, runs.get(row.run_id or ""), steps.get(_wanted_step(row) or "")
                )
                item.topic, item.envelope = self.publisher_config.topics.of(family), envelope
            except UnpublishableEvent as exc:
                item.error = str(exc)
                item.topic = _topic_or_none(self.publisher_config, row.event_type)
            items.append(item)
        return items

    def _mark(self, conn: Connection, items: list[Item]) -> None:
        sent = [i.sequence for i in items if i.outcome is Outcome.SENT]
        if sent:
            conn.execute(_MARK_PUBLISHED, {"ids": sent})
        for item in items:
            if item.outcome is Outcome.DEAD_LETTERED:
                mark = {
                    "dead_letter": {"error": item.error, "topic": self.publisher_config.topics.dead_letter}
                }
                conn.execute(_MARK_DEAD, {"row_id": item.sequence, "mark": mark})
                # The row an admin lists and replays (engine/dead_letters.py), with the outbox mark.
                dead_letters.record(
                    conn, source="event", error=item.error or "unknown error", payload=item.payload,
                    topic=item.topic or "", message_key=item.run_id, event_id=item.event_id,
                )  # fmt: skip

    def _account(self, items: list[Item]) -> BatchResult:
        """Count the outcomes and move the floor of the next read."""
        result = BatchResult(read=len(items))
        for item in items:
            if item.outcome is Outcome.SENT:
                result.sent += 1
            elif item.outcome is Outcome.DEAD_LETTERED:
                result.dead_lettered += 1
            else:
                result.pending += 1
        done = [i.sequence for i in items if i.outcome is not Outcome.PENDING]
        waiting = [i.sequence for i in items if i.outcome is Outcome.PENDING]
        self._high = max([self._high, *done])
        self._floor = max(0, min([self._high - self.config.lookback, *waiting]))
        for name in ("read", "sent", "dead_lettered", "pending"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(result, name))
        return result

    def _report(self, before: BatchResult, seconds: float) -> BatchResult:
        now = BatchResult(**vars(self.totals))
        sent = now.sent - before.sent
        if sent or now.dead_lettered != before.dead_lettered:
            log.info("relay: published %d events (%.0f/s), %d dead letters in total", sent, sent / seconds,
                     now.dead_lettered)  # fmt: skip
        return now


def _wanted_step(row: OutboxRow) -> str | None:
    try:
        return step_facts_wanted(row)
    except UnpublishableEvent:
        return None


def _topic_or_none(config: PublisherConfig, event_type: str) -> str | None:
    try:
        return config.topics.of(family_of(event_type))
    except UnpublishableEvent:
        return None

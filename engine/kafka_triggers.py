"""Kafka triggers: a run per message of a topic, committed with the consumed offset (`flowloom kafka-triggers`).

One thread and one KafkaConsumer per live trigger; the list is read again every `refresh_s`, so new,
changed, paused and removed triggers are picked up. Partitions are assigned explicitly and no
consumer group is used: the offsets live in PostgreSQL (`kafka_offsets`). For each message, in ONE
transaction: lock the partition's offset row, handle the message (engine.kafka_messages: parse,
filter, inputs), start the run with the delivery key topic:partition:offset (engine.trigger_fire)
or write a dead letter, and move the offset past the message; commit; then send the run's first
step. A message therefore starts exactly one run across restarts and kills: a transaction that did
not commit left neither run nor offset, and the delivery key refuses a second run anyway.

A message that cannot start a run (not JSON, the filter fails, the inputs do not fit the workflow)
becomes a dead letter: a row (engine.dead_letters) in the same transaction, and a record on
<prefix>.dead-letter acknowledged before that transaction commits (at least once on the topic).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DataError, SQLAlchemyError

from engine import dead_letters, dispatch, triggers
from engine.backoff import call_until_stopped
from engine.db_errors import db_error_reason
from engine.errors import ErrorCode, FlowloomError, user_message
from engine.event_publisher import EventPublisher, PublisherConfig
from engine.kafka_messages import KafkaMessage, MessageRejected, dead_letter_record, run_inputs
from engine.run_state import Dispatch
from engine.trigger_fire import fire_in
from engine.triggers import TriggerRow
from models.core_tables import table_of
from models.db import get_engine
from models.triggers import KafkaOffset

log = logging.getLogger(__name__)
# How long the broker may hold a fetch when no record is there: a message waits at most this long
# before its run starts (Tansu answers only when the wait runs out); lower = more idle fetches.
FETCH_MAX_WAIT_MS = 100

_offsets = table_of(KafkaOffset)


@dataclass(frozen=True)
class ConsumerConfig:
    """How the consumers run."""

    refresh_s: float = 5.0  # how often the list of live triggers is read again
    poll_timeout_s: float = 0.5
    max_records: int = 200  # per poll
    max_backoff_s: float = 10.0  # after a broker or database failure, waits double up to this


class TriggerStopped(Exception):
    """The trigger was paused, removed or changed since its consumer started: the consumer ends."""


@dataclass
class Counts:
    """What one trigger's consumer did so far."""

    started: int = 0
    skipped: int = 0
    dead_lettered: int = 0


def stored_offsets(conn: Connection, trigger_id: str, topic: str) -> dict[int, int]:
    """partition -> next offset to consume, as committed."""
    rows = conn.execute(
        select(_offsets.c.partition, _offsets.c.next_offset).where(
            _offsets.c.trigger_id == trigger_id, _offsets.c.topic == topic
        )
    )
    return {r.partition: r.next_offset for r in rows}


def _upsert_offset(conn: Connection, trigger_id: str, topic: str, partition: int, next_offset: int,
                   *, keep_existing: bool = False) -> None:  # fmt: skip
    insert = pg_insert(_offsets).values(
        trigger_id=trigger_id,
        topic=topic,
        partition=partition,
        next_offset=next_offset,
        updated_at=func.now(),
    )
    if keep_existing:
        conn.execute(insert.on_conflict_do_nothing())
        return
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[_offsets.c.trigger_id, _offsets.c.topic, _offsets.c.partition],
            set_={"next_offset": func.greatest(_offsets.c.next_offset, insert.excluded.next_offset),
                  "updated_at": func.now()},
        )
    )  # fmt: skip


class TriggerConsumer(threading.Thread):
    """Consumes one Kafka trigger's topic until stopped, or until the trigger stops being live."""

    def __init__(self, trigger: TriggerRow, database_url: str, publisher_config: PublisherConfig,
                 config: ConsumerConfig) -> None:  # fmt: skip
        super().__init__(name=f"flowloom-kafka-{trigger.key}", daemon=True)
        self.trigger = trigger
        self.topic: str = trigger.config.topic
        self.engine = get_engine(database_url)
        self.publisher_config = publisher_config
        self.config = config
        self.stopping = threading.Event()
        self.counts = Counts()
        self._consumer: KafkaConsumer | None = None
        self._publisher: EventPublisher | None = None

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        """Consume until stopped; after a failure (the broker or the database away) the connections are
        dropped and the wait grows (engine.backoff); the next connect seeks to the committed offsets."""
        while not self.stopping.is_set():
            try:
                call_until_stopped(
                    self._consume_once, self.stopping, what=f"kafka-triggers: trigger {self.trigger.key} ({self.topic})",
                    transient=(KafkaError, SQLAlchemyError, OSError), fatal=(TriggerStopped,),
                    on_failure=self._disconnect, max_s=self.config.max_backoff_s,
                )  # fmt: skip
            except TriggerStopped as exc:
                log.info("kafka-triggers: %s", exc)
                break
        self._disconnect()

    def _disconnect(self) -> None:
        for client in (self._consumer, self._publisher):
            if client is not None:
                try:
                    client.close()
                except KafkaError:
                    log.debug("closing a Kafka client failed", exc_info=True)
        self._consumer = self._publisher = None

    def _consume_once(self) -> None:
        consumer = self._consumer or self._connect()
        if consumer is None:
            return
        batches = consumer.poll(timeout_ms=int(self.config.poll_timeout_s * 1000),
                                max_records=self.config.max_records)  # fmt: skip
        for batch in batches.values():
            for record in batch:
                if self.stopping.is_set():
                    return  # not committed: the next start reads it again
                self._handle(KafkaMessage.from_record(record))

    def _connect(self) -> KafkaConsumer | None:
        """A consumer assigned every partition of the topic, each at its committed offset (None: no topic yet)."""
        servers = self.publisher_config.bootstrap_servers.split(",")
        consumer = KafkaConsumer(
            bootstrap_servers=servers, client_id=f"flowloom-trigger-{self.trigger.id}", group_id=None,
            enable_auto_commit=False, allow_auto_create_topics=False, auto_offset_reset="earliest",
            request_timeout_ms=10_000, reconnect_backoff_max_ms=2000, metadata_max_age_ms=30_000,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )  # fmt: skip
        try:
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                consumer.close()
                log.warning("kafka-triggers: topic %s of trigger %s does not exist (yet); looking again in %.0f s",
                            self.topic, self.trigger.key, self.config.refresh_s)  # fmt: skip
                self.stopping.wait(self.config.refresh_s)
                return None
            assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            offsets = self._starting_offsets(consumer, assigned)
            for tp in assigned:
                consumer.seek(tp, offsets[tp.partition])
        except BaseException:
            consumer.close()
            raise
        self._consumer = consumer
        log.info("kafka-triggers: consuming %s for trigger %s of %r from offsets %s", self.topic, self.trigger.key,
                 self.trigger.workflow_name, dict(sorted(offsets.items())))  # fmt: skip
        return consumer

    def _starting_offsets(self, consumer: KafkaConsumer, assigned: list[TopicPartition]) -> dict[int, int]:
        """The committed offsets; a partition without one starts at its beginning or end (start_from),
        pinned at once so a restart goes on from there rather than from a later end."""
        with self.engine.begin() as conn:
            stored = stored_offsets(conn, self.trigger.id, self.topic)
        new = [tp for tp in assigned if tp.partition not in stored]
        if not new:
            return stored
        if self.trigger.config.start_from == "earliest":
            consumer.seek_to_beginning(*new)
        else:
            consumer.seek_to_end(*new)
        with self.engine.begin() as conn:
            for tp in new:
                _upsert_offset(conn, self.trigger.id, self.topic, tp.partition, consumer.position(tp),
                               keep_existing=True)  # fmt: skip
            return stored_offsets(conn, self.trigger.id, self.topic)

    def _handle(self, message: KafkaMessage) -> None:
        """One message in one transaction: a run or a dead letter (or a skip), and the offset after it."""
        sent: list[Dispatch] = []
        with self.engine.begin() as conn:
            committed = conn.execute(
                select(_offsets.c.next_offset)
                .where(_offsets.c.trigger_id == self.trigger.id, _offsets.c.topic == message.topic,
                       _offsets.c.partition == message.partition)
                .with_for_update()
            ).scalar()  # fmt: skip
            if committed is not None and committed > message.offset:
                return  # another consumer of this trigger handled it already
            trigger = triggers.get(conn, self.trigger.id)
            if trigger is None or not trigger.live:
                raise TriggerStopped(f"trigger {self.trigger.key} is paused or gone; its consumer stops")
            if trigger.config != self.trigger.config:
                raise TriggerStopped(f"trigger {self.trigger.key} changed; its consumer starts again")
            error = None
            try:
                inputs = run_inputs(trigger.config, message)
                if inputs is None:
                    self.counts.skipped += 1
                else:
                    sent = self._start(conn, trigger, message, inputs)
            except FlowloomError as exc:
                error = user_message(exc)
            if error is not None:
                self._dead_letter(conn, message, error)
            _upsert_offset(conn, self.trigger.id, message.topic, message.partition, message.offset + 1)
        dispatch.send(sent)

    def _start(
        self, conn: Connection, trigger: TriggerRow, message: KafkaMessage, inputs: dict
    ) -> list[Dispatch]:
        """Start the message's run in a savepoint: refused inputs roll back only the run's rows."""
        try:
            with conn.begin_nested():
                fired = fire_in(conn, trigger, message.delivery_key, inputs)
        except FlowloomError as exc:
            if exc.code == ErrorCode.TRIGGER_PAUSED:
                raise TriggerStopped(str(exc)) from exc
            raise
        except DataError as exc:  # e.g. a NUL character in a string: PostgreSQL stores no such text
            raise MessageRejected(f"PostgreSQL refused {message.where}: {db_error_reason(exc)}") from exc
        if not fired.duplicate:
            self.counts.started += 1
        return fired.dispatches

    def _dead_letter(self, conn: Connection, message: KafkaMessage, error: str) -> None:
        """The row, then the topic's record (acknowledged before the row's transaction commits)."""
        row_id = dead_letters.record(
            conn, source="kafka", error=error, payload=message.payload(), topic=message.topic,
            message_key=message.key, trigger_id=self.trigger.id,
        )  # fmt: skip
        if self._publisher is None:
            self._publisher = EventPublisher(self.publisher_config)
        record = dead_letter_record(row_id, self.trigger.id, message, error,
                                    limit=self.publisher_config.max_message_bytes // 2)  # fmt: skip
        self._publisher.send_dead_letter(record, key=self.trigger.id)
        self.counts.dead_lettered += 1
        log.warning("kafka-triggers: %s of trigger %s went to %s (dead letter %d): %s", message.where,
                    self.trigger.key, self.publisher_config.topics.dead_letter, row_id, error)  # fmt: skip


class KafkaTriggers:
    """Runs a TriggerConsumer for every live Kafka trigger until stopped."""

    def __init__(self, database_url: str, publisher_config: PublisherConfig,
                 config: ConsumerConfig | None = None) -> None:  # fmt: skip
        self.database_url = database_url
        self.engine = get_engine(database_url)
        self.publisher_config = publisher_config
        self.config = config or ConsumerConfig()
        self.consumers: dict[str, TriggerConsumer] = {}

    def refresh(self) -> None:
        """Start consumers for new live triggers; stop those of paused, removed or changed ones."""
        with self.engine.connect() as conn:
            live = {t.id: t for t in triggers.list_live(conn, "kafka")}
        for trigger_id, consumer in list(self.consumers.items()):
            trigger = live.get(trigger_id)
            if trigger is None or trigger.config != consumer.trigger.config or not consumer.is_alive():
                consumer.stop()
                consumer.join(30)
                del self.consumers[trigger_id]
        for trigger_id, trigger in live.items():
            if trigger_id not in self.consumers:
                consumer = TriggerConsumer(trigger, self.database_url, self.publisher_config, self.config)
                self.consumers[trigger_id] = consumer
                consumer.start()

    def run(self, stop: threading.Event) -> None:
        """Refresh every `refresh_s` until `stop` is set, then stop every consumer."""
        while not stop.is_set():
            try:
                self.refresh()
            except SQLAlchemyError as exc:
                log.warning("kafka-triggers: cannot read the triggers: %s", db_error_reason(exc))
            stop.wait(self.config.refresh_s)
        self.stop_all()

    def stop_all(self) -> None:
        for consumer in self.consumers.values():
            consumer.stop()
        deadline = time.monotonic() + 30
        for consumer in self.consumers.values():
            consumer.join(max(0.1, deadline - time.monotonic()))
        self.consumers.clear()

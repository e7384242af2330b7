"""Trigger-to-first-step latency for bench/events.py: webhook deliveries, Kafka messages and their baselines.

Each run is started only after the one before it ended, so no run waits behind another. The latency
of a run is its start step's `started_at` (PostgreSQL's now() in the worker's claim transaction) minus
the wall-clock time just before the delivery was sent; the echo step after it is shown too.
"""

from __future__ import annotations

import base64
import queue
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import text
from standardwebhooks import Webhook

from bench.event_setup import (
    create_topic,
    echo_workflow,
    operator_key,
    save_workflow,
    start_kafka_triggers,
    stop_process,
)
from engine import run_events, secrets
from engine.kafka_triggers import FETCH_MAX_WAIT_MS
from engine.parse import parse_dict
from engine.runs import start_run
from models.db import get_engine

SIGNING_SECRET = "whsec_" + base64.b64encode(b"flowloom-bench-webhook-key-32byt").decode()
WARM_UP = 5  # untimed runs first: the web process's imports, caches and connection pools


@dataclass
class Latencies:
    """Milliseconds per run: to the first step, and to the step after it (when there is one)."""

    first: list[float]
    then: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.first)

    @property
    def p95(self) -> float:
        return _p95(self.first)

    def describe(self) -> str:
        """ "p50 … ms, p95 … ms", and the echo step's when measured."""
        line = f"p50 {self.p50:7.1f} ms, p95 {self.p95:7.1f} ms"
        if self.then:
            line += f"   (echo step: p50 {statistics.median(self.then):.1f}, p95 {_p95(self.then):.1f})"
        return line


def _p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def step_starts(pg_url: str, sent: dict[str, datetime]) -> Latencies:
    """The start and echo steps' started_at of each run minus the time its delivery was sent."""
    with get_engine(pg_url).connect() as conn:
        rows = conn.execute(
            text("SELECT run_id::text AS run_id, node_id, min(started_at) AS at FROM step_runs "
                 "WHERE run_id = ANY(CAST(:ids AS uuid[])) AND node_id IN ('start', 'echo') GROUP BY 1, 2"),
            {"ids": list(sent)},
        ).all()  # fmt: skip
    at = {(r.run_id, r.node_id): r.at for r in rows}
    missing = [rid for rid in sent if (rid, "start") not in at]
    if missing:
        raise RuntimeError(f"runs {missing[:3]} never started their first step")
    ms = lambda rid, node: (at[(rid, node)] - sent[rid]).total_seconds() * 1000  # noqa: E731
    return Latencies([ms(r, "start") for r in sent], [ms(r, "echo") for r in sent if (r, "echo") in at])


def webhook_latency(pg_url: str, base: str, m: int) -> dict[str, Latencies]:
    """`m` signed deliveries to a webhook trigger; then the same workflow started `m` times by
    POST /api/runs (an operator's API key, same web process) and by engine.runs.start_run here."""
    secrets.create_secret("bench-hook", SIGNING_SECRET, allowed_node_types=["trigger.webhook"],
                          actor="bench", database_url=pg_url)  # fmt: skip
    hook = {"id": "hook", "kind": "webhook", "config": {"secret": "bench-hook", "rate_per_minute": 100_000}}
    wid, tids = save_workflow(pg_url, echo_workflow([hook]))
    key = operator_key(pg_url)
    signer, defn = Webhook(SIGNING_SECRET), parse_dict(echo_workflow())

    def by_webhook(client: httpx.Client, i: int) -> str:
        body, msg_id, at = f'{{"n": {i}}}', f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signer.sign(msg_id, at, body),
        }
        answer = client.post(f"/api/hooks/{tids['hook']}", content=body, headers=headers)
        if answer.status_code != 202:
            raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text}")
        return answer.json()["run_id"]

    def by_api(client: httpx.Client, i: int) -> str:
        answer = client.post("/api/runs", json={"workflow_id": wid, "inputs": {"n": i}},
                             headers={"authorization": f"Bearer {key}"})  # fmt: skip
        if answer.status_code != 201:
            raise RuntimeError(f"POST /api/runs answered {answer.status_code}: {answer.text}")
        return answer.json()["id"]

    def in_process(_client: httpx.Client, i: int) -> str:
        return start_run(defn, {"n": i}, database_url=pg_url)

    results = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        for label, start in (("webhook", by_webhook), ("POST /api/runs", by_api), ("start_run", in_process)):
            for i in range(WARM_UP):
                run_events.wait_for_end(start(client, i), 30, database_url=pg_url)
            sent: dict[str, datetime] = {}
            for i in range(m):
                at = datetime.now(UTC)
                run_id = start(client, i)
                sent[run_id] = at
                run_events.wait_for_end(run_id, 30, database_url=pg_url)
            results[label] = step_starts(pg_url, sent)
    return results


def kafka_trigger_latency(
    pg_url: str, bootstrap: str, env: dict[str, str], log_path: Path, m: int
) -> Latencies:
    """`m` messages to the topic of a Kafka trigger consumed by a `flowloom kafka-triggers` process,
    one at a time: each is produced (and acknowledged) after the previous message's run ended."""
    topic = f"bench-orders-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 1)
    trigger = {"id": "orders", "kind": "kafka", "config": {"topic": topic, "start_from": "earliest"}}
    _, tids = save_workflow(pg_url, echo_workflow([trigger]))
    process = start_kafka_triggers(env, log_path)
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    engine = get_engine(pg_url)

    def run_of(delivery_key: str) -> str:
        deadline = time.monotonic() + 60
        with engine.connect() as conn:
            while True:
                run_id = conn.execute(
                    text("SELECT run_id::text FROM trigger_deliveries "
                         "WHERE trigger_id = :t AND delivery_key = :k"),
                    {"t": tids["orders"], "k": delivery_key},
                ).scalar()  # fmt: skip
                conn.rollback()  # a fresh snapshot for the next look
                if run_id:
                    return run_id
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"no run for {delivery_key}:\n{log_path.read_text(errors='replace')[-3000:]}"
                    )
                time.sleep(0.01)

    def one(i: int) -> tuple[str, datetime]:
        at = datetime.now(UTC)
        meta = producer.send(topic, value=f'{{"n": {i}}}'.encode()).get(timeout=10)
        run_id = run_of(f"{topic}:{meta.partition}:{meta.offset}")
        run_events.wait_for_end(run_id, 30, database_url=pg_url)
        return run_id, at

    try:
        for i in range(WARM_UP):  # the first also waits for the consumer to start and connect
            one(i)
        return step_starts(pg_url, dict(one(i) for i in range(m)))
    finally:
        producer.close()
        stop_process(process)


def kafka_consumer_latency(bootstrap: str, m: int, fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> Latencies:
    """Baseline: a plain KafkaConsumer (assigned partition, no group, the trigger consumer's poll of
    0.5 s and by default its fetch wait, engine.kafka_triggers.FETCH_MAX_WAIT_MS) in a thread; time
    from just before the send to the record's arrival from poll()."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 1)
    arrivals: queue.Queue[tuple[bytes, datetime]] = queue.Queue()
    ready, stop = threading.Event(), threading.Event()

    def consume() -> None:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                 auto_offset_reset="earliest", request_timeout_ms=10_000,
                                 fetch_max_wait_ms=fetch_max_wait_ms)  # fmt: skip
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            consumer.position(tp)
            ready.set()
            while not stop.is_set():
                for batch in consumer.poll(timeout_ms=500, max_records=200).values():
                    now = datetime.now(UTC)
                    for record in batch:
                        arrivals.put((record.value, now))
        finally:
            consumer.close()

    thread = threading.Thread(target=consume, name="bench-raw-consumer", daemon=True)
    thread.start()
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    try:
        if not ready.wait(30):
            raise RuntimeError("the baseline consumer did not connect")
        values = []
        for i in range(WARM_UP + m):
            value = f'{{"n": {i}}}'.encode()
            at = datetime.now(UTC)
            producer.send(topic, value=value).get(timeout=10)
            got, when = arrivals.get(timeout=30)
            if got != value:
                raise RuntimeError(f"the baseline consumer read {got!r}, expected {value!r}")
            if i >= WARM_UP:
                values.append((when - at).total_seconds() * 1000)
        return Latencies(values)
    finally:
        stop.set()
        producer.close()
        thread.join(10)

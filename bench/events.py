"""Event bus and trigger benchmarks, each against a baseline measured in the same run on the same broker.

Prints: events/s through the outbox relay vs a raw kafka-python KafkaProducer sending the very same
records (same bytes, keys and headers) with the relay's producer settings and with kafka-python's
defaults; trigger-to-first-step latency (p50/p95) of webhook deliveries vs the same workflow started
by POST /api/runs and by engine.runs.start_run; and of Kafka trigger messages vs the produce->consume
latency of a plain KafkaConsumer. Run: `python bench/events.py` (starts its own embedded PostgreSQL,
a Tansu broker, a Celery worker, granian and `flowloom kafka-triggers`, all on loopback; uses the
machine's Redis when reachable, else an embedded one). Sizes: BENCH_EVENTS (5000), BENCH_DELIVERIES (100).
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/engine.py and bench/openvino.py would shadow those packages: import from the repository root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.event_latency import (  # noqa: E402
    Latencies,
    kafka_consumer_latency,
    kafka_trigger_latency,
    webhook_latency,
)
from bench.event_setup import create_topic, echo_workflow, serve_api, start_worker, stop_process  # noqa: E402
from engine import events, run_events  # noqa: E402
from engine.event_publisher import PublisherConfig, Topics  # noqa: E402
from engine.event_relay import EventRelay  # noqa: E402
from engine.kafka_triggers import FETCH_MAX_WAIT_MS  # noqa: E402
from engine.ops.embedded_kafka import TansuBroker  # noqa: E402
from engine.ops.embedded_postgres import EmbeddedPostgres  # noqa: E402
from engine.ops.embedded_redis import EmbeddedRedis  # noqa: E402
from engine.ops.migrate import upgrade_to_head  # noqa: E402
from engine.ops.services import find_free_port, redis_reachable  # noqa: E402
from engine.parse import parse_dict  # noqa: E402
from engine.runs import start_run  # noqa: E402
from engine.settings import get_settings  # noqa: E402
from models.db import get_engine  # noqa: E402

N_EVENTS = int(os.environ.get("BENCH_EVENTS", "5000"))
N_DELIVERIES = int(os.environ.get("BENCH_DELIVERIES", "100"))
RELAY_RUNS = 5
# What engine/event_publisher.py gives the relay's KafkaProducer (ordering and batching).
RELAY_PRODUCER = {
    "enable_idempotence": False, "acks": "all", "max_in_flight_requests_per_connection": 1,
    "batch_size": 262_144, "linger_ms": 2, "max_request_size": 1_000_000 + 1024,
}  # fmt: skip


# --- 1. relay throughput ------------------------------------------------------------------------


@dataclass
class RelayResult:
    """The relay's rate and the raw producers' rates for the same records."""

    events: int
    seconds: float
    span_rate: float  # events/s from the first to the last published_at
    sizes: list[int] = field(default_factory=list)
    partitions: int = 3
    raw: dict[str, float] = field(default_factory=dict)  # label -> records/s

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def relay_throughput(pg_url: str, bootstrap: str, n: int = N_EVENTS) -> RelayResult:
    """Write `n` step events of a few real runs to the outbox, relay them in this process batch after
    batch (EventRelay.relay_batch, as `flowloom relay` does), then send the same records raw."""
    defn = parse_dict(echo_workflow())
    run_ids = [start_run(defn, {"n": i}, database_url=pg_url) for i in range(RELAY_RUNS)]
    for run_id in run_ids:
        run_events.wait_for_end(run_id, 60, database_url=pg_url)
    config = PublisherConfig(bootstrap_servers=bootstrap, topics=Topics(f"bench{uuid.uuid4().hex[:8]}"))
    relay = EventRelay(pg_url, config)
    try:
        _drain(relay)  # connects, makes the topics and publishes the runs' own events
        engine = get_engine(pg_url)
        with engine.begin() as conn:
            model = conn.execute(
                text("SELECT event_type, run_id, payload->'data' AS data FROM events "
                     "WHERE run_id = ANY(CAST(:ids AS uuid[])) AND event_type = ANY(:types) ORDER BY id"),
                {"ids": run_ids, "types": [events.STEP_STARTED, events.STEP_COMPLETED]},
            ).all()  # fmt: skip
            floor = conn.execute(text("SELECT coalesce(max(id), 0) FROM events")).scalar_one()
            for i in range(n):
                row = model[i % len(model)]
                events.emit(conn, row.event_type, str(row.run_id), **row.data)
        before = relay.totals.sent
        t0 = time.perf_counter()
        _drain(relay)
        seconds = time.perf_counter() - t0
    finally:
        relay._drop_publisher()  # what EventRelay.run does when it stops
    with engine.connect() as conn:
        first, last, ids = conn.execute(
            text("SELECT min(published_at), max(published_at), array_agg(event_id::text) FROM events "
                 "WHERE id > :floor AND run_id IS NOT NULL"), {"floor": floor},
        ).one()  # fmt: skip
    sent = relay.totals.sent - before
    result = RelayResult(sent, seconds, len(ids) / max((last - first).total_seconds(), 1e-6))
    records = _read_back(bootstrap, config.topics.of("workflow"), set(ids))
    result.sizes = [len(value) for _, value, _ in records]
    for label, settings in (("relay settings", RELAY_PRODUCER), ("kafka-python defaults", {})):
        topic = f"{config.topics.prefix}.raw{len(result.raw)}"
        create_topic(bootstrap, topic, result.partitions)
        result.raw[label] = _raw_send(bootstrap, topic, records, settings)
    return result


def _drain(relay: EventRelay) -> None:
    """Relay batches back to back until the outbox has nothing left to publish."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = relay.relay_batch()
        if done is not None and done.read == 0:
            return
        if done is None or done.pending:
            time.sleep(0.05)
    raise TimeoutError(f"the relay did not drain the outbox: {relay.totals}")


def _read_back(bootstrap: str, topic: str, event_ids: set[str]) -> list[tuple[bytes | None, bytes, list]]:
    """The records the relay published for `event_ids`: (key, value, headers), in partition order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        consumer.assign([TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))])
        consumer.seek_to_beginning()
        records, deadline = [], time.monotonic() + 60
        while len(records) < len(event_ids) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for r in batch:
                    if dict(r.headers).get("event_id", b"").decode() in event_ids:
                        records.append((r.key, r.value, list(r.headers)))
        return records
    finally:
        consumer.close()


def _raw_send(bootstrap: str, topic: str, records: list, settings: dict) -> float:
    """records/s of one KafkaProducer sending `records` and waiting for every ack."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, **settings)
    try:
        producer.send(topic, value=b"warm-up").get(timeout=10)  # metadata and connection, untimed
        t0 = time.perf_counter()
        futures = [producer.send(topic, value=v, key=k, headers=h) for k, v, h in records]
        producer.flush(120)
        for future in futures:
            future.get(timeout=0)
        return len(records) / (time.perf_counter() - t0)
    finally:
        producer.close()


# --- processes, printing, main ------------------------------------------------------------------


def relay_lines(r: RelayResult) -> list[str]:
    """What the relay section prints."""
    kib = sum(r.sizes) / 1024
    lines = [
        f"relay: {r.events} step events of {RELAY_RUNS} runs, {r.partitions} partitions, record size median "
        f"{statistics.median(r.sizes or [0]):.0f} B ({kib:,.0f} KiB in all)",
        f"  relay (EventRelay batches of 500, in-process):        {r.rate:8.0f} events/s  "
        f"({r.seconds:.2f} s; first->last published_at: {r.span_rate:.0f}/s)",
    ]
    for label, rate in r.raw.items():
        lines.append(f"  raw KafkaProducer, {label + ':':<22}             {rate:8.0f} records/s  "
                     f"relay/raw = {r.rate / rate:.2f}")  # fmt: skip
    return lines


def latency_lines(title: str, results: dict[str, Latencies], baseline: str) -> list[str]:
    """p50/p95 of each way to start, and the ratio of the first to `baseline`."""
    lines = [title]
    for label, lat in results.items():
        lines.append(f"  {label + ':':<34} {lat.describe()}")
    first = next(iter(results.values()))
    base = results[baseline]
    lines.append(f"  ratio {next(iter(results))}/{baseline} (p50, p95):    "
                 f"{first.p50 / base.p50:.2f}x, {first.p95 / base.p95:.2f}x")  # fmt: skip
    return lines


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="flowloom-bench-events-"))
    tmp.chmod(0o755)  # the embedded PostgreSQL runs as its own user when we are root
    started: list[subprocess.Popen] = []
    pg = EmbeddedPostgres(tmp / "pg", find_free_port())
    broker = TansuBroker(tmp / "tansu.log")
    red, done = None, False
    try:
        pg_url = pg.start()
        redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
        if not redis_reachable(redis_url):
            red = EmbeddedRedis(tmp / "redis", find_free_port())
            redis_url = red.start()
        redis.Redis.from_url(redis_url).flushdb()
        bootstrap = broker.start()
        env = {
            **os.environ,
            "FLOWLOOM_DATABASE_URL": pg_url,
            "FLOWLOOM_REDIS_URL": redis_url,
            "FLOWLOOM_SECRET_KEY": uuid.uuid4().hex * 2,
            "FLOWLOOM_DATA_DIR": str(tmp / "data"),
            "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "FLOWLOOM_KAFKA_TOPIC_PREFIX": "bench",
        }
        os.environ.update(env)
        get_settings.cache_clear()
        upgrade_to_head(pg_url)
        concurrency = int(os.environ.get("BENCH_CONCURRENCY", "2"))
        started.append(start_worker(env, concurrency, tmp / "worker.log"))
        print(f"CPU cores: {os.cpu_count()}, load average at start {_load()}, worker processes: "
              f"{concurrency}, broker: Tansu on {bootstrap}, Redis: {redis_url.split('@')[-1]}")  # fmt: skip
        for line in relay_lines(relay_throughput(pg_url, bootstrap)):
            print(line, flush=True)

        api, base = serve_api(env, tmp / "granian.log")
        started.append(api)
        hooks = webhook_latency(pg_url, base, N_DELIVERIES)
        stop_process(api)
        title = (
            f"trigger -> first step, {N_DELIVERIES} sequential runs (start step's started_at - send time):"
        )
        for line in latency_lines(title, hooks, "POST /api/runs"):
            print(line, flush=True)

        m, log_path = N_DELIVERIES, tmp / "kafka-triggers.log"
        kafka = {
            "kafka trigger": kafka_trigger_latency(pg_url, bootstrap, env, log_path, m),
            "raw KafkaConsumer (produce->poll)": kafka_consumer_latency(bootstrap, m),
            "  same, fetch_max_wait_ms=10": kafka_consumer_latency(bootstrap, m, fetch_max_wait_ms=10),
        }
        title = (f"Kafka message -> first step, {N_DELIVERIES} messages one at a time "
                 f"(fetch_max_wait_ms {FETCH_MAX_WAIT_MS}):")  # fmt: skip
        for line in latency_lines(title, kafka, "raw KafkaConsumer (produce->poll)"):
            print(line, flush=True)
        print(f"load average at end {_load()}")
        done = True
    finally:
        logging.getLogger("engine.run_events").setLevel(logging.ERROR)  # its listener sees PostgreSQL go
        for process in reversed(started):
            stop_process(process)
        broker.stop()
        pg.stop()
        if red is not None:
            red.stop()
        if done:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""bench/events.py's parts with tiny sizes on the real broker, PostgreSQL and workers: each measures
what it says it measures and prints its lines. No timing is asserted."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text

from bench.event_latency import WARM_UP, kafka_consumer_latency, kafka_trigger_latency, webhook_latency
from bench.event_setup import serve_api, stop_process
from bench.events import latency_lines, relay_lines, relay_throughput
from models.db import get_engine
from models.tables import Run
from tests.integration.conftest import ENGINE_WORKER_ENV, TEST_SECRET_KEY
from tests.integration.kafka_broker import TansuBroker
from tests.integration.kafka_trigger_helpers import running_broker

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "clean_db")


@pytest.fixture(scope="module")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    yield from running_broker(tmp_path_factory)


def test_the_relay_section_publishes_every_event_and_sends_the_same_records_raw(pg_url, kafka_broker):
    result = relay_throughput(pg_url, kafka_broker.bootstrap, n=60)

    with get_engine(pg_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events WHERE published_at IS NULL")).scalar() == 0
    assert result.events >= 60  # workers' health events may be published in the same batches
    assert len(result.sizes) == 60 and min(result.sizes) > 100  # the relay's records, read back
    assert set(result.raw) == {"relay settings", "kafka-python defaults"}
    assert all(rate > 0 for rate in result.raw.values())
    lines = relay_lines(result)
    assert "step events of 5 runs" in lines[0]
    assert "events/s" in lines[1] and [line.count("relay/raw =") for line in lines[2:]] == [1, 1]


def test_the_kafka_section_times_each_triggered_run_and_the_raw_consumer(
    pg_url, redis_url, kafka_broker, tmp_path
):
    env = {
        **os.environ, "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": redis_url,
        "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap, "FLOWLOOM_KAFKA_TOPIC_PREFIX": "benchtest",
    }  # fmt: skip
    triggered = kafka_trigger_latency(pg_url, kafka_broker.bootstrap, env, tmp_path / "kt.log", 2)
    raw = kafka_consumer_latency(kafka_broker.bootstrap, 2, fetch_max_wait_ms=10)

    assert len(triggered.first) == 2 and len(triggered.then) == 2  # start and echo step of each run
    assert all(a < b for a, b in zip(triggered.first, triggered.then, strict=True))  # echo after start
    assert len(raw.first) == 2
    lines = latency_lines("Kafka:", {"kafka trigger": triggered, "raw": raw}, "raw")
    assert lines[0] == "Kafka:" and "p50" in lines[1] and "echo step" in lines[1]
    assert lines[-1].startswith("  ratio kafka trigger/raw")


@pytest.mark.usefixtures("auth_env")
def test_the_webhook_section_times_signed_deliveries_against_the_api_and_in_process_starts(
    pg_url, redis_url, tmp_path
):
    env = {
        **os.environ, **ENGINE_WORKER_ENV, "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": redis_url,
        "FLOWLOOM_SECRET_KEY": TEST_SECRET_KEY, "FLOWLOOM_DATA_DIR": str(tmp_path / "data"),
    }  # fmt: skip
    server, base = serve_api(env, tmp_path / "granian.log")
    try:
        results = webhook_latency(pg_url, base, 2)
    finally:
        stop_process(server)

    assert set(results) == {"webhook", "POST /api/runs", "start_run"}
    for label, latencies in results.items():
        assert len(latencies.first) == len(latencies.then) == 2, label  # start and echo step of each run
        assert all(a < b for a, b in zip(latencies.first, latencies.then, strict=True)), label
    with get_engine(pg_url).connect() as conn:
        via = conn.execute(select(Run.started_via, func.count()).group_by(Run.started_via)).all()
    assert dict(via)["trigger"] == 2 + WARM_UP  # the webhook's runs were started by its trigger
    lines = latency_lines("Webhook:", results, "POST /api/runs")
    assert lines[0] == "Webhook:" and all("p50" in line and "p95" in line for line in lines[1:4])
    assert lines[-1].startswith("  ratio") and "/POST /api/runs" in lines[-1]

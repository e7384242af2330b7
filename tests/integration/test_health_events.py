"""system.health_check events: written to the outbox by worker and web processes, valid against the
system schema, published on <prefix>.system by the relay; off without Kafka or with interval 0."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest
import redis
from jsonschema import Draft202012Validator
from sqlalchemy import select

import app.app as reflex_app
from engine import events
from engine.event_relay import EventRelay
from engine.event_schema import OutboxRow, json_schema, to_envelope
from engine.health_events import HealthSampler, health_reporting, queue_keys, start_reporter
from engine.runs import start_run
from engine.settings import get_settings
from models.db import get_engine
from models.tables import Event
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow
from tests.integration.kafka_broker import TansuBroker, read_topic
from tests.integration.kafka_trigger_helpers import (
    fresh_name,
    publisher_config,
    relay_all,
    running_broker,
    wait_until,
)

SYSTEM_SCHEMA = Draft202012Validator(json_schema("system"))
pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "clean_db")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    yield from running_broker(tmp_path_factory)


def health_rows(pg_url: str, service: str | None = None) -> list:
    with get_engine(pg_url).connect() as conn:
        rows = conn.execute(
            select(Event.__table__).where(Event.event_type == events.SYSTEM_HEALTH_CHECK).order_by(Event.id)
        ).all()
    return [r for r in rows if service is None or r.payload["data"]["service"] == service]


def envelope(row) -> dict:
    """The record the relay would publish for an outbox row, checked against the system schema."""
    family, record = to_envelope(
        OutboxRow(row.id, str(row.event_id), row.event_type, None, row.payload), None, None
    )
    assert family == "system"
    SYSTEM_SCHEMA.validate(record)
    return record


@pytest.fixture
def health_on(monkeypatch: pytest.MonkeyPatch, kafka_broker: TansuBroker) -> None:
    monkeypatch.setenv("FLOWLOOM_HEALTH_INTERVAL_S", "0.3")
    monkeypatch.setenv("FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS", kafka_broker.bootstrap)
    get_settings.cache_clear()


def test_a_sample_counts_active_runs_and_the_step_messages_waiting_in_the_celery_queue(pg_url, redis_url):
    slow = workflow(
        [node("start", "start"), node("nap", "tool.python", tool="sleep", args={"seconds": 2}), node("end", "end")],
        [("start", "nap"), ("nap", "end")],
    )  # fmt: skip
    run_id = start_run(slow, {})
    wait_for_step(run_id, "nap", "running")
    queue = fresh_name("q")
    client = redis.Redis.from_url(redis_url)
    try:
        keys = queue_keys(queue)
        client.rpush(keys[0], "a", "b", "c")  # a queue nobody consumes: priority 0 and a higher level
        client.rpush(keys[1], "d", "e")
        sampler = HealthSampler("worker", database_url=pg_url, redis_url=redis_url, queue=queue)
        data = sampler.sample()
        sampler.close()
    finally:
        client.delete(*queue_keys(queue))
        client.close()
    assert data["metrics"]["queue_size"] == 5 and data["metrics"]["active_runs"] >= 1
    assert data["service"] == "worker" and data["pid"] == os.getpid() and data["host"]
    assert 0 <= data["metrics"]["cpu_usage"] <= 100 and 0 < data["metrics"]["memory_usage"] <= 100
    assert data["metrics"]["process_memory_mb"] > 0
    assert data["status"] == ("degraded" if data["alerts"] else "healthy")
    wait_for_run(run_id)

    unreachable = HealthSampler("web", database_url=pg_url, redis_url="redis://127.0.0.1:1/0", queue=queue)
    down = unreachable.sample()
    assert down["status"] == "degraded" and "queue_size" not in down["metrics"]
    assert any("broker does not answer" in a for a in down["alerts"])


def test_a_worker_writes_health_events_from_its_main_process(worker_factory, pg_url, kafka_broker):
    worker = worker_factory(concurrency=1, env={
        "FLOWLOOM_HEALTH_INTERVAL_S": "0.5", "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
    })  # fmt: skip
    try:
        wait_until(lambda: len(health_rows(pg_url, "worker")) >= 2, "two worker health events",
                   explain=worker.log_tail)  # fmt: skip
    finally:
        worker.stop()
    rows = health_rows(pg_url, "worker")
    assert {r.payload["data"]["pid"] for r in rows} == {worker.pid} and all(r.run_id is None for r in rows)
    record = envelope(rows[0])
    assert record["event_type"] == "system.health_check" and record["service"] == "worker"
    assert {"cpu_usage", "memory_usage", "active_runs", "queue_size"} <= set(record["metrics"])


def test_the_web_app_reports_while_it_runs_and_the_relay_publishes_what_matches_the_schema(
    health_on, pg_url, kafka_broker
):
    assert health_reporting in reflex_app.app.get_lifespan_tasks()  # started with the app

    async def serve_a_while() -> None:
        async with health_reporting():
            deadline = time.monotonic() + 30
            while len(health_rows(pg_url, "web")) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)

    asyncio.run(serve_a_while())
    rows = health_rows(pg_url, "web")
    assert len(rows) >= 2 and {r.payload["data"]["pid"] for r in rows} == {os.getpid()}
    written = len(health_rows(pg_url))
    time.sleep(1.0)  # three intervals after the app stopped
    assert len(health_rows(pg_url)) == written  # the reporter stopped with it

    prefix = fresh_name("t")
    relay_all(EventRelay(pg_url, publisher_config(kafka_broker.bootstrap, prefix)))
    records = read_topic(kafka_broker.bootstrap, f"{prefix}.system", expect=written)
    assert sorted(r.value["event_id"] for r in records) == sorted(
        str(r.event_id) for r in health_rows(pg_url)
    )
    for record in records:
        SYSTEM_SCHEMA.validate(record.value)
        assert record.key == record.value["service"] == "web" and record.value["run_id"] is None
        assert record.value["status"] in ("healthy", "degraded") and record.value["host"]


def test_no_health_events_without_kafka_or_with_interval_zero(monkeypatch, kafka_broker):
    monkeypatch.setenv("FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS", "")
    get_settings.cache_clear()
    assert start_reporter("web") is None
    monkeypatch.setenv("FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS", kafka_broker.bootstrap)
    monkeypatch.setenv("FLOWLOOM_HEALTH_INTERVAL_S", "0")
    get_settings.cache_clear()
    assert start_reporter("worker") is None
    monkeypatch.setenv("FLOWLOOM_HEALTH_INTERVAL_S", "60")
    get_settings.cache_clear()
    reporter = start_reporter("worker")
    assert reporter is not None and reporter.interval_s == 60
    reporter.stop()

"""`FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS=embedded`: flowloom up's local broker takes and serves records, and
`flowloom up` points its relay at it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from jsonschema import Draft202012Validator
from kafka import KafkaProducer

from engine.event_schema import json_schema
from engine.ops.launcher import start_kafka
from engine.ops.services import find_free_port, port_in_use
from engine.settings import Settings
from tests.conftest import LaunchedFlowloom
from tests.integration.kafka_broker import read_topic


def test_the_embedded_broker_starts_on_its_port_serves_records_and_stops_with_the_launcher(tmp_path):
    port = find_free_port()
    settings = Settings(data_dir=tmp_path, kafka_bootstrap_servers="embedded", kafka_port=port)
    with ExitStack() as stack:
        bootstrap = start_kafka(settings, stack)
        assert bootstrap == f"127.0.0.1:{port}"
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        producer.send("flowloom.test", key=b"k", value=b'{"hello": "world"}').get(timeout=30)
        producer.close()
        (record,) = read_topic(bootstrap, "flowloom.test", expect=1)
        assert record.value == {"hello": "world"} and record.key == "k"
    assert not port_in_use(port)


def test_flowloom_up_with_embedded_kafka_starts_the_broker_and_its_relay_publishes_health_events(
    launch_flowloom: Callable[..., LaunchedFlowloom], service_dir: Callable[[str], Path]
):
    ports = {"port": find_free_port(), "postgres_port": find_free_port(), "redis_port": find_free_port()}
    kafka_port, prefix = find_free_port(), f"up{uuid.uuid4().hex[:8]}"
    flowloom = launch_flowloom(
        data_dir=service_dir("up-kafka"), database_url="", redis_url="", host="127.0.0.1", workers=1,
        kafka_bootstrap_servers="embedded", kafka_port=kafka_port, kafka_topic_prefix=prefix,
        health_interval_s=1, **ports,
    )  # fmt: skip
    flowloom.wait_ready()
    bootstrap = f"127.0.0.1:{kafka_port}"
    try:
        # The web and worker processes write health events to the outbox; only the relay `up` started,
        # pointed at the embedded broker, can have put them on the system topic.
        records: list = []
        services: set[str] = set()
        deadline = time.monotonic() + 120
        while not {"web", "worker"} <= services and time.monotonic() < deadline:
            records = read_topic(bootstrap, f"{prefix}.system", expect=len(records) + 1, timeout=10)
            services = {r.value["service"] for r in records}
        assert {"web", "worker"} <= services, flowloom.output()[-4000:]
        schema = Draft202012Validator(json_schema("system"))
        for record in records:
            schema.validate(record.value)
    finally:
        assert flowloom.stop() == 0, flowloom.output()[-3000:]
    assert not port_in_use(kafka_port)  # the broker stopped with the launcher

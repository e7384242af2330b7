"""`FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS=embedded`: flowloom up's local broker takes and serves records."""

from __future__ import annotations

from contextlib import ExitStack

from kafka import KafkaProducer

from engine.ops.launcher import start_kafka
from engine.ops.services import find_free_port, port_in_use
from engine.settings import Settings
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

"""Kafka triggers against a real Kafka-protocol broker (Tansu), real PostgreSQL, Redis and Celery workers:
a run per message, once, across a kill of the consumer; filters; dead letters on the topic and in the table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select

from engine import dead_letters, trigger_fire
from engine.errors import ErrorCode, FlowloomError
from engine.event_schema import json_schema
from engine.kafka_triggers import ConsumerConfig, KafkaTriggers
from models.db import get_engine
from models.tables import Run
from models.triggers import DeadLetter, KafkaOffset, TriggerDelivery
from tests.integration.engine_helpers import wait_for_run
from tests.integration.kafka_broker import TansuBroker, read_topic
from tests.integration.kafka_trigger_helpers import (
    counts,
    create_topic,
    fresh_name,
    kafka_definition,
    only_trigger,
    produce,
    publisher_config,
    running_broker,
    save_workflow,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEAD_LETTER_SCHEMA = Draft202012Validator(json_schema("dead-letter"))

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "clean_db")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    yield from running_broker(tmp_path_factory)


@pytest.fixture
def consumers(pg_url: str, kafka_broker: TansuBroker) -> Iterator[KafkaTriggers]:
    """The Kafka trigger consumers running in this process on fresh topic names, stopped after the test."""
    prefix = fresh_name("t")
    running = KafkaTriggers(
        pg_url, publisher_config(kafka_broker.bootstrap, prefix), ConsumerConfig(refresh_s=0.3)
    )
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    thread.start()
    yield running
    stop.set()
    thread.join(60)
    assert not thread.is_alive()


def _dead_rows(pg_url: str) -> list:
    with get_engine(pg_url).connect() as conn:
        return list(conn.execute(select(DeadLetter.__table__).order_by(DeadLetter.__table__.c.id)))


def test_each_message_starts_one_run_filtered_ones_none_and_bad_ones_become_dead_letters(
    consumers, pg_url, kafka_broker
):
    topic = fresh_name("orders")
    create_topic(kafka_broker.bootstrap, topic)
    wid = save_workflow(pg_url, kafka_definition(topic, filter="not message.skip"))
    trigger = only_trigger(pg_url, wid)
    sent = produce(kafka_broker.bootstrap, topic, [
        {"n": 1}, {"n": 2, "skip": True}, b"this is not JSON", {"n": "three"}, [1, 2], {"n": 4},
        b'{"n": 5, "note": "a NUL \\u0000 PostgreSQL cannot store"}',
    ], keys=["a", "b", "c", "d", "e", "f", "g"])  # fmt: skip
    wait_until(lambda: counts(pg_url, trigger.id)["offsets"] == len(sent), "all seven messages handled",
               explain=lambda: str(counts(pg_url, trigger.id)))  # fmt: skip

    assert counts(pg_url, trigger.id) == {"started": 2, "dead": 4, "offsets": 7}
    with get_engine(pg_url).connect() as conn:
        runs = list(conn.execute(select(Run.id, Run.inputs, Run.trigger_id, Run.started_via)))
        keys = dict(conn.execute(select(TriggerDelivery.delivery_key, TriggerDelivery.run_id)).all())
    assert sorted(r.inputs["n"] for r in runs) == [1, 4]  # the skipped message started nothing
    assert {str(r.trigger_id) for r in runs} == {trigger.id} and {r.started_via for r in runs} == {"trigger"}
    assert set(keys) == {f"{topic}:0:0", f"{topic}:0:5"}
    for run in runs:
        assert wait_for_run(str(run.id)).status == "succeeded"

    rows = _dead_rows(pg_url)
    assert [(r.source, r.payload["offset"], r.message_key) for r in rows] == [
        ("kafka", 2, "c"), ("kafka", 3, "d"), ("kafka", 4, "e"), ("kafka", 6, "g"),
    ]  # fmt: skip
    not_json, bad_input, a_list, nul = rows
    assert "not JSON" in not_json.error and not_json.payload["value"] == "this is not JSON"
    assert "input.n" in bad_input.error or "'three'" in bad_input.error, bad_input.error
    assert "not an object" in a_list.error and "inputs: wrapped" in a_list.error
    assert not_json.payload["topic"] == topic and not_json.payload["headers"] == {"source": "test"}
    assert "PostgreSQL refused" in nul.error and nul.payload["value_encoding"] == "text"

    records = read_topic(kafka_broker.bootstrap, consumers.publisher_config.topics.dead_letter, expect=4)
    assert len(records) == 4
    for record in records:
        DEAD_LETTER_SCHEMA.validate(record.value)
        assert record.value["source"] == "kafka" and record.key == trigger.id
    by_offset = {r.value["offset"]: r.value for r in records}
    assert by_offset[2]["dead_letter_id"] == not_json.id and by_offset[2]["error"] == not_json.error
    assert by_offset[3]["original_payload"]["value"] == '{"n": "three"}'


def test_wrapped_inputs_carry_any_json_value_and_the_filter_sees_key_and_headers(
    consumers, pg_url, kafka_broker
):
    topic = fresh_name("orders")
    create_topic(kafka_broker.bootstrap, topic)
    defn = kafka_definition(topic, inputs="wrapped", filter="key == 'vip' and headers.source == 'test'")
    defn["inputs"] = {"type": "object", "required": ["message", "key", "topic", "partition", "offset"]}
    trigger = only_trigger(pg_url, save_workflow(pg_url, defn))
    produce(kafka_broker.bootstrap, topic, [[1, 2], {"n": 1}, "a string"], keys=["vip", "other", "vip"])
    wait_until(lambda: counts(pg_url, trigger.id)["offsets"] == 3, "three messages handled")
    assert counts(pg_url, trigger.id) == {"started": 2, "dead": 0, "offsets": 3}
    with get_engine(pg_url).connect() as conn:
        inputs = sorted(conn.execute(select(Run.inputs)).scalars(), key=lambda i: i["offset"])
    assert inputs == [
        {"message": [1, 2], "key": "vip", "topic": topic, "partition": 0, "offset": 0},
        {"message": "a string", "key": "vip", "topic": topic, "partition": 0, "offset": 2},
    ]


def test_replaying_a_kafka_dead_letter_starts_its_run_once_after_the_workflow_is_fixed(
    consumers, pg_url, kafka_broker
):
    topic = fresh_name("orders")
    create_topic(kafka_broker.bootstrap, topic)
    defn = kafka_definition(topic, inputs="value")
    wid = save_workflow(pg_url, defn)
    trigger = only_trigger(pg_url, wid)
    produce(kafka_broker.bootstrap, topic, [{"n": "7"}, b"{broken"])
    wait_until(lambda: counts(pg_url, trigger.id)["dead"] == 2, "two dead letters")
    bad_input, broken = _dead_rows(pg_url)

    with pytest.raises(FlowloomError) as refused:  # the workflow still wants an integer
        dead_letters.replay(bad_input.id, actor="user:admin")
    assert refused.value.code == ErrorCode.VALIDATION_FAILED
    with pytest.raises(FlowloomError) as still_broken:
        dead_letters.replay(broken.id, actor="user:admin")
    assert still_broken.value.code == ErrorCode.REQUEST_INVALID and "not JSON" in str(still_broken.value)

    defn["inputs"]["properties"]["n"] = {"type": "string"}  # the fix: a new version of the workflow
    save_workflow(pg_url, defn, wid)
    done = dead_letters.replay(bad_input.id, actor="user:admin")
    assert done.run_id and done.dead_letter.replayed_by == "user:admin"
    assert done.dead_letter.replay_run_id == done.run_id and done.dead_letter.attempts == 2
    assert wait_for_run(done.run_id).status == "succeeded"

    with pytest.raises(FlowloomError) as twice:
        dead_letters.replay(bad_input.id, actor="user:admin")
    assert twice.value.code == ErrorCode.CONFLICT and done.run_id in str(twice.value)
    # The replay used the message's delivery key: delivering the message again starts nothing new.
    again = trigger_fire.fire(only_trigger(pg_url, wid), f"{topic}:0:0", {"n": "7"})
    assert again.duplicate and again.run_id == done.run_id
    with get_engine(pg_url).connect() as conn:
        assert conn.execute(select(Run.id).where(Run.trigger_id == trigger.id)).scalars().all() == [
            uuid.UUID(done.run_id)
        ]


def _start_consumer_process(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "engine.ops.cli", "kafka-triggers", "--refresh-s", "0.5"], cwd=REPO_ROOT,
            env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def test_a_message_starts_exactly_one_run_across_a_kill_of_the_consumer_process(
    pg_url, redis_url, kafka_broker, tmp_path
):
    topic, total = fresh_name("orders"), 150
    create_topic(kafka_broker.bootstrap, topic, partitions=3)
    wid = save_workflow(pg_url, kafka_definition(topic))
    trigger = only_trigger(pg_url, wid)
    sent = produce(
        kafka_broker.bootstrap, topic, [{"n": i} for i in range(total)], keys=[f"k{i}" for i in range(total)]
    )
    ends = {p: 1 + max(m.offset for m in sent if m.partition == p) for p in {m.partition for m in sent}}
    assert len(ends) > 1  # the messages spread over partitions

    env = {
        **os.environ, "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": redis_url,
        "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap, "FLOWLOOM_KAFKA_TOPIC_PREFIX": fresh_name("t"),
    }  # fmt: skip
    log_path = tmp_path / "kafka-triggers.log"
    first = _start_consumer_process(env, log_path)
    try:
        wait_until(lambda: counts(pg_url, trigger.id)["started"] >= 10, "the first runs",
                   explain=lambda: log_path.read_text(errors="replace")[-3000:])  # fmt: skip
        os.killpg(first.pid, signal.SIGKILL)  # mid-stream, maybe mid-transaction
        first.wait(30)
        at_kill = counts(pg_url, trigger.id)["started"]
        second = _start_consumer_process(env, log_path)
        try:
            wait_until(lambda: counts(pg_url, trigger.id)["offsets"] == total, "every message handled",
                       timeout=120, explain=lambda: f"{counts(pg_url, trigger.id)}\n{log_path.read_text()[-3000:]}")  # fmt: skip
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 0, log_path.read_text(errors="replace")[-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)

    print(f"\nconsumer killed after {at_kill} of {total} runs had started")
    assert at_kill < total, "the kill came after the last message: it proved nothing"
    assert counts(pg_url, trigger.id) == {"started": total, "dead": 0, "offsets": total}
    with get_engine(pg_url).connect() as conn:
        inputs = [
            r.n
            for r in conn.execute(
                select(Run.inputs["n"].as_integer().label("n")).where(Run.trigger_id == trigger.id)
            )
        ]
        deliveries = conn.execute(select(TriggerDelivery.delivery_key)).scalars().all()
        offsets = dict(conn.execute(select(KafkaOffset.partition, KafkaOffset.next_offset)).all())
    assert sorted(inputs) == list(range(total))  # one run per message, none twice
    assert sorted(deliveries) == sorted(f"{topic}:{m.partition}:{m.offset}" for m in sent)
    assert offsets == ends
    assert log_path.read_text().count("kafka-triggers: consuming") >= 2  # both processes consumed


def test_kafka_triggers_without_bootstrap_servers_refuses_to_start_and_names_the_setting(pg_url):
    env = {**os.environ, "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": ""}
    done = subprocess.run(
        [sys.executable, "-m", "engine.ops.cli", "kafka-triggers"], cwd=REPO_ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3 and "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS is empty" in done.stderr

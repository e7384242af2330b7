"""What a Kafka message becomes for its trigger: inputs, a skip or a rejection; and how a dead letter keeps it."""

from __future__ import annotations

import uuid

import pytest
from jsonschema import Draft202012Validator

from engine.event_schema import json_schema
from engine.kafka_messages import KafkaMessage, MessageRejected, dead_letter_record, run_inputs
from engine.trigger_config import KafkaConfig


def message(value: bytes, key: str | None = "k1", **headers: str) -> KafkaMessage:
    return KafkaMessage("orders", 2, 41, key, value, headers, timestamp_ms=1_700_000_000_000)


def test_the_value_object_is_the_inputs_and_the_filter_decides_over_message_key_and_headers():
    config = KafkaConfig(
        topic="orders", filter="message.total > 100 and headers.src == 'shop' and key == 'k1'"
    )
    assert run_inputs(config, message(b'{"total": 150}', src="shop")) == {"total": 150}
    assert run_inputs(config, message(b'{"total": 50}', src="shop")) is None
    assert run_inputs(config, message(b'{"total": 150}', src="elsewhere")) is None
    assert run_inputs(KafkaConfig(topic="orders"), message(b'{"a": 1}')) == {"a": 1}


def test_wrapped_inputs_take_any_json_value_with_where_it_came_from():
    config = KafkaConfig(topic="orders", inputs="wrapped")
    assert run_inputs(config, message(b"[1, 2]", key=None)) == {
        "message": [1, 2], "key": None, "topic": "orders", "partition": 2, "offset": 41,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("value", "config", "says"),
    [
        (b"not json", KafkaConfig(topic="t"), "not JSON"),
        (b"\xff\xfe", KafkaConfig(topic="t"), "not UTF-8"),
        (b"[1]", KafkaConfig(topic="t"), "not an object"),
        (b'{"a": 1}', KafkaConfig(topic="t", filter="message.a | no_such_filter"), "the filter failed"),
    ],
)
def test_a_message_that_cannot_start_a_run_is_rejected_naming_the_message_and_why(value, config, says):
    with pytest.raises(MessageRejected) as caught:
        run_inputs(config, message(value))
    assert says in str(caught.value) and "orders:2:41" in str(caught.value)


def test_a_dead_letter_keeps_the_message_to_handle_it_again_even_when_it_is_not_text():
    for raw in (b'{"n": 1}', b"\xff\x00binary", b"a\x00b"):
        original = message(raw, src="shop")
        payload = original.payload()
        assert payload["value_encoding"] == ("text" if raw == b'{"n": 1}' else "base64")
        assert KafkaMessage.from_payload(payload) == original
        assert original.delivery_key == "orders:2:41"
    with pytest.raises(MessageRejected):
        KafkaMessage.from_payload({"value": "x"})


def test_the_dead_letter_record_matches_the_dead_letter_topic_schema_and_excerpts_large_values():
    schema = Draft202012Validator(json_schema("dead-letter"))
    trigger_id = str(uuid.uuid4())
    small = dead_letter_record(7, trigger_id, message(b"nope"), "not JSON", limit=10_000)
    large = dead_letter_record(8, trigger_id, message(b"x" * 20_000), "not JSON", limit=10_000)
    for record in (small, large):
        schema.validate(record)
    assert small["original_payload"]["value"] == "nope" and small["source"] == "kafka"
    assert large["original_payload"] is None and len(large["original_payload_excerpt"]) == 4096
    assert large["original_payload_bytes"] > 20_000 and large["dead_letter_id"] == 8

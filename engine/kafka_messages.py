"""What one Kafka message becomes for its trigger: run inputs, a skip (the filter said no), or a rejection.

Pure apart from the sandboxed filter expression: the consumer (engine/kafka_triggers.py) and the
replay of a dead letter (engine/dead_letters.py) handle a message the same way. A message is kept
as text (its value decoded as UTF-8) so it can be stored in a dead letter and handled again later.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.errors import ErrorCode, FlowloomError, user_message
from engine.event_schema import TriggerDeadLetter
from engine.expressions import evaluate
from engine.trigger_config import KafkaConfig

_EXCERPT_CHARS = 4096


class MessageRejected(FlowloomError):
    """A message that cannot start a run (not JSON, the filter failed, not an object); says why."""

    code = ErrorCode.REQUEST_INVALID


@dataclass(frozen=True)
class KafkaMessage:
    """One consumed record: where it sits (topic, partition, offset), its key, value and headers."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    timestamp_ms: int | None = None

    @property
    def delivery_key(self) -> str:
        """What makes the message start one run however often it is read: topic:partition:offset."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def where(self) -> str:
        return f"message {self.delivery_key}"

    @classmethod
    def from_record(cls, record: Any) -> KafkaMessage:
        """From a kafka-python ConsumerRecord."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=_text(record.key) if record.key is not None else None,
            value=record.value if record.value is not None else b"",
            headers={str(k): _text(v or b"") for k, v in (record.headers or [])},
            timestamp_ms=record.timestamp if record.timestamp and record.timestamp > 0 else None,
        )

    def payload(self) -> dict[str, Any]:
        """The message as a dead letter stores it (JSONB): the value as text, or base64 when it is not
        UTF-8 or holds a NUL character (PostgreSQL cannot store those in text)."""
        try:
            text = self.value.decode("utf-8")
            encoding = "base64" if "\x00" in text else "text"
        except UnicodeDecodeError:
            encoding = "base64"
        value = base64.b64encode(self.value).decode() if encoding == "base64" else text
        return {
            "topic": self.topic, "partition": self.partition, "offset": self.offset, "key": self.key,
            "value": value, "value_encoding": encoding, "headers": self.headers,
            "timestamp_ms": self.timestamp_ms,
        }  # fmt: skip

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> KafkaMessage:
        """The message a dead letter stored (`payload()`), to handle it again."""
        try:
            raw = payload["value"]
            value = base64.b64decode(raw) if payload.get("value_encoding") == "base64" else raw.encode()
            return cls(
                topic=str(payload["topic"]), partition=int(payload["partition"]), offset=int(payload["offset"]),
                key=payload.get("key"), value=value, headers=dict(payload.get("headers") or {}),
                timestamp_ms=payload.get("timestamp_ms"),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MessageRejected(
                f"the dead letter holds no Kafka message ({type(exc).__name__}: {exc})"
            ) from exc


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def parse_value(message: KafkaMessage) -> Any:
    """The message's value as JSON; MessageRejected when it is not UTF-8 JSON."""
    try:
        return json.loads(message.value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MessageRejected(f"the value of {message.where} is not UTF-8 text: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise MessageRejected(f"the value of {message.where} is not JSON: {exc}") from exc


def run_inputs(config: KafkaConfig, message: KafkaMessage) -> dict[str, Any] | None:
    """The run inputs of `message`, None when the trigger's filter skips it; MessageRejected when the
    value is not JSON, the filter fails, or (inputs: value) the value is not a JSON object."""
    value = parse_value(message)
    if config.filter:
        variables = {"message": value, "key": message.key, "headers": message.headers}
        try:
            keep = evaluate(config.filter, variables)
        except FlowloomError as exc:
            raise MessageRejected(f"the filter failed on {message.where}: {user_message(exc)}") from exc
        if not keep:
            return None
    if config.inputs == "wrapped":
        return {
            "message": value, "key": message.key, "topic": message.topic, "partition": message.partition,
            "offset": message.offset,
        }  # fmt: skip
    if not isinstance(value, dict):
        raise MessageRejected(
            f"the value of {message.where} is a JSON {type(value).__name__}, not an object: with "
            "`inputs: value` the object is the run inputs (use `inputs: wrapped` for other values)"
        )
    return value


def dead_letter_record(
    dead_letter_id: int, trigger_id: str, message: KafkaMessage, error: str, *, limit: int
) -> dict[str, Any]:
    """The dead-letter topic's record for a rejected message (its stored payload, or an excerpt of it
    when that is larger than `limit` bytes as JSON)."""
    payload = message.payload()
    size = len(json.dumps(payload, ensure_ascii=False).encode())
    fits = size <= limit
    return TriggerDeadLetter(
        source="kafka", dead_letter_id=dead_letter_id, trigger_id=trigger_id, topic=message.topic,
        partition=message.partition, offset=message.offset, key=message.key, error=error,
        failed_at=datetime.now(UTC), original_payload=payload if fits else None,
        original_payload_excerpt=None if fits else str(payload["value"])[:_EXCERPT_CHARS],
        original_payload_bytes=size,
    ).model_dump(mode="json")  # fmt: skip

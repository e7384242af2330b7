"""What each kind of trigger is configured with: typed models checked by the validator.

A trigger is declared in the definition (`triggers: [{id, kind, config}]`); these models say
what `config` holds per kind. Pure: no I/O, no database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

TriggerKind = Literal["webhook", "schedule", "kafka", "form", "chat"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class WebhookConfig(_Config):
    """An inbound webhook at /api/hooks/<trigger id>, verified before anything is parsed."""

    # "standard": Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature);
    # "hmac": one header holding hex HMAC-SHA256 of the raw body (GitHub-style "sha256=<hex>").
    signature: Literal["standard", "hmac"] = "standard"
    secret: str = Field(min_length=1, max_length=100, description="name of the signing secret")
    hmac_header: str = Field("X-Signature-256", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9\-]+$")
    hmac_prefix: str = Field("sha256=", max_length=20)
    # With "hmac", the header that carries a delivery id for replay protection ("" = body hash).
    id_header: str = Field("", max_length=100, pattern=r"^[A-Za-z0-9\-]*$")
    tolerance_s: int = Field(300, ge=1, le=3600)
    max_body_bytes: int = Field(1_000_000, ge=1, le=8_000_000)
    rate_per_minute: int = Field(60, ge=1, le=100_000)
    # "accepted": 202 with the run id at once; "last_node": wait for the run's outputs.
    respond: Literal["accepted", "last_node"] = "accepted"
    wait_s: float = Field(10.0, gt=0, le=60)
    # "body": the JSON body is the run inputs; "wrapped": {"body", "headers", "query"}.
    inputs: Literal["body", "wrapped"] = "body"


class ScheduleConfig(_Config):
    """A cron schedule in a time zone; each tick fires once, missed ticks by policy."""

    cron: str = Field(min_length=1, max_length=100)
    timezone: str = Field("UTC", max_length=64)
    missed: Literal["skip", "catch_up"] = "skip"
    catch_up_max: int = Field(3, ge=1, le=100)
    inputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(
                f"{value!r} is not a cron expression (five fields: minute hour day month weekday)"
            )
        if len(value.split()) != 5:
            raise ValueError(
                "use five cron fields (minute hour day month weekday); seconds are not supported"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name (e.g. Europe/Berlin, UTC)") from None
        return value


class KafkaConfig(_Config):
    """A run per message of a topic, optionally filtered by an expression over `message`."""

    topic: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._\-]+$")
    # An expression over `message` (the parsed value), `key`, `headers`; false = skip the message.
    filter: str | None = Field(None, max_length=2000)
    start_from: Literal["earliest", "latest"] = "latest"
    # "value": the JSON value is the run inputs; "wrapped": {"message", "key", "topic", "partition", "offset"}.
    inputs: Literal["value", "wrapped"] = "value"


class FormConfig(_Config):
    """A page generated from the workflow's inputs schema; submitting starts a run."""

    public: bool = False  # True: anyone with the form's token link; False: signed-in operators
    title: str = Field("", max_length=200)
    description: str = Field("", max_length=2000)
    submit_message: str = Field("Submitted.", max_length=500)
    show_result: bool = True
    wait_s: float = Field(15.0, gt=0, le=60)


class ChatConfig(_Config):
    """A chat page; each message starts a run with the conversation so far."""

    message_input: str = Field("message", min_length=1, max_length=100)
    history_input: str = Field("history", max_length=100)  # "" = the workflow gets no history
    answer_output: str = Field("answer", min_length=1, max_length=100)
    max_turns: int = Field(20, ge=1, le=500)  # older turns are dropped from the context
    title: str = Field("", max_length=200)
    wait_s: float = Field(60.0, gt=0, le=300)


CONFIG_MODELS: dict[str, type[_Config]] = {
    "webhook": WebhookConfig,
    "schedule": ScheduleConfig,
    "kafka": KafkaConfig,
    "form": FormConfig,
    "chat": ChatConfig,
}


def parse_config(kind: str, config: dict[str, Any]) -> _Config:
    """The typed config of a trigger; pydantic's ValidationError names the bad field."""
    return CONFIG_MODELS[kind].model_validate(config)


def config_problems(kind: str, config: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for everything wrong with a trigger's config; empty when it is valid."""
    if kind not in CONFIG_MODELS:
        return [("kind", f"unknown trigger kind {kind!r}; known: {', '.join(CONFIG_MODELS)}")]
    try:
        parse_config(kind, config)
    except ValidationError as exc:
        return [(".".join(str(p) for p in err["loc"]) or "config", err["msg"]) for err in exc.errors()]
    return []


def next_ticks(config: ScheduleConfig, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` tick times (UTC) strictly after `after`, computed in the schedule's zone."""
    zone = ZoneInfo(config.timezone)
    it = croniter(config.cron, after.astimezone(zone))
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]

"""Tables of the event-driven side: triggers, their deliveries, Kafka offsets, idempotency keys,
dead letters and chat sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.tables import utcnow

TRIGGER_KINDS = ("webhook", "schedule", "kafka", "form", "chat")


def _ts(nullable: bool = False, default: bool = True):
    return Field(
        default_factory=utcnow if default else None,
        sa_column_kwargs={"nullable": nullable},
        sa_type=DateTime(timezone=True),
    )


class Trigger(SQLModel, table=True):
    """One way a workflow starts on its own: declared in the definition (`triggers:`), synced here
    when a version is saved; the row keeps what changes at run time (paused, next fire time)."""

    __tablename__ = "triggers"
    __table_args__ = (
        UniqueConstraint("workflow_id", "key", name="uq_trigger_workflow_key"),
        Index("ix_triggers_due", "kind", "next_fire_at"),
    )

    # Also the public handle: webhooks are POSTed to /api/hooks/<id>, forms live at /forms/<id>.
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workflow_id: uuid.UUID = Field(foreign_key="workflows.id", ondelete="CASCADE", index=True)
    key: str = Field(max_length=100)  # the trigger's id inside the definition
    kind: str = Field(max_length=20)
    config: dict = Field(default_factory=dict, sa_type=JSONB, nullable=False)
    # False once the trigger is gone from the latest version (kept so deliveries keep their link).
    active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    paused: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    # Schedules: the next tick to fire (UTC) and the last one fired.
    next_fire_at: datetime | None = _ts(nullable=True, default=False)
    last_fire_at: datetime | None = _ts(nullable=True, default=False)
    # Public forms: the SHA-256 of the form's access token (the token itself is shown once).
    token_hash: str | None = Field(default=None, max_length=64)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class TriggerDelivery(SQLModel, table=True):
    """One thing that fired a trigger (a webhook id, a schedule tick, a Kafka offset), inserted in
    the transaction that creates the run: the unique key is what makes a delivery start one run."""

    __tablename__ = "trigger_deliveries"
    __table_args__ = (UniqueConstraint("trigger_id", "delivery_key", name="uq_trigger_delivery"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    trigger_id: uuid.UUID = Field(foreign_key="triggers.id", ondelete="CASCADE", index=True)
    delivery_key: str = Field(max_length=300)
    run_id: uuid.UUID | None = Field(default=None, foreign_key="runs.id", ondelete="SET NULL")
    status: str = Field(default="started", max_length=20)  # started | filtered | failed
    error: str | None = None
    created_at: datetime = _ts()


class KafkaOffset(SQLModel, table=True):
    """The next offset a Kafka trigger consumes per partition, committed with the run it started."""

    __tablename__ = "kafka_offsets"

    trigger_id: uuid.UUID = Field(foreign_key="triggers.id", ondelete="CASCADE", primary_key=True)
    topic: str = Field(max_length=249, primary_key=True)
    partition: int = Field(primary_key=True)
    next_offset: int = Field(default=0, sa_type=BigInteger)
    updated_at: datetime = _ts()


class IdempotencyKey(SQLModel, table=True):
    """An `Idempotency-Key` a caller sent with a run start: the same key and body give the same run."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("principal", "key", name="uq_idempotency_principal_key"),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    principal: str = Field(max_length=120)  # "user:<id>" or "api_key:<id>"
    key: str = Field(max_length=255)
    body_hash: str = Field(max_length=64)
    run_id: uuid.UUID = Field(foreign_key="runs.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True), index=True)


class DeadLetter(SQLModel, table=True):
    """An event or trigger message whose handling failed after its retries, with the error and
    the original payload; an admin can replay it."""

    __tablename__ = "dead_letters"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    source: str = Field(max_length=20, index=True)  # event | kafka | webhook | schedule
    topic: str = Field(default="", max_length=249)
    message_key: str | None = Field(default=None, max_length=300)
    trigger_id: uuid.UUID | None = Field(default=None, foreign_key="triggers.id", ondelete="SET NULL")
    event_id: uuid.UUID | None = None
    error: str
    payload: dict = Field(sa_type=JSONB, nullable=False)
    attempts: int = 1
    created_at: datetime = _ts()
    replayed_at: datetime | None = _ts(nullable=True, default=False)
    replayed_by: str | None = Field(default=None, max_length=320)
    replay_run_id: uuid.UUID | None = None


class ChatSession(SQLModel, table=True):
    """The design's State Manager for chats: a session id and the context carried across runs."""

    __tablename__ = "chat_sessions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workflow_id: uuid.UUID = Field(foreign_key="workflows.id", ondelete="CASCADE", index=True)
    owner: str = Field(max_length=120, index=True)  # "user:<id>", "api_key:<id>" or "token:<trigger>"
    title: str = Field(default="", max_length=200)
    # [{"role": "user"|"assistant", "content": str, "run_id": str}], trimmed to the turn limit.
    messages: list = Field(
        default_factory=list, sa_type=JSONB, nullable=False,
        sa_column_kwargs={"server_default": text("'[]'::jsonb")},
    )  # fmt: skip
    turns: int = 0
    created_at: datetime = _ts()
    updated_at: datetime = _ts()

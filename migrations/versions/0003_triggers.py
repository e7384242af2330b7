"""Event-driven Flowloom: triggers and their deliveries, Kafka offsets, idempotency keys, dead
letters, chat sessions; runs record their trigger and chat session; the outbox's unpublished tail
gets a partial index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401 - autogenerate renders SQLModel columns as sqlmodel.sql.sqltypes.*
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STR = sqlmodel.sql.sqltypes.AutoString


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION flowloom_notify_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('flowloom_events', NEW.run_id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("key", _STR(length=100), nullable=False),
        sa.Column("kind", _STR(length=20), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        _ts("next_fire_at", True),
        _ts("last_fire_at", True),
        sa.Column("token_hash", _STR(length=64), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflows.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workflow_id", "key", name="uq_trigger_workflow_key"),
    )
    op.create_index("ix_triggers_due", "triggers", ["kind", "next_fire_at"], unique=False)
    op.create_index(op.f("ix_triggers_workflow_id"), "triggers", ["workflow_id"], unique=False)

    op.add_column("runs", sa.Column("trigger_id", sa.Uuid(), nullable=True))
    op.add_column("runs", sa.Column("session_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(None, "runs", "triggers", ["trigger_id"], ["id"], ondelete="SET NULL")
    op.create_index(op.f("ix_runs_trigger_id"), "runs", ["trigger_id"], unique=False)
    op.create_index(op.f("ix_runs_session_id"), "runs", ["session_id"], unique=False)

    op.create_table(
        "trigger_deliveries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("trigger_id", sa.Uuid(), nullable=False),
        sa.Column("delivery_key", _STR(length=300), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("status", _STR(length=20), nullable=False),
        sa.Column("error", _STR(), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["trigger_id"], ["triggers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trigger_id", "delivery_key", name="uq_trigger_delivery"),
    )
    op.create_index(
        op.f("ix_trigger_deliveries_trigger_id"), "trigger_deliveries", ["trigger_id"], unique=False
    )

    op.create_table(
        "kafka_offsets",
        sa.Column("trigger_id", sa.Uuid(), nullable=False),
        sa.Column("topic", _STR(length=249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["trigger_id"], ["triggers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trigger_id", "topic", "partition"),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("principal", _STR(length=120), nullable=False),
        sa.Column("key", _STR(length=255), nullable=False),
        sa.Column("body_hash", _STR(length=64), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("principal", "key", name="uq_idempotency_principal_key"),
    )
    op.create_index(op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], unique=False)
    op.create_index("ix_runs_created_at_id", "runs", ["created_at", "id"], unique=False)

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", _STR(length=20), nullable=False),
        sa.Column("topic", _STR(length=249), nullable=False),
        sa.Column("message_key", _STR(length=300), nullable=True),
        sa.Column("trigger_id", sa.Uuid(), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("error", _STR(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("replayed_at", True),
        sa.Column("replayed_by", _STR(length=320), nullable=True),
        sa.Column("replay_run_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(["trigger_id"], ["triggers.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_dead_letters_source"), "dead_letters", ["source"], unique=False)

    op.create_table(
        "chat_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("owner", _STR(length=120), nullable=False),
        sa.Column("title", _STR(length=200), nullable=False),
        sa.Column(
            "messages",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),  # fmt: skip
        sa.Column("turns", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflows.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_chat_sessions_owner"), "chat_sessions", ["owner"], unique=False)
    op.create_index(op.f("ix_chat_sessions_workflow_id"), "chat_sessions", ["workflow_id"], unique=False)

    # Wake the processes that follow a run (SSE streams, webhooks waiting for an answer) without
    # polling; engine.run_events listens. NOTIFY folds repeats in a transaction and fires at commit.
    op.execute(_NOTIFY_FUNCTION)
    op.execute(
        "CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH ROW "
        "WHEN (NEW.run_id IS NOT NULL) EXECUTE FUNCTION flowloom_notify_event()"
    )
    op.create_index(
        "ix_events_unpublished", "events", ["id"], unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )  # fmt: skip


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS events_notify ON events")
    op.execute("DROP FUNCTION IF EXISTS flowloom_notify_event()")
    op.drop_index(
        "ix_events_unpublished", table_name="events", postgresql_where=sa.text("published_at IS NULL")
    )
    op.drop_table("chat_sessions")
    op.drop_table("dead_letters")
    op.drop_index("ix_runs_created_at_id", table_name="runs")
    op.drop_table("idempotency_keys")
    op.drop_table("kafka_offsets")
    op.drop_table("trigger_deliveries")
    op.drop_index(op.f("ix_runs_session_id"), table_name="runs")
    op.drop_index(op.f("ix_runs_trigger_id"), table_name="runs")
    op.drop_constraint("runs_trigger_id_fkey", "runs", type_="foreignkey")
    op.drop_column("runs", "session_id")
    op.drop_column("runs", "trigger_id")
    op.drop_table("triggers")

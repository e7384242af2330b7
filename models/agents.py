"""Saved agents (the design's Agent Manager) and the conversation sessions that outlive a run (State Manager)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.tables import utcnow
from models.workspace_column import workspace_column


def _ts(nullable: bool = False) -> Any:
    return Field(
        default_factory=utcnow if not nullable else None,
        sa_column_kwargs={"nullable": nullable},
        sa_type=DateTime(timezone=True),
    )


def _jsonb(default: Any, server_default: str) -> Any:
    return Field(
        default_factory=lambda: type(default)(),
        sa_type=JSONB,
        nullable=False,
        sa_column_kwargs={"server_default": text(server_default)},
    )


class SavedAgent(SQLModel, table=True):
    """An agent people manage by name: its config, guardrails, capabilities and lifecycle state."""

    __tablename__ = "agents"

    id: str = Field(primary_key=True, max_length=40)  # AGENT-YYYYMMDD-HHMMSS-NNNN-XXXX
    workspace_id: uuid.UUID = workspace_column()
    name: str = Field(max_length=200, index=True)
    description: str = Field(default="", max_length=2000)
    # The agent node's fields that make the agent: provider, model, system prompt, tools, memory, ...
    config: dict = _jsonb({}, "'{}'::jsonb")
    guardrails: dict = _jsonb({}, "'{}'::jsonb")  # enforced by the guardrails engine, opaque here
    capabilities: list = _jsonb([], "'[]'::jsonb")  # declared; those its config implies are added
    # State Manager: {"max_turns": int, "max_chars": int, "policy": "truncate" | "summarise"}; {} = none.
    memory: dict = _jsonb({}, "'{}'::jsonb")
    pricing: dict = _jsonb({}, "'{}'::jsonb")  # {"input_per_1m": USD, "output_per_1m": USD}
    state: str = Field(default="CREATED", max_length=20, index=True)
    state_reason: str = Field(default="", max_length=4000)  # why it failed a check or was terminated
    checks: list = _jsonb([], "'[]'::jsonb")  # the last validation: [{check, ok, field, message}]
    active_steps: list = _jsonb([], "'[]'::jsonb")  # step row ids executing it now
    owner_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_by: str = Field(default="", max_length=200)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    state_changed_at: datetime = _ts()


class AgentSession(SQLModel, table=True):
    """One conversation of a saved agent that persists across runs, found by (agent, key)."""

    __tablename__ = "agent_sessions"
    __table_args__ = (UniqueConstraint("agent_id", "key", name="uq_agent_sessions_agent_key"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    agent_id: str = Field(foreign_key="agents.id", ondelete="CASCADE", index=True, max_length=40)
    key: str = Field(max_length=200)
    # [{"role": "user" | "assistant", "content": str, "run_id": str, "turn": int}], within the limits.
    messages: list = _jsonb([], "'[]'::jsonb")
    summary: str = Field(default="")  # what the summarise policy kept of the turns it dropped
    turns: int = 0  # turns ever taken (the kept ones are the last of them)
    dropped_turns: int = 0
    created_at: datetime = _ts()
    updated_at: datetime = _ts()

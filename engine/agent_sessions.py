"""The State Manager for saved agents: conversations that persist across runs, within limits.

A saved agent with a `memory` policy keeps one conversation per session key (an agent node's
`session` field, e.g. `{{ input.customer_id }}`), in `agent_sessions`. Each answered turn (a
user message and the agent's answer) joins it; when the session passes `max_turns` turns or
`max_chars` characters, the oldest turns leave it (the last turn always stays). With the
`truncate` policy they are gone; with `summarise` the agent node asks the model for a summary
of the old summary and the dropped turns, and later runs get that summary as a system note.
Chat triggers keep their own sessions (engine/chat_sessions.py) with the same turn rule.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from engine.agent_store import db
from models.agents import AgentSession
from models.core_tables import table_of

_sessions = table_of(AgentSession)
KEY_CHARS = 200


class MemoryPolicy(BaseModel):
    """How much of a session a saved agent keeps, and what happens to what it drops."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(20, ge=1, le=500, description="Turns (a message and its answer) kept")
    max_chars: int = Field(20_000, ge=200, le=1_000_000, description="Characters of kept messages, at most")
    policy: Literal["truncate", "summarise"] = Field(
        "truncate", description="truncate: forget the oldest turns; summarise: keep a model-written summary"
    )
    summary_chars: int = Field(2_000, ge=100, le=20_000, description="Longest summary kept")


def policy_of(memory: dict[str, Any] | None) -> MemoryPolicy | None:
    """The memory policy of a saved agent's `memory` column; None when it keeps no sessions."""
    return MemoryPolicy.model_validate(memory) if memory else None


@dataclass
class SessionContext:
    """What a run of the agent is given from a session: earlier turns, the summary of older ones."""

    key: str
    history: list[dict[str, str]] = field(default_factory=list)
    summary: str = ""
    turns: int = 0  # turns ever taken
    dropped_turns: int = 0
    chars: int = 0


def _turns(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The messages grouped into turns (each starts at a user message)."""
    turns: list[list[dict[str, Any]]] = []
    for message in messages:
        if message.get("role") == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    return turns


def _chars(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content", ""))) for m in messages)


def fit(
    messages: list[dict[str, Any]], policy: MemoryPolicy
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, dropped): the newest turns within the policy's limits, and the older ones; the last turn stays."""
    turns = _turns(messages)
    dropped: list[dict[str, Any]] = []
    while len(turns) > 1 and (
        len(turns) > policy.max_turns or _chars([m for t in turns for m in t]) > policy.max_chars
    ):
        dropped += turns.pop(0)
    return [m for t in turns for m in t], dropped


def _context(row: Any) -> SessionContext:
    messages = list(row.messages or [])
    history = [{"role": str(m["role"]), "content": str(m.get("content", ""))} for m in messages]
    return SessionContext(row.key, history, row.summary or "", row.turns, row.dropped_turns, _chars(messages))


def load(agent_id: str, key: str) -> SessionContext:
    """The session `key` of agent `agent_id` (empty when it has none yet)."""
    with db().connect() as conn:
        row = conn.execute(
            select(_sessions).where(_sessions.c.agent_id == agent_id, _sessions.c.key == key[:KEY_CHARS])
        ).first()
    return _context(row) if row is not None else SessionContext(key[:KEY_CHARS])


def record_turn(
    agent_id: str, key: str, message: str, answer: str, *, run_id: str, policy: MemoryPolicy
) -> tuple[SessionContext, list[dict[str, Any]]]:
    """Add one answered turn to the session (made when missing) and apply the limits; (session, dropped messages)."""
    key, now = key[:KEY_CHARS], datetime.now(UTC)
    with db().begin() as conn:
        conn.execute(
            insert(_sessions)
            .values(
                id=uuid.uuid4(),
                agent_id=agent_id,
                key=key,
                messages=[],
                summary="",
                turns=0,
                dropped_turns=0,
                created_at=now,
                updated_at=now,
            )  # fmt: skip
            .on_conflict_do_nothing(constraint="uq_agent_sessions_agent_key")
        )
        where = (_sessions.c.agent_id == agent_id) & (_sessions.c.key == key)
        row = conn.execute(select(_sessions).where(where).with_for_update()).one()
        turn = row.turns + 1
        added = [
            {"role": "user", "content": message, "run_id": run_id, "turn": turn},
            {"role": "assistant", "content": answer, "run_id": run_id, "turn": turn},
        ]
        kept, dropped = fit([*list(row.messages or []), *added], policy)
        dropped_turns = row.dropped_turns + len(_turns(dropped))
        summary = row.summary if policy.policy == "summarise" else ""
        conn.execute(
            update(_sessions)
            .where(where)
            .values(messages=kept, turns=turn, dropped_turns=dropped_turns, summary=summary, updated_at=now)
        )
        row = conn.execute(select(_sessions).where(where)).one()
    return _context(row), dropped


def set_summary(agent_id: str, key: str, summary: str, policy: MemoryPolicy) -> None:
    """Keep `summary` (cut to the policy's length) as what the session remembers of its dropped turns."""
    with db().begin() as conn:
        conn.execute(
            update(_sessions)
            .where(_sessions.c.agent_id == agent_id, _sessions.c.key == key[:KEY_CHARS])
            .values(summary=summary[: policy.summary_chars], updated_at=datetime.now(UTC))
        )


def sizes(agent_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per agent: sessions, kept messages and their characters (the Agents page's memory size)."""
    if not agent_ids:
        return {}
    out: dict[str, dict[str, int]] = {a: {"sessions": 0, "messages": 0, "chars": 0} for a in agent_ids}
    with db().connect() as conn:
        rows = conn.execute(
            select(_sessions.c.agent_id, _sessions.c.messages, _sessions.c.summary).where(
                _sessions.c.agent_id.in_(agent_ids)
            )
        )
        for r in rows:
            size = out[r.agent_id]
            size["sessions"] += 1
            size["messages"] += len(r.messages or [])
            size["chars"] += _chars(list(r.messages or [])) + len(r.summary or "")
    return out

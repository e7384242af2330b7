"""Saved agents as an agent node sees them: look one up by id or capability, execute it, keep its sessions.

An agent node either defines its agent inline or names a saved one (`agent_id`), or asks for
any agent with a capability (`capability`); the manager picks one that can take work (READY
first). `begin_agent_execution` / `end_agent_execution` move the saved agent along its
lifecycle (READY -> EXECUTING -> COMPLETED | FAILED -> READY) with an `agent.transitioned`
event each; the session functions are the State Manager (engine/agent_sessions.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine import agent_sessions, agent_store
from engine.agent_lifecycle import AgentState
from engine.agent_sessions import MemoryPolicy, SessionContext
from engine.errors import ErrorCode, FlowloomError, StepError


@dataclass(frozen=True)
class SavedAgentView:
    """What an agent node may read of a saved agent."""

    id: str
    name: str
    state: str
    config: dict[str, Any]
    guardrails: dict[str, Any]
    capabilities: list[str]
    memory: MemoryPolicy | None
    pricing: dict[str, Any]

    def cost(self, input_tokens: int, output_tokens: int) -> float | None:
        """USD for these tokens at the agent's prices, or None when it has none."""
        per_in, per_out = self.pricing.get("input_per_1m"), self.pricing.get("output_per_1m")
        if per_in is None and per_out is None:
            return None
        return round((input_tokens * float(per_in or 0) + output_tokens * float(per_out or 0)) / 1e6, 8)


def _view(record: agent_store.AgentRecord) -> SavedAgentView:
    return SavedAgentView(
        record.id, record.name, record.state.value, record.config, record.guardrails, record.capabilities,
        agent_sessions.policy_of(record.memory), record.pricing,
    )  # fmt: skip


def _read(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except FlowloomError:
        raise
    except Exception as exc:  # no database configured or reachable: say so, never guess
        raise StepError(f"cannot read the saved agents: {exc}", code=ErrorCode.DATABASE_UNAVAILABLE) from exc


def saved_agent(agent_id: str, *, workspace_id: str = "") -> SavedAgentView | None:
    """The saved agent `agent_id` (in any state) of the run's workspace `workspace_id` ("": the
    default one), or None."""
    record = _read(lambda a: agent_store.get(a, workspace_id=workspace_id), agent_id)
    return None if record is None else _view(record)


def agent_for_capability(capability: str, *, workspace_id: str = "") -> SavedAgentView | None:
    """A saved agent of the run's workspace `workspace_id` ("": the default one) with `capability`
    that can take work now (READY first, then the least busy); None if none."""
    found = _read(lambda c: agent_store.with_capability(c, workspace_id=workspace_id), capability)
    return _view(found[0]) if found else None


def begin_agent_execution(agent_id: str, *, run_id: str, step_id: str, node_id: str) -> SavedAgentView:
    """The saved agent, now executing for this step; StepError (agent_not_ready / agent_not_found) when it cannot."""
    try:
        return _view(agent_store.begin_execution(agent_id, run_id=run_id, step_id=step_id, node_id=node_id))
    except FlowloomError as exc:
        raise StepError(str(exc), retryable=False, code=exc.code, field="agent_id") from None


def end_agent_execution(agent_id: str, *, run_id: str, step_id: str, node_id: str, error: str = "") -> None:
    """This step stopped executing the saved agent (with `error` when it failed)."""
    agent_store.end_execution(agent_id, run_id=run_id, step_id=step_id, node_id=node_id, error=error)


def agent_session(agent_id: str, key: str) -> SessionContext:
    """Session `key` of a saved agent: the kept turns as messages and the summary of older ones."""
    return agent_sessions.load(agent_id, key)


def record_agent_turn(
    agent: SavedAgentView, key: str, message: str, answer: str, *, run_id: str
) -> tuple[SessionContext, list[dict[str, Any]]]:
    """Add an answered turn to the session within the agent's limits; (session, dropped messages)."""
    if agent.memory is None:
        raise StepError(f"agent {agent.name} keeps no sessions (its memory policy is empty)", retryable=False)
    return agent_sessions.record_turn(agent.id, key, message, answer, run_id=run_id, policy=agent.memory)


def set_agent_session_summary(agent: SavedAgentView, key: str, summary: str) -> None:
    """Keep `summary` as what the session remembers of its dropped turns (the summarise policy)."""
    if agent.memory is not None:
        agent_sessions.set_summary(agent.id, key, summary, agent.memory)


__all__ = [
    "AgentState",
    "MemoryPolicy",
    "SavedAgentView",
    "SessionContext",
    "agent_for_capability",
    "agent_session",
    "begin_agent_execution",
    "end_agent_execution",
    "record_agent_turn",
    "saved_agent",
    "set_agent_session_summary",
]

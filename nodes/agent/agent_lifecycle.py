"""One step's agent going through the engine's lifecycle (engine/agent_lifecycle.py, through the contract).

An inline agent starts CREATED each step and goes INITIALIZING -> VALIDATING -> VALIDATED ->
READY -> EXECUTING -> COMPLETED | FAILED -> READY; a saved agent (Agents page) was validated by
the manager and starts READY with its own id. The states it went through are on the `agent`
output; the saved agent's transitions are also events (agent.transitioned).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.contract import AGENT_ID_PATTERN as ID_PATTERN
from engine.contract import (
    AgentState,
    Capability,
    IllegalTransition,
    StepError,
    check_transition,
    is_agent_id,
    new_agent_id,
)

__all__ = ["ID_PATTERN", "Agent", "AgentState", "Capability", "is_agent_id", "new_agent_id"]


@dataclass
class Agent:
    """One agent's identity, capabilities and the states it went through (kept on the step)."""

    id: str
    capabilities: list[str]
    state: AgentState = AgentState.CREATED
    history: list[dict[str, Any]] = field(default_factory=list)
    saved: bool = False  # a saved agent (Agents page), not defined in the node

    @classmethod
    def create(cls, capabilities: list[Capability] | list[str], agent_id: str | None = None) -> Agent:
        """A CREATED agent; `agent_id` continues an agent that paused (after an approval, say)."""
        agent = cls(
            agent_id if agent_id and is_agent_id(agent_id) else new_agent_id(), [str(c) for c in capabilities]
        )
        agent.history.append({"state": agent.state.value, "at": datetime.now(UTC).isoformat()})
        return agent

    @classmethod
    def saved_ready(cls, agent_id: str, capabilities: list[str]) -> Agent:
        """A saved agent the manager validated: READY with its own id."""
        agent = cls(agent_id, list(capabilities), AgentState.READY, saved=True)
        agent.history.append({"state": agent.state.value, "at": datetime.now(UTC).isoformat()})
        return agent

    def to(self, state: AgentState, **detail: Any) -> None:
        """Move to `state`; a transition the lifecycle does not allow is a bug, reported as such."""
        try:
            check_transition(self.id, self.state, state)
        except IllegalTransition as exc:
            raise StepError(str(exc), retryable=False) from None
        self.state = state
        self.history.append({"state": state.value, "at": datetime.now(UTC).isoformat(), **detail})

    def finish(self, state: AgentState, **detail: Any) -> None:
        """COMPLETED or FAILED, then READY for the next task."""
        self.to(state, **detail)
        self.to(AgentState.READY)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state.value,
            "saved": self.saved,
            "capabilities": [str(c) for c in self.capabilities],
            "lifecycle": [h["state"] for h in self.history],
        }

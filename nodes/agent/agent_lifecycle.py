"""The agent lifecycle of the design: states, allowed transitions, ids and capabilities.

CREATED -> INITIALIZING -> VALIDATING -> VALIDATED -> READY -> EXECUTING -> COMPLETED | FAILED
-> TERMINATED, and from TERMINATED back to READY for the next task. Ids read
AGENT-YYYYMMDD-HHMMSS-NNNN-XXXX: creation time (UTC), a per-process sequence number and four
random hex digits.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from engine.contract import StepError

ID_PATTERN = r"^AGENT-\d{8}-\d{6}-\d{4}-[0-9A-F]{4}$"
_ID = re.compile(ID_PATTERN)


class AgentState(StrEnum):
    CREATED = "CREATED"
    INITIALIZING = "INITIALIZING"
    VALIDATING = "VALIDATING"
    VALIDATED = "VALIDATED"
    READY = "READY"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TERMINATED = "TERMINATED"


class Capability(StrEnum):
    TEXT_PROCESSING = "TEXT_PROCESSING"  # every agent: reads and writes text
    DOCUMENT_ANALYSIS = "DOCUMENT_ANALYSIS"  # long-term memory or structured output
    API_INTEGRATION = "API_INTEGRATION"  # calls tools
    WORKFLOW_CONTROL = "WORKFLOW_CONTROL"  # can pause the workflow for a human's approval


S = AgentState
TRANSITIONS: dict[AgentState, frozenset[AgentState]] = {
    S.CREATED: frozenset({S.INITIALIZING}),
    S.INITIALIZING: frozenset({S.VALIDATING, S.FAILED}),
    S.VALIDATING: frozenset({S.VALIDATED, S.FAILED}),
    S.VALIDATED: frozenset({S.READY}),
    S.READY: frozenset({S.EXECUTING, S.TERMINATED}),
    S.EXECUTING: frozenset({S.COMPLETED, S.FAILED}),
    S.COMPLETED: frozenset({S.TERMINATED}),
    S.FAILED: frozenset({S.TERMINATED}),
    S.TERMINATED: frozenset({S.READY}),
}

_sequence = itertools.count(1)
_sequence_lock = threading.Lock()


def new_agent_id(now: datetime | None = None) -> str:
    """AGENT-YYYYMMDD-HHMMSS-NNNN-XXXX for an agent created now."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    with _sequence_lock:
        number = next(_sequence) % 10_000
    return f"AGENT-{now:%Y%m%d-%H%M%S}-{number:04d}-{secrets.token_hex(2).upper()}"


def is_agent_id(value: str) -> bool:
    return bool(_ID.match(value or ""))


@dataclass
class Agent:
    """One agent's identity, capabilities and the states it went through (kept on the step)."""

    id: str
    capabilities: list[Capability]
    state: AgentState = AgentState.CREATED
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def create(cls, capabilities: list[Capability], agent_id: str | None = None) -> Agent:
        """A CREATED agent; `agent_id` continues an agent that paused (after an approval, say)."""
        agent = cls(agent_id if agent_id and is_agent_id(agent_id) else new_agent_id(), capabilities)
        agent.history.append({"state": agent.state.value, "at": datetime.now(UTC).isoformat()})
        return agent

    def to(self, state: AgentState, **detail: Any) -> None:
        """Move to `state`; a transition the lifecycle does not allow is a bug, reported as such."""
        if state not in TRANSITIONS[self.state]:
            raise StepError(
                f"agent {self.id}: lifecycle cannot go from {self.state.value} to {state.value}",
                retryable=False,
            )
        self.state = state
        self.history.append({"state": state.value, "at": datetime.now(UTC).isoformat(), **detail})

    def finish(self, state: AgentState, **detail: Any) -> None:
        """COMPLETED or FAILED, then TERMINATED and back to READY for the next task."""
        self.to(state, **detail)
        self.to(AgentState.TERMINATED)
        self.to(AgentState.READY)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state.value,
            "capabilities": [c.value for c in self.capabilities],
            "lifecycle": [h["state"] for h in self.history],
        }

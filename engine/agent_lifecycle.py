"""The design's agent lifecycle: states, the transitions between them, agent ids and capabilities.

CREATED -> INITIALIZING -> VALIDATING -> VALIDATED -> READY -> EXECUTING -> COMPLETED | FAILED
-> READY, and from any state to TERMINATED (docs/agents-and-openvino.md). A transition the table
does not hold is an error (`IllegalTransition`). Ids read AGENT-YYYYMMDD-HHMMSS-NNNN-XXXX:
creation time (UTC), a per-process sequence number and four random hex digits.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
from datetime import UTC, datetime
from enum import StrEnum

from engine.errors import ErrorCode, FlowloomError

ID_PATTERN = r"^AGENT-\d{8}-\d{6}-\d{4}-[0-9A-F]{4}$"
_ID = re.compile(ID_PATTERN)
# A capability an agent declares: the design's four, or a name of the owner's (SUMMARISE, ...).
CAPABILITY_PATTERN = r"^[A-Z][A-Z0-9_]{1,63}$"
_CAPABILITY = re.compile(CAPABILITY_PATTERN)


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
    """The design's capabilities; agents may declare others (CAPABILITY_PATTERN)."""

    TEXT_PROCESSING = "TEXT_PROCESSING"  # every agent: reads and writes text
    DOCUMENT_ANALYSIS = "DOCUMENT_ANALYSIS"  # long-term memory or structured output
    API_INTEGRATION = "API_INTEGRATION"  # calls tools
    WORKFLOW_CONTROL = "WORKFLOW_CONTROL"  # can pause the workflow for a human's approval


CAPABILITY_DESCRIPTIONS: dict[str, str] = {
    Capability.TEXT_PROCESSING: "reads and writes text (every agent)",
    Capability.DOCUMENT_ANALYSIS: "answers from a memory collection or in a JSON schema",
    Capability.API_INTEGRATION: "calls tools",
    Capability.WORKFLOW_CONTROL: "pauses the workflow for a person's approval of a tool call",
}

S = AgentState
# The design's table ("Agent State Transitions"); TERMINATED is reachable from every state but itself.
TRANSITIONS: dict[AgentState, frozenset[AgentState]] = {
    S.CREATED: frozenset({S.INITIALIZING}),
    S.INITIALIZING: frozenset({S.VALIDATING, S.FAILED}),
    S.VALIDATING: frozenset({S.VALIDATED, S.FAILED}),
    S.VALIDATED: frozenset({S.READY}),
    # READY -> INITIALIZING: its config was changed (or it is validated again); Flowloom's addition.
    S.READY: frozenset({S.EXECUTING, S.INITIALIZING}),
    S.EXECUTING: frozenset({S.COMPLETED, S.FAILED}),
    S.COMPLETED: frozenset({S.READY}),
    # FAILED -> READY once the error is resolved; FAILED -> INITIALIZING: validate again after a fix.
    S.FAILED: frozenset({S.READY, S.INITIALIZING}),
    S.TERMINATED: frozenset(),
}
TRANSITIONS = {
    state: allowed | ({S.TERMINATED} if state is not S.TERMINATED else frozenset())
    for state, allowed in TRANSITIONS.items()
}
# What each transition checks (the design's "Validation" column), as events and the page say it.
CHECKS: dict[tuple[AgentState, AgentState], str] = {
    (S.CREATED, S.INITIALIZING): "config validation",
    (S.FAILED, S.INITIALIZING): "config validation",
    (S.READY, S.INITIALIZING): "config validation",
    (S.INITIALIZING, S.VALIDATING): "resource check",
    (S.VALIDATING, S.VALIDATED): "dependencies ready",
    (S.VALIDATED, S.READY): "agent available",
    (S.READY, S.EXECUTING): "input validation",
    (S.EXECUTING, S.COMPLETED): "results validated",
    (S.EXECUTING, S.FAILED): "error logged",
    (S.COMPLETED, S.READY): "state reset",
    (S.FAILED, S.READY): "recovery complete",
}
# States an agent can take work in: READY (idle) or EXECUTING (already serving a run).
AVAILABLE = frozenset({S.READY, S.EXECUTING})


class IllegalTransition(FlowloomError):
    """A lifecycle transition the design's table does not allow."""

    code = ErrorCode.AGENT_TRANSITION_INVALID


def check_transition(agent_id: str, current: AgentState | str, target: AgentState | str) -> AgentState:
    """`target` as a state, when the lifecycle allows going there from `current`; IllegalTransition if not."""
    source, wanted = AgentState(current), AgentState(target)
    if wanted not in TRANSITIONS[source]:
        allowed = ", ".join(sorted(TRANSITIONS[source])) or "nothing (it is terminated)"
        raise IllegalTransition(
            f"agent {agent_id}: the lifecycle cannot go from {source.value} to {wanted.value}; "
            f"from {source.value} it may go to {allowed}",
            field="state",
        )
    return wanted


def check_name(name: str) -> str:
    """`name` when it is a capability name (upper-case letters, digits, '_'); ValueError if not."""
    if not _CAPABILITY.match(name or ""):
        raise ValueError(f"{name!r} is not a capability name (upper-case letters, digits and _)")
    return name


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

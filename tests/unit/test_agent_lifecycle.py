"""The agent lifecycle table, ids and capability names, and the State Manager's limits (no services)."""

from __future__ import annotations

import re

import pytest

from engine import agent_sessions
from engine.agent_lifecycle import (
    ID_PATTERN,
    AgentState,
    IllegalTransition,
    check_name,
    check_transition,
    is_agent_id,
    new_agent_id,
)
from engine.agent_sessions import MemoryPolicy


def test_ids_follow_the_designs_format_and_differ():
    first, second = new_agent_id(), new_agent_id()
    assert re.match(ID_PATTERN, first) and is_agent_id(first) and first != second
    assert not is_agent_id("AGENT-1") and not is_agent_id("agent-20250101-000000-0001-abcd")


def test_capability_names_are_upper_case_words():
    assert check_name("SUMMARISE") == "SUMMARISE"
    for bad in ("summarise", "A", "1ABC", "WITH SPACE", ""):
        with pytest.raises(ValueError, match="not a capability name"):
            check_name(bad)


def test_the_lifecycle_table_is_the_designs_and_refuses_anything_else():
    check_transition("AGENT-X", AgentState.READY, AgentState.EXECUTING)
    check_transition("AGENT-X", AgentState.COMPLETED, AgentState.READY)
    check_transition("AGENT-X", AgentState.FAILED, AgentState.READY)
    for state in AgentState:
        if state is not AgentState.TERMINATED:
            check_transition("AGENT-X", state, AgentState.TERMINATED)
    for source, target in [("READY", "COMPLETED"), ("CREATED", "READY"), ("EXECUTING", "READY"),
                           ("VALIDATED", "EXECUTING"), ("TERMINATED", "READY"), ("CREATED", "FAILED")]:  # fmt: skip
        with pytest.raises(IllegalTransition, match=f"cannot go from {source} to {target}"):
            check_transition("AGENT-X", source, target)


def test_fit_keeps_the_newest_turns_within_turn_and_character_limits():
    turns = []
    for i in range(4):
        turns += [{"role": "user", "content": f"q{i}" * 50}, {"role": "assistant", "content": "a" * 100}]
    kept, dropped = agent_sessions.fit(turns, MemoryPolicy(max_turns=3, max_chars=100_000))
    assert len(kept) == 6 and dropped == turns[:2]
    kept, dropped = agent_sessions.fit(turns, MemoryPolicy(max_turns=10, max_chars=450))
    assert kept == turns[-4:] and len(dropped) == 4
    kept, _ = agent_sessions.fit(turns, MemoryPolicy(max_turns=10, max_chars=200))
    assert kept == turns[-2:]  # the last turn stays, even over the limit

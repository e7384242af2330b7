"""The DAG scheduler's decision with a state lookup (what the executor gives it: the run's step rows,
read as asked) decides exactly as with every node's state at hand, and reads only what it looks at:
a wide join's sources are counted, not read, until all of them have finished."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest

from engine.parse import parse_dict
from engine.scheduler import WIDE_JOIN, Graph, NodeState, dag_decide


class RecordingStates(dict[str, NodeState]):
    """A StateLookup over a fixed set of recorded states, noting what the decision asked for."""

    def __init__(self, recorded: dict[str, NodeState]) -> None:
        super().__init__()
        self.recorded = recorded
        self.read: list[str] = []
        self.counted: list[list[str]] = []

    def prefetch(self, node_ids: Iterable[str]) -> None:
        for n in node_ids:
            if n not in self and n in self.recorded:
                self.read.append(n)
                self[n] = self.recorded[n]

    def count_resolved(self, node_ids: list[str]) -> int:
        self.counted.append(list(node_ids))
        return sum(1 for n in node_ids if (self.get(n) or self.recorded.get(n, NodeState("queued"))).status
                   in ("succeeded", "failed", "skipped", "cancelled"))  # fmt: skip


def _fan(width: int) -> Graph:
    nodes = [{"id": "start", "type": "start"}, {"id": "join", "type": "merge"}, {"id": "end", "type": "end"}]
    edges = [{"id": "out", "source": "join", "target": "end"}]
    for i in range(width):
        nodes.append({"id": f"b{i}", "type": "tool.python", "config": {"tool": "echo"}})
        edges += [{"id": f"o{i}", "source": "start", "target": f"b{i}"},
                  {"id": f"i{i}", "source": f"b{i}", "target": "join"}]  # fmt: skip
    return Graph(parse_dict({"id": "fan", "name": "fan", "nodes": nodes, "edges": edges}))


def _done(i: int) -> NodeState:
    return NodeState("succeeded", [f"i{i}"])


def test_a_wide_join_with_a_branch_still_running_is_counted_and_no_branch_row_is_read():
    width = WIDE_JOIN * 4
    graph = _fan(width)
    recorded = {"start": NodeState("succeeded", [f"o{i}" for i in range(width)])}
    recorded |= {f"b{i}": _done(i) for i in range(width - 1)}
    recorded[f"b{width - 1}"] = NodeState("running")
    states = RecordingStates(recorded)

    decision = dag_decide(graph, ["join"], states, states)

    assert decision.ready == {} and decision.skipped == []
    assert states.read == [] and len(states.counted) == 1 and len(states.counted[0]) == width


def test_a_wide_join_whose_branches_all_finished_reads_them_once_and_is_ready():
    width = WIDE_JOIN * 4
    graph = _fan(width)
    recorded = {f"b{i}": _done(i) for i in range(width)}
    states = RecordingStates(recorded)

    decision = dag_decide(graph, ["join"], states, states)

    assert list(decision.ready) == ["join"]
    assert sorted(states.read) == sorted(recorded) and len(states.read) == width


def test_a_narrow_join_reads_its_sources_without_counting():
    graph = _fan(WIDE_JOIN)
    states = RecordingStates({"b0": _done(0), "b1": NodeState("running")})

    decision = dag_decide(graph, ["join"], states, states)

    assert decision.ready == {} and states.counted == [] and set(states.read) == {"b0", "b1"}


@pytest.mark.parametrize("width", [2, WIDE_JOIN + 3])
def test_with_a_lookup_every_mix_of_finished_skipped_and_running_branches_decides_as_with_all_states(width):
    graph = _fan(width)
    kinds = [_done, lambda i: NodeState("skipped"), lambda i: NodeState("succeeded"),
             lambda i: NodeState("running"), None]  # fmt: skip  # fired, skipped, not fired, running, no step
    rng = random.Random(width)
    mixes = [tuple(rng.randrange(len(kinds)) for _ in range(width)) for _ in range(400)]
    mixes += [(0,) * width, (1,) * width, (3,) * width, (4,) * width]  # all fired, skipped, running, none
    for mix in mixes:
        recorded = {f"b{i}": kinds[k](i) for i, k in enumerate(mix) if kinds[k] is not None}  # type: ignore[misc]
        full = dag_decide(graph, ["join"], dict(recorded))
        states = RecordingStates(recorded)
        looked_up = dag_decide(graph, ["join"], states, states)
        assert (looked_up.ready, looked_up.skipped) == (full.ready, full.skipped), mix

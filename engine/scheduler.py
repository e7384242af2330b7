"""Routing decisions: which edges fire, which nodes become ready or skipped. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine import expressions, failure_policy
from engine.contract import get_node_type
from engine.definition import EdgeSpec, WorkflowDefinition
from engine.errors import StepError

TERMINAL = ("succeeded", "failed", "skipped", "cancelled")


@dataclass
class NodeState:
    """What the scheduler needs to know of a node's latest step in a run."""

    status: str
    fired_edges: list[str] = field(default_factory=list)


class StateLookup(Protocol):
    """Where a scheduler decision reads node states it has not seen yet (the run's step rows)."""

    def prefetch(self, node_ids: Iterable[str]) -> None:
        """Have the states of these nodes (those that have a step) in the decision's mapping."""

    def count_resolved(self, node_ids: list[str]) -> int:
        """How many of these nodes have finished (a terminal status), counted without reading them."""


# A join with more incoming sources than this first counts its finished sources in PostgreSQL
# and reads their states only once all are finished: each branch of a wide fan-in would
# otherwise read every other branch's row, O(branches^2) rows for the whole run.
WIDE_JOIN = 8


@dataclass
class Decision:
    """Nodes that became ready (with their port inputs) and nodes found to be skipped."""

    ready: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class Graph:
    """Edge lookups of one definition, built once per run and cached by the worker."""

    def __init__(self, defn: WorkflowDefinition) -> None:
        self.defn = defn
        self.nodes = {n.id: n for n in defn.nodes}
        self.out: dict[str, list[EdgeSpec]] = {n.id: [] for n in defn.nodes}
        self.inc: dict[str, list[EdgeSpec]] = {n.id: [] for n in defn.nodes}
        for e in defn.edges:
            self.out[e.source].append(e)
            self.inc[e.target].append(e)
        self.start = next(n.id for n in defn.nodes if n.type == "start")
        self.node_ids = frozenset(self.nodes)
        # Each node's distinct source nodes, in edge order (a wide join asks at every branch's end).
        self.sources = {n: tuple(dict.fromkeys(e.source for e in edges)) for n, edges in self.inc.items()}

    def join_mode(self, node_id: str) -> str:
        """How the node joins, as its type says: wait for "all" incoming branches, or run at "any" first."""
        node = self.nodes[node_id]
        node_type = get_node_type(node.type)
        return node_type.join_mode(node.config) if node_type is not None else "all"


def fired_edges(
    graph: Graph,
    node_id: str,
    outputs: Mapping[str, Any] | None,
    *,
    failed: bool,
    variables: Mapping[str, Any],
) -> list[str]:
    """Edge ids that fire when `node_id` finishes with `outputs` (or fails)."""
    edges = graph.out[node_id]
    node = graph.nodes[node_id]
    if failed:
        fire = failure_policy.error_edges_fire(node)
        return [e.id for e in edges if e.source_port == "error" and fire]
    outputs = outputs or {}
    node_type = get_node_type(node.type)
    branching = bool(node_type and node_type.branching)
    candidates = [
        e for e in edges if e.source_port != "error" and (not branching or e.source_port in outputs)
    ]
    fired = []
    for e in candidates:
        if e.condition and not _condition_holds(e, outputs, variables):
            continue
        fired.append(e.id)
    if graph.defn.mode == "state_machine":
        # A state takes one transition: the first conditioned edge that holds, else the first default.
        conditioned = [e.id for e in candidates if e.condition and e.id in fired]
        defaults = [e.id for e in candidates if not e.condition]
        return (conditioned or defaults)[:1]
    return fired


def _condition_holds(edge: EdgeSpec, outputs: Mapping[str, Any], variables: Mapping[str, Any]) -> bool:
    value = outputs.get(edge.source_port)
    try:
        return bool(
            expressions.evaluate(
                edge.condition or "", {**variables, "output": value, "outputs": dict(outputs)}
            )
        )
    except StepError as exc:
        raise StepError(f'edge "{edge.id}" condition: {exc}', retryable=False) from exc


def dag_decide(
    graph: Graph,
    candidates: list[str],
    states: MutableMapping[str, NodeState],
    lookup: StateLookup | None = None,
) -> Decision:
    """Decide readiness of `candidates` (and, through skips, their successors) in a DAG run.

    A node is ready when every incoming edge is resolved (its source finished) and at least
    one fired; a node whose type joins "any" (a merge in that mode) is ready as soon as one
    fired. A node whose incoming edges are all resolved with none fired is skipped, and the
    skip propagates. `states` holds every node's state, or, with `lookup`, those read so far:
    the decision then reads only the nodes it looks at (a wide join counts first).
    """
    decision = Decision()
    queue = list(dict.fromkeys(candidates))
    if lookup is not None:  # one read for all candidates and the sources of the narrow ones
        lookup.prefetch([*queue, *(src for n in queue if not _wide(graph, n) for src in graph.sources[n])])
    while queue:
        node_id = queue.pop(0)
        incoming = graph.inc[node_id]
        if lookup is not None:
            sources = list(graph.sources[node_id])
            if _wide(graph, node_id):
                lookup.prefetch([node_id])
                if node_id not in states and lookup.count_resolved(sources) < len(sources):
                    continue  # a branch is still running: neither ready nor skipped yet
            lookup.prefetch([node_id, *sources])
        if node_id in states or node_id in decision.ready:
            continue
        resolved = [e for e in incoming if e.source in states and states[e.source].status in TERMINAL]
        fired = [e for e in resolved if e.id in states[e.source].fired_edges]
        if fired and (graph.join_mode(node_id) == "any" or len(resolved) == len(incoming)):
            decision.ready[node_id] = {}
        elif len(resolved) == len(incoming):
            decision.skipped.append(node_id)
            states[node_id] = NodeState("skipped")
            queue.extend(e.target for e in graph.out[node_id])
    return decision


def _wide(graph: Graph, node_id: str) -> bool:
    """A join of all its incoming branches with more sources than WIDE_JOIN."""
    return len(graph.sources[node_id]) > WIDE_JOIN and graph.join_mode(node_id) == "all"


def port_inputs(
    graph: Graph, node_id: str, fired: dict[str, list[str]], outputs: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, Any]:
    """Input port values of `node_id` from the fired incoming edges.

    One edge into a port gives its value; several give a dict keyed by source node id.
    `fired` maps source node id -> its fired edge ids; `outputs` source node id -> outputs.
    """
    by_port: dict[str, dict[str, Any]] = {}
    for e in graph.inc[node_id]:
        if e.id not in fired.get(e.source, []):
            continue
        src_out = outputs.get(e.source) or {}
        by_port.setdefault(e.target_port, {})[e.source] = src_out.get(e.source_port)
    return {port: next(iter(vals.values())) if len(vals) == 1 else vals for port, vals in by_port.items()}

"""Routing decisions: which edges fire, which nodes become ready or skipped. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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


def dag_decide(graph: Graph, candidates: list[str], states: dict[str, NodeState]) -> Decision:
    """Decide readiness of `candidates` (and, through skips, their successors) in a DAG run.

    A node is ready when every incoming edge is resolved (its source finished) and at least
    one fired; a node whose type joins "any" (a merge in that mode) is ready as soon as one
    fired. A node whose incoming edges are all resolved with none fired is skipped, and the
    skip propagates.
    """
    decision = Decision()
    queue = list(dict.fromkeys(candidates))
    while queue:
        node_id = queue.pop(0)
        if node_id in states or node_id in decision.ready:
            continue
        incoming = graph.inc[node_id]
        resolved = [e for e in incoming if e.source in states and states[e.source].status in TERMINAL]
        fired = [e for e in resolved if e.id in states[e.source].fired_edges]
        if fired and (graph.join_mode(node_id) == "any" or len(resolved) == len(incoming)):
            decision.ready[node_id] = {}
        elif len(resolved) == len(incoming):
            decision.skipped.append(node_id)
            states[node_id] = NodeState("skipped")
            queue.extend(e.target for e in graph.out[node_id])
    return decision


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

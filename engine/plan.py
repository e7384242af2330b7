"""Execution plans: which nodes may run together, and the edge lookups the executor walks."""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from engine.definition import EdgeSpec, WorkflowDefinition
from engine.errors import ErrorCode, Issue, ValidationError

START_TYPE = "start"
END_TYPE = "end"


@dataclass(frozen=True)
class ExecutionPlan:
    """Phases of node ids; every node of a phase may run once the earlier phases are done.

    For a state machine the phases are breadth-first layers from the start node: an
    outline for people to read, not an execution order (loops revisit earlier layers).
    """

    phases: list[list[str]] = field(default_factory=list)
    mode: str = "dag"

    def __str__(self) -> str:
        return "\n".join(f"Phase {n} [{', '.join(phase)}]" for n, phase in enumerate(self.phases, 1))

    @property
    def node_ids(self) -> list[str]:
        """Every planned node id, phase by phase."""
        return [node_id for phase in self.phases for node_id in phase]


def workflow_graph(defn: WorkflowDefinition) -> nx.MultiDiGraph:
    """The definition as a graph: a vertex per node, an edge (keyed by edge id) per connection.

    Edges naming a missing node are left out; validation reports them.
    """
    graph: nx.MultiDiGraph[str] = nx.MultiDiGraph()
    for node in defn.nodes:
        graph.add_node(node.id, type=node.type)
    for edge in defn.edges:
        if edge.source in graph and edge.target in graph:
            graph.add_edge(edge.source, edge.target, key=edge.id, spec=edge)
    return graph


def build_plan(defn: WorkflowDefinition) -> ExecutionPlan:
    """Topological generations for a DAG, breadth-first layers from start for a state machine."""
    graph = workflow_graph(defn)
    if defn.mode == "state_machine":
        return _state_machine_outline(defn, graph)
    try:
        generations = list(nx.topological_generations(graph))
    except nx.NetworkXUnfeasible:
        cycle = " -> ".join(_cycle_path(graph))
        raise ValidationError([Issue(f"cycle: {cycle}", code=ErrorCode.CYCLE)]) from None
    return ExecutionPlan([sorted(phase) for phase in generations], mode="dag")


def successors(defn: WorkflowDefinition, node_id: str) -> list[EdgeSpec]:
    """Edges leaving `node_id`, in definition order."""
    return [edge for edge in defn.edges if edge.source == node_id]


def predecessors(defn: WorkflowDefinition, node_id: str) -> list[EdgeSpec]:
    """Edges entering `node_id`, in definition order."""
    return [edge for edge in defn.edges if edge.target == node_id]


def _state_machine_outline(defn: WorkflowDefinition, graph: nx.MultiDiGraph) -> ExecutionPlan:
    starts = [node.id for node in defn.nodes if node.type == START_TYPE]
    if not starts:
        raise ValidationError([Issue('no "start" node; add one', code=ErrorCode.MISSING_START)])
    layers = nx.bfs_layers(graph, starts[0])
    return ExecutionPlan([sorted(layer) for layer in layers], mode="state_machine")


def _cycle_path(graph: nx.MultiDiGraph) -> list[str]:
    """One cycle of `graph` as node ids, first node repeated at the end."""
    edges = nx.find_cycle(graph)
    return [str(edge[0]) for edge in edges] + [str(edges[0][0])]

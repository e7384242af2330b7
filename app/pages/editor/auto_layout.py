"""Auto-layout for the editor: columns by topological generation, rows centred in each column."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

COLUMN_GAP = 280.0
ROW_GAP = 150.0


def _columns(node_ids: list[str], edges: Iterable[Mapping[str, Any]]) -> list[list[str]]:
    graph = nx.DiGraph()
    graph.add_nodes_from(node_ids)
    graph.add_edges_from(
        (e["source"], e["target"]) for e in edges if e["source"] in graph and e["target"] in graph
    )
    # Loops (state machines) are collapsed first, so every node still gets one column.
    condensed = nx.condensation(graph)
    members = condensed.graph["mapping"]
    column_of_group: dict[int, int] = {}
    for depth, generation in enumerate(nx.topological_generations(condensed)):
        for group in generation:
            column_of_group[group] = depth
    columns: list[list[str]] = [[] for _ in range(max(column_of_group.values(), default=-1) + 1)]
    for node_id in node_ids:
        columns[column_of_group[members[node_id]]].append(node_id)
    # Order each column by the mean row of its predecessors (fewer crossings), ties by definition order.
    order = {node_id: i for i, node_id in enumerate(node_ids)}
    row: dict[str, float] = {node_id: i for i, node_id in enumerate(columns[0])} if columns else {}

    def by_predecessors(node_id: str) -> tuple[float, int]:
        rows = [row[p] for p in graph.predecessors(node_id) if p in row]
        return (sum(rows) / len(rows) if rows else float("inf"), order[node_id])

    for column in columns[1:]:
        column.sort(key=by_predecessors)
        row.update({node_id: i for i, node_id in enumerate(column)})
    return columns


def layout_positions(
    node_ids: list[str], edges: Iterable[Mapping[str, Any]], origin: tuple[float, float] = (0.0, 0.0)
) -> dict[str, dict[str, float]]:
    """node id -> {x, y}: left to right along the edges, each column centred on the origin's row."""
    columns = _columns(node_ids, list(edges))
    tallest = max((len(c) for c in columns), default=0)
    positions: dict[str, dict[str, float]] = {}
    for col, column in enumerate(columns):
        top = origin[1] + (tallest - len(column)) * ROW_GAP / 2
        for row, node_id in enumerate(column):
            positions[node_id] = {"x": origin[0] + col * COLUMN_GAP, "y": top + row * ROW_GAP}
    return positions

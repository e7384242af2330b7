"""What a node's failure does once its retries are spent: take its error edges, or end the run.

A node's `on_error` says it ("branch": the edges leaving its error output; "fail": the run
fails); without one, the error edges fire if there are any, else the workflow's
`error_handling.on_error` decides. The executor, the scheduler and the validator all ask here.
"""

from __future__ import annotations

from engine.definition import EdgeSpec, NodeSpec, WorkflowDefinition
from engine.errors import ErrorCode, Issue


def error_edges_fire(node: NodeSpec) -> bool:
    """Whether the edges leaving `node`'s error output fire when it fails."""
    return node.on_error != "fail"


def ends_run(node: NodeSpec, defn: WorkflowDefinition) -> bool:
    """Whether a failure of `node` that fired no error edge ends the run (as failed)."""
    if node.on_error is not None:
        return True  # "fail" says so; "branch" with nothing to take cannot go on either
    return defn.error_handling.on_error == "fail"


def on_error_problem(node: NodeSpec, error_edges: list[EdgeSpec]) -> str | None:
    """Why `node`'s on_error does not fit the edges leaving its error output; None when it does."""
    if node.on_error == "branch" and not error_edges:
        return (
            "on error it takes the error branch, but no edge leaves its error output: draw one from "
            'the red "error" port, or let the run fail'
        )
    if node.on_error == "fail" and error_edges:
        names = ", ".join(f'"{e.id}"' for e in error_edges)
        return (
            f"on error it fails the run, so its error edge{'s' * (len(error_edges) != 1)} {names} "
            "would never fire: remove them, or take the error branch"
        )
    return None


def on_error_issues(defn: WorkflowDefinition) -> list[Issue]:
    """An issue for every node whose on_error disagrees with its error edges."""
    by_source: dict[str, list[EdgeSpec]] = {}
    for edge in defn.edges:
        if edge.is_error_edge:
            by_source.setdefault(edge.source, []).append(edge)
    issues = []
    for node in defn.nodes:
        problem = on_error_problem(node, by_source.get(node.id, []))
        if problem:
            issues.append(Issue(problem, code=ErrorCode.ON_ERROR_MISMATCH, node_id=node.id, field="on_error"))
    return issues

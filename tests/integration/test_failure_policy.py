"""A node's own on-error choice: fail the run although the workflow continues, or take its error branch."""

from __future__ import annotations

import pytest

from engine.runs import start_run
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")


def _flow(on_error: str | None, *, error_edge: bool):
    extra = {"on_error": on_error} if on_error else {}
    nodes = [
        node("start", "start"),
        node("risky", "tool.python", tool="fail", args={"message": "boom", "retryable": False}, **extra),
        node("after", "tool.python", tool="echo", args={"value": "went on"}),
        node("end", "end"),
    ]
    edges = [("start", "risky"), ("risky", "after"), ("after", "end")]
    if error_edge:
        nodes += [
            node("handler", "tool.python", tool="echo", args={"value": "handled"}),
            node("end_err", "end"),
        ]
        edges += [("risky", "handler", "error"), ("handler", "end_err")]
    return workflow(
        nodes,
        edges,
        error_handling={"on_error": "continue"},
    )


def test_a_node_that_fails_the_run_ends_it_although_the_workflow_continues_on_errors():
    view = wait_for_run(start_run(_flow("fail", error_edge=False), {}))
    assert view.status == "failed"
    assert 'node "risky" failed' in view.error and "boom" in view.error
    assert "handler" not in steps_by_node(view)


def test_without_its_own_choice_the_workflow_continues_and_the_run_ends_without_an_end_node():
    view = wait_for_run(start_run(_flow(None, error_edge=False), {}))
    steps = steps_by_node(view)
    assert steps["risky"]["status"] == "failed"
    assert steps["after"]["status"] == "skipped"  # the run went on past the failure
    assert view.status == "failed" and "no end node was reached" in view.error


def test_a_node_that_takes_its_error_branch_runs_the_handler():
    view = wait_for_run(start_run(_flow("branch", error_edge=True), {}))
    steps = steps_by_node(view)
    assert view.status == "succeeded", view.error
    assert steps["handler"]["status"] == "succeeded" and steps["handler"]["outputs"] == {"out": "handled"}
    assert steps["after"]["status"] == "skipped"

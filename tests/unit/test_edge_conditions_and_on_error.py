"""Edge conditions (what they may name, what the editor suggests) and a node's on-error choice, as the
validator and the scheduler apply them."""

from __future__ import annotations

from typing import Any

from engine.definition import WorkflowDefinition
from engine.errors import ErrorCode
from engine.expression_paths import condition_suggestions, expression_references, reference_problems
from engine.parse import parse_dict
from engine.scheduler import Graph, fired_edges
from engine.validate import validate

INPUTS = {
    "type": "object",
    "properties": {"order": {"type": "string"}, "customer": {"type": "object", "properties": {"tier": {}}}},
}


def flow(edges: list[dict[str, Any]], *, mode: str = "dag", **risky: Any) -> WorkflowDefinition:
    nodes = [
        {"id": "start", "type": "start"},
        {"id": "fetch", "type": "tool.python", "config": {"tool": "echo"}},
        {"id": "check", "type": "condition", "config": {"expression": "output > 1"}},
        {"id": "risky", "type": "tool.python", "config": {"tool": "echo"}, **risky},
        {"id": "handler", "type": "tool.python", "config": {"tool": "echo"}},
        {"id": "end", "type": "end"},
    ]
    base = [
        {"id": "s", "source": "start", "target": "fetch"},
        {"id": "f", "source": "fetch", "target": "check"},
        {"id": "c", "source": "check", "source_port": "true", "target": "risky"},
        {"id": "r", "source": "risky", "target": "end"},
        {"id": "h", "source": "handler", "target": "end"},
    ]
    return parse_dict({"name": "t", "mode": mode, "inputs": INPUTS, "nodes": nodes, "edges": base + edges})


def issues_of(defn: WorkflowDefinition, **where: Any) -> list[tuple[str, str, str]]:
    return [
        (i.code, i.severity, i.message)
        for i in validate(defn).issues
        if all(getattr(i, k) == v for k, v in where.items())
    ]


def test_expression_references_follow_attributes_and_constant_keys():
    refs = expression_references("output.status == 'ok' and steps['fetch'].output.n > input.limit | int")
    assert refs == [("output", "status"), ("steps", "fetch", "output", "n"), ("input", "limit")]
    assert expression_references("output ==") == []  # a syntax error is check_expression's to report


def test_a_condition_naming_what_is_not_there_gets_a_warning_for_each_slip():
    condition = "status == 'ok' or steps.fetchh.output or steps.fetch.outputt or input.ordr or outputs.nope"
    defn = flow([{"id": "x", "source": "risky", "target": "handler", "condition": condition}])
    found = issues_of(defn, edge_id="x", field="condition")
    assert {(code, severity) for code, severity, _ in found} == {(ErrorCode.UNKNOWN_REFERENCE, "warning")}
    text = " | ".join(message for _, _, message in found)
    assert 'unknown name "status"' in text and "did you mean output.status?" in text
    assert 'this workflow has no node "fetchh"' in text
    assert "steps.fetch.outputt: a step has output, outputs, status" in text
    assert 'the run inputs declare no "ordr" (they have: customer, order)' in text
    assert '"risky" has no output port "nope" (its ports: out)' in text
    assert len(found) == 5


def test_a_condition_that_names_real_paths_is_clean_and_a_broken_one_is_an_error():
    good = "output.ok and steps.fetch.status == 'succeeded' and input.customer.tier == 'gold'"
    assert (
        issues_of(flow([{"id": "x", "source": "risky", "target": "handler", "condition": good}]), edge_id="x")
        == []
    )
    bad = issues_of(
        flow([{"id": "x", "source": "risky", "target": "handler", "condition": "output =="}]), edge_id="x"
    )
    assert [(code, severity) for code, severity, _ in bad] == [(ErrorCode.BAD_CONDITION, "error")]


def test_a_condition_on_an_error_edge_is_flagged_as_never_checked():
    edge = {"id": "x", "source": "risky", "source_port": "error", "target": "handler", "condition": "output"}
    found = issues_of(flow([edge]), edge_id="x")
    assert [(code, severity) for code, severity, _ in found] == [(ErrorCode.BAD_CONDITION, "warning")]
    assert "never checked" in found[0][2]


def test_suggestions_offer_the_source_ports_the_declared_inputs_and_earlier_steps_only():
    defn = flow([{"id": "x", "source": "risky", "target": "handler"}])
    ports = {
        "start": ["out"],
        "fetch": ["out"],
        "check": ["true", "false"],
        "risky": ["out"],
        "handler": ["out"],
    }
    got = condition_suggestions(defn, defn.edge("x"), ports)
    assert got[:2] == ["output", "outputs.out"]
    assert {"input.order", "input.customer", "input.customer.tier"} <= set(got)
    assert {
        "steps.fetch.output",
        "steps.fetch.status",
        "steps.check.outputs.true",
        "steps.start.output",
    } <= set(got)
    assert not any(s.startswith(("steps.handler", "steps.end", "steps.risky")) for s in got), got
    # A state machine comes back to states: every node's outputs may be there.
    machine = flow([{"id": "x", "source": "risky", "target": "handler"}], mode="state_machine")
    assert "steps.handler.output" in condition_suggestions(machine, machine.edge("x"), ports)


def test_reference_problems_do_not_check_ports_when_they_are_unknown():
    defn = flow([{"id": "x", "source": "risky", "target": "handler"}])
    assert reference_problems("outputs.anything", defn, defn.edge("x"), None) == []


def test_on_error_branch_needs_an_error_edge_and_fail_refuses_one():
    found = issues_of(flow([], on_error="branch"), node_id="risky", field="on_error")
    assert [(c, s) for c, s, _ in found] == [(ErrorCode.ON_ERROR_MISMATCH, "error")]
    assert "no edge leaves its error output" in found[0][2]

    error_edge = {"id": "oops", "source": "risky", "source_port": "error", "target": "handler"}
    found = issues_of(flow([error_edge], on_error="fail"), node_id="risky", field="on_error")
    assert [(c, s) for c, s, _ in found] == [(ErrorCode.ON_ERROR_MISMATCH, "error")]
    assert 'error edge "oops" would never fire' in found[0][2]

    assert issues_of(flow([error_edge], on_error="branch"), field="on_error") == []
    assert issues_of(flow([], on_error="fail"), field="on_error") == []


def test_a_failed_node_that_fails_the_run_fires_no_error_edge():
    error_edge = {"id": "oops", "source": "risky", "source_port": "error", "target": "handler"}
    for choice, fired in ((None, ["oops"]), ("branch", ["oops"]), ("fail", [])):
        extra = {"on_error": choice} if choice else {}
        graph = Graph(flow([error_edge], **extra))
        assert fired_edges(graph, "risky", None, failed=True, variables={}) == fired, choice

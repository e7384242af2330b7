"""Validation reports every issue located by code, node, edge and field; plans and edge lookups."""

from __future__ import annotations

from typing import Any

import pytest

from engine.contract import Port, register
from engine.definition import WorkflowDefinition
from engine.errors import Issue, ValidationError
from engine.parse import parse_dict
from engine.plan import ExecutionPlan, build_plan, predecessors, successors
from engine.validate import ensure_valid, validate


@register(
    "test.text_source",
    category="test",
    label="Text source",
    inputs={"in": Port("any", required=False)},
    outputs={"text": Port("text")},
)
def _text_source(ctx: Any, cfg: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"text": "hi"}


@register(
    "test.number_sink",
    category="test",
    label="Number sink",
    inputs={"n": Port("number"), "extra": Port("json", required=False)},
    outputs={"out": Port("any")},
)
def _number_sink(ctx: Any, cfg: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"out": inputs["n"]}


def make(
    nodes: list[tuple[str, str] | tuple[str, str, dict]], edges: list[str | dict], **extra: Any
) -> WorkflowDefinition:
    """A definition from (id, type[, config]) nodes and "a->b" / "a.port->b.port" or dict edges."""
    edge_specs = []
    for i, edge in enumerate(edges, 1):
        if isinstance(edge, str):
            left, right = edge.split("->")
            source, _, source_port = left.partition(".")
            target, _, target_port = right.partition(".")
            edge = {
                "source": source,
                "source_port": source_port or "out",
                "target": target,
                "target_port": target_port or "in",
            }
        edge_specs.append({"id": f"e{i}", **edge})
    node_specs = [{"id": n[0], "type": n[1], "config": n[2] if len(n) > 2 else {}} for n in nodes]
    return parse_dict({"name": "test", "nodes": node_specs, "edges": edge_specs, **extra})


def codes(defn: WorkflowDefinition) -> set[tuple[str, str | None, str | None]]:
    """(code, node id, edge id) of every error (warnings left out)."""
    return {(i.code, i.node_id, i.edge_id) for i in validate(defn).errors}


def only_issue(defn: WorkflowDefinition) -> Issue:
    issues = validate(defn).issues
    assert len(issues) == 1, [str(i) for i in issues]
    return issues[0]


DIAMOND = make(
    [("a", "start"), ("b", "delay", {"seconds": 0}), ("c", "delay", {"seconds": 0}), ("d", "end")],
    ["a->b", "a->c", "b->d", "c->d"],
)


def test_diamond_is_valid_and_plans_in_three_phases() -> None:
    report = validate(DIAMOND)
    assert report.ok and report.issues == []
    assert report.plan == ExecutionPlan([["a"], ["b", "c"], ["d"]])
    assert str(report.plan) == "Phase 1 [a]\nPhase 2 [b, c]\nPhase 3 [d]"
    assert ensure_valid(DIAMOND) == report.plan
    assert report.to_dict() == {"ok": True, "issues": [], "plan": [["a"], ["b", "c"], ["d"]]}


def test_successors_and_predecessors_keep_definition_order() -> None:
    assert [e.id for e in successors(DIAMOND, "a")] == ["e1", "e2"]
    assert [e.id for e in predecessors(DIAMOND, "d")] == ["e3", "e4"]
    assert successors(DIAMOND, "d") == [] and predecessors(DIAMOND, "nope") == []


def test_unknown_node_type_suggests_close_matches() -> None:
    issue = only_issue(make([("s", "start"), ("w", "dealy"), ("e", "end")], ["s->w", "w->e"]))
    assert (issue.code, issue.node_id, issue.field) == ("unknown_node_type", "w", "type")
    assert "'delay'" in issue.message


def test_config_errors_name_the_field() -> None:
    defn = make(
        [("s", "start"), ("w", "delay", {"seconds": -1, "sekonds": 2}), ("e", "end")], ["s->w", "w->e"]
    )
    issues = validate(defn).issues
    assert {(i.code, i.node_id, i.field) for i in issues} == {
        ("config_invalid", "w", "config.seconds"),
        ("config_invalid", "w", "config.sekonds"),
    }


def test_templated_config_values_are_left_to_run_time() -> None:
    defn = make(
        [("s", "start"), ("w", "delay", {"seconds": "{{ input.wait }}"}), ("e", "end")], ["s->w", "w->e"]
    )
    assert validate(defn).issues == []


def test_bad_templates_in_config_and_outputs() -> None:
    defn = make(
        [("s", "start"), ("w", "delay", {"seconds": "{{ input.wait "}), ("e", "end")],
        ["s->w", "w->e"],
        outputs={"answer": "{% if %}"},
    )
    found = {(i.code, i.node_id, i.field) for i in validate(defn).issues}
    assert found == {("bad_template", "w", "config.seconds"), ("bad_template", None, "outputs.answer")}


def test_bad_conditions_on_edges_and_condition_nodes() -> None:
    defn = make(
        [("s", "start"), ("c", "condition", {"expression": "value.x >"}), ("e", "end")],
        ["s->c", "c.true->e", "c.false->e", {"source": "s", "target": "e", "condition": "1 +* 2"}],
    )
    found = {(i.code, i.node_id, i.edge_id, i.field) for i in validate(defn).issues}
    assert found == {
        ("bad_condition", "c", None, "config.expression"),
        ("bad_condition", None, "e4", "condition"),
    }


@register(
    "test.expression_in_args",
    category="test",
    label="Expression-named argument",
    inputs={"in": Port("any", required=False)},
    outputs={"out": Port("any")},
)
def _expression_in_args(ctx: Any, cfg: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"out": None}


def test_only_the_expression_fields_a_node_type_declares_are_compiled() -> None:
    branches = [{"name": "big", "expression": "value >"}, {"name": "ok", "expression": "value < 3"}]
    defn = make(
        [("s", "start"), ("c", "condition", {"branches": branches}), ("e", "end")],
        ["s->c", "c.big->e", "c.ok->e", "c.default->e"],
    )
    found = {(i.code, i.node_id, i.field) for i in validate(defn).issues}
    assert found == {("bad_condition", "c", "config.branches[0].expression")}
    # A key that happens to be called "expression" in another node type's config is plain text to it.
    node_type_free = make(
        [("s", "start"), ("t", "tool.python", {"tool": "echo", "args": {"expression": "not an ( expression"}}),
         ("e", "end")],
        ["s->t", "t->e"],
    )  # fmt: skip
    assert not [i for i in validate(node_type_free).issues if i.code == "bad_condition"]


def test_dangling_edges_name_the_missing_end() -> None:
    defn = make([("s", "start"), ("e", "end")], ["s->e", "s->ee", "ghost->e"])
    found = {(i.code, i.edge_id, i.field) for i in validate(defn).issues}
    assert found == {("dangling_edge", "e2", "target"), ("dangling_edge", "e3", "source")}
    assert "did you mean 'e'?" in validate(defn).issues[0].message


def test_unknown_ports_on_either_side() -> None:
    defn = make([("s", "start"), ("e", "end")], ["s->e", "s.result->e", "s->e.body"])
    found = {(i.code, i.node_id, i.edge_id, i.field) for i in validate(defn).issues}
    assert found == {("unknown_port", "s", "e2", "source_port"), ("unknown_port", "e", "e3", "target_port")}


def test_condition_ports_come_from_its_config() -> None:
    branches = {"branches": [{"name": "high", "expression": "value > 5"}]}
    ok = make(
        [("s", "start"), ("c", "condition", branches), ("e", "end")],
        ["s->c", "c.high->e", "c.default->e", "c.error->e"],
    )
    assert validate(ok).issues == []
    bad = make(
        [("s", "start"), ("c", "condition", branches), ("e", "end")], ["s->c", "c.high->e", "c.low->e"]
    )
    assert codes(bad) == {("unknown_port", "c", "e3")}


def test_port_type_mismatch_and_unconnected_required_input() -> None:
    defn = make(
        [("s", "start"), ("t", "test.text_source"), ("n", "test.number_sink"), ("e", "end")],
        ["s->t", "t.text->n.n", "t.text->n.extra", "n->e"],
    )
    assert codes(defn) == {("port_type_mismatch", "n", "e2")}
    lonely = make([("s", "start"), ("n", "test.number_sink"), ("e", "end")], ["s->n.extra", "n->e"])
    issue = only_issue(lonely)
    assert (issue.code, issue.node_id, issue.field, issue.severity) == (
        "unconnected_input",
        "n",
        "ports.n",
        "warning",
    )
    assert validate(lonely).ok


def test_error_port_edges_are_accepted_on_every_node() -> None:
    defn = make([("s", "start"), ("w", "delay"), ("e", "end")], ["s->w", "w->e", "w.error->e", "s.error->e"])
    assert validate(defn).issues == []


def test_cycles_in_a_dag_are_reported_with_their_path() -> None:
    defn = make(
        [("s", "start"), ("a", "delay"), ("b", "delay"), ("e", "end")],
        ["s->a", "a->b", "b->a", "b->e"],
    )
    issue = only_issue(defn)
    assert (issue.code, issue.node_id) == ("cycle", "a")
    assert "cycle: a -> b -> a" in issue.message
    with pytest.raises(ValidationError) as err:
        build_plan(defn)
    assert err.value.issues[0].code == "cycle"


def test_self_loops_are_errors_in_a_dag_and_warnings_in_a_state_machine() -> None:
    nodes = [("s", "start"), ("a", "delay"), ("e", "end")]
    issue = only_issue(make(nodes, ["s->a", "a->a", "a->e"]))
    assert (issue.code, issue.node_id, issue.edge_id, issue.severity) == ("self_loop", "a", "e2", "error")
    issue = only_issue(make(nodes, ["s->a", "a->a", "a->e"], mode="state_machine"))
    assert (issue.code, issue.severity) == ("self_loop", "warning")
    guarded = [{"source": "a", "target": "a", "condition": "output.count < 3"}]
    assert validate(make(nodes, ["s->a", "a->e", *guarded], mode="state_machine")).issues == []


def test_duplicate_edges_and_ids() -> None:
    defn = make([("s", "start"), ("e", "end")], ["s->e", "s->e"])
    assert codes(defn) == {("duplicate_edge", None, "e2")}
    clash = WorkflowDefinition.model_validate(
        {"name": "w", "nodes": [{"id": "s", "type": "start"}, {"id": "s", "type": "end"}]}
    )
    assert ("duplicate_id", "s", None) in codes(clash)


def test_start_and_end_nodes_are_required() -> None:
    assert codes(make([("e", "end")], [])) == {("missing_start", None, None)}
    assert codes(make([("s", "start")], [])) == {("missing_end", None, None)}
    two = make([("s1", "start"), ("s2", "start"), ("e", "end")], ["s1->e", "s2->e"])
    assert codes(two) == {("multiple_start", "s1", None), ("multiple_start", "s2", None)}


def test_unreachable_nodes_are_errors() -> None:
    defn = make([("s", "start"), ("a", "delay"), ("b", "delay"), ("e", "end")], ["s->e", "a->b", "b->e"])
    assert codes(defn) == {("unreachable", "a", None), ("unreachable", "b", None)}


def test_state_machine_nodes_must_reach_an_end() -> None:
    defn = make(
        [("s", "start"), ("a", "delay"), ("b", "delay"), ("e", "end")],
        ["s->a", "a->e", {"source": "a", "target": "b", "condition": "output"}, "b->b"],
        mode="state_machine",
    )
    found = {(i.code, i.node_id, i.severity) for i in validate(defn).issues}
    assert found == {("no_path_to_terminal", "b", "error"), ("self_loop", "b", "warning")}
    dag_dead_end = make([("s", "start"), ("a", "delay"), ("e", "end")], ["s->a", "s->e"])
    issue = only_issue(dag_dead_end)
    assert (issue.code, issue.node_id, issue.severity) == ("no_path_to_terminal", "a", "warning")


def test_state_machine_loops_are_allowed_and_planned_as_an_outline() -> None:
    defn = make(
        [
            ("s", "start"),
            ("work", "delay"),
            ("check", "condition", {"expression": "value.done"}),
            ("e", "end"),
        ],
        ["s->work", "work->check", "check.false->work", "check.true->e"],
        mode="state_machine",
    )
    assert str(ensure_valid(defn)) == "Phase 1 [s]\nPhase 2 [work]\nPhase 3 [check]\nPhase 4 [e]"


def test_inputs_schema_shape_is_checked() -> None:
    defn = make(
        [("s", "start"), ("e", "end")],
        ["s->e"],
        inputs={"type": "array", "properties": {"a": {}}, "required": ["a", "b"]},
    )
    fields = {(i.code, i.field) for i in validate(defn).issues}
    assert fields == {("inputs_invalid", "inputs.type"), ("inputs_invalid", "inputs.required")}


def test_every_issue_is_reported_at_once_and_ensure_valid_raises_them_all() -> None:
    defn = make(
        [("s", "start"), ("x", "nope"), ("w", "delay", {"seconds": "soon"}), ("lost", "end")],
        ["s->x", "s->w", "w->w", "w->ghost", {"source": "s", "target": "w", "condition": "(("}],
    )
    expected = {
        "unknown_node_type",
        "config_invalid",
        "self_loop",
        "dangling_edge",
        "bad_condition",
        "unreachable",
    }
    assert expected <= {i.code for i in validate(defn).issues}
    with pytest.raises(ValidationError) as err:
        ensure_valid(defn)
    assert expected <= {i.code for i in err.value.issues}
    assert 'node "lost": not reachable from the start node' in str(err.value)

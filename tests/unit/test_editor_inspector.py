"""The side panel's edge form and node behaviour form: what they show, what typed text becomes, and
that every refusal is the engine's own."""

from __future__ import annotations

import pytest

from app.pages.editor.graph import EditRefused, WorkingGraph, empty_definition
from app.pages.editor.inspector import (
    apply_behaviour,
    behaviour_field_of,
    behaviour_fields,
    behaviour_issues,
    complete,
    control_of,
    edge_form,
    typed_token,
)
from components.config_form import InputError, parse_input
from engine.definition import RetryPolicy


def graph_with(*types: str) -> tuple[WorkingGraph, list[str]]:
    graph = WorkingGraph(
        {**empty_definition("Test"), "inputs": {"type": "object", "properties": {"order": {}}}}
    )
    ids = []
    for i, node_type in enumerate(types):
        graph, node_id = graph.add_node(node_type, i * 300, 0)
        ids.append(node_id)
    return graph, ids


def test_the_edge_form_checks_the_condition_with_the_engine_and_suggests_paths():
    graph, (start, tool, end) = graph_with("start", "tool.python", "end")
    graph, _ = graph.connect(start, "out", tool, "in")
    graph, edge = graph.connect(tool, "out", end, "in")
    form = edge_form(graph, edge)
    assert (form.source, form.target, form.is_error, form.condition_error) == (tool, end, False, "")
    assert form.suggestions[:3] == ["output", "outputs.out", "input.order"]
    assert f"steps.{start}.output" in form.suggestions

    graph = graph.update_edge(edge, condition="output ==")
    assert "expression" in edge_form(graph, edge).condition_error

    graph = graph.update_edge(edge, condition="steps.nope.output")
    form = edge_form(graph, edge)
    assert form.condition_error == "" and form.condition_warnings == [
        'steps.nope: this workflow has no node "nope"'
    ]

    graph = graph.update_edge(edge, condition="output.ok and steps.st")
    assert edge_form(graph, edge).suggestions == ["steps.start.output", "steps.start.status"]


def test_a_suggestion_replaces_the_name_being_typed():
    assert typed_token("output == 1 and steps.fe") == "steps.fe"
    assert complete("output == 1 and steps.fe", "steps.fetch.output") == "output == 1 and steps.fetch.output"
    assert complete("output == ", "input.order") == "output == input.order"


def test_an_edge_moves_to_the_error_output_and_back_when_the_connection_allows_it():
    graph, (start, tool, end) = graph_with("start", "tool.python", "end")
    graph, edge = graph.connect(tool, "out", end, "in")
    graph = graph.set_error_output(edge, True)
    assert graph.edge(edge)["source_port"] == "error" and edge_form(graph, edge).is_error
    graph = graph.set_error_output(edge, False)
    assert graph.edge(edge)["source_port"] == "out"
    # Moving onto a port that is already connected to the same target is refused, with the reason.
    graph, second = graph.connect(tool, "error", end, "in")
    with pytest.raises(EditRefused, match="already connected"):
        graph.set_error_output(edge, True)


def test_behaviour_text_becomes_the_definitions_retry_timeout_and_on_error():
    graph, (tool,) = graph_with("tool.python")
    node = graph.node(tool)
    changes = apply_behaviour(node, "max_attempts", "3")
    assert changes == {"retry": RetryPolicy(max_attempts=3).model_dump()}
    node = {**node, **changes}
    node = {**node, **apply_behaviour(node, "backoff_s", "0.5")}
    assert node["retry"]["max_attempts"] == 3 and node["retry"]["backoff_s"] == 0.5
    assert apply_behaviour(node, "timeout_s", "12") == {"timeout_s": 12}
    assert apply_behaviour(node, "timeout_s", "") == {"timeout_s": None}
    assert apply_behaviour(node, "on_error", "Fail the run") == {"on_error": "fail"}
    assert apply_behaviour(node, "on_error", "Workflow default") == {"on_error": None}
    assert apply_behaviour(node, "max_visits", "4") == {"max_visits": 4}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("max_attempts", "0", "greater than or equal to 1"),
        ("max_attempts", "many", "enter a number"),
        ("timeout_s", "0", "greater than 0"),
        ("backoff_factor", "0.5", "greater than or equal to 1"),
        ("timeout_s", "{{ input.t }}", "templates are not allowed"),
        ("on_error", "retry forever", "choose one of"),
    ],
)
def test_behaviour_values_the_definition_refuses_are_refused_with_its_message(name, text, message):
    graph, (tool,) = graph_with("tool.python")
    with pytest.raises(InputError, match=message):
        apply_behaviour(graph.node(tool), name, text)


def test_the_behaviour_form_shows_the_values_and_the_on_error_rule_of_the_engine():
    graph, (start, tool, end) = graph_with("start", "tool.python", "end")
    graph = graph.update_node(tool, retry={"max_attempts": 4, "backoff_s": 2.0}, on_error="branch")
    fields = {f.name: f for f in behaviour_fields(graph, graph.node(tool), {}, {})}
    assert "max_visits" not in fields, "a visit limit is for state machines"
    assert fields["max_attempts"].value == "4" and fields["backoff_s"].value == "2.0"
    assert fields["on_error"].value == "Take the error branch"
    assert "no edge leaves its error output" in fields["on_error"].error
    graph, _ = graph.connect(tool, "error", end, "in")
    fields = {f.name: f for f in behaviour_fields(graph, graph.node(tool), {}, {})}
    assert fields["on_error"].error == ""
    machine = graph.replace(mode="state_machine")
    assert "max_visits" in {f.name for f in behaviour_fields(machine, machine.node(tool), {}, {})}
    drafts = {"timeout_s": {"text": "-1", "error": "Input should be greater than 0"}}
    fields = {f.name: f for f in behaviour_fields(graph, graph.node(tool), drafts, {})}
    assert (fields["timeout_s"].value, fields["timeout_s"].error) == ("-1", "Input should be greater than 0")


def test_validator_issues_land_on_the_behaviour_field_they_name():
    report = [
        {"node_id": "a", "field": "on_error", "message": "m1"},
        {"node_id": "a", "field": "retry.backoff_s", "message": "m2"},
        {"node_id": "a", "field": "config.url", "message": "m3"},
        {"node_id": "b", "field": "timeout_s", "message": "m4"},
    ]
    assert behaviour_issues(report, "a") == {"on_error": "m1", "backoff_s": "m2"}
    assert behaviour_field_of("backoff_s") is None and behaviour_field_of("retry.timeout_s") is None


def test_the_on_error_field_follows_the_graph_not_an_older_validation():
    graph, (tool,) = graph_with("tool.python")
    graph = graph.update_node(tool, on_error="fail")
    stale = {"on_error": "on error it takes the error branch, but no edge leaves its error output"}
    chosen = {"on_error": {"text": "Fail the run", "error": ""}}
    fields = {f.name: f for f in behaviour_fields(graph, graph.node(tool), chosen, stale)}
    assert fields["on_error"].error == ""


def test_json_typed_into_a_config_field_stays_json_when_its_strings_hold_templates():
    prop = {"type": "object"}
    assert parse_input(prop, '{"value": "{{ input.x }}"}') == {"value": "{{ input.x }}"}
    # A whole template is rendered at run time.
    assert parse_input(prop, "{{ input.args }}") == "{{ input.args }}"


def test_a_problem_names_the_control_that_shows_its_field():
    assert control_of("config.url") == "node-config-form-url"
    assert control_of("config.headers.Accept") == "node-config-form-headers"
    assert control_of("retry.max_attempts") == "node-behaviour-form-max_attempts"
    assert control_of("on_error") == "node-behaviour-form-on_error"
    assert control_of("id") == "node-id-input"
    assert control_of("condition", edge=True) == "edge-condition-input"
    assert control_of("ports.in") == "" and control_of("source_port", edge=True) == ""

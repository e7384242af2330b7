"""The editor's pure parts: the working graph's edits and refusals, auto-layout, the schema form."""

from __future__ import annotations

import pytest

from app.pages.editor.auto_layout import COLUMN_GAP, layout_positions
from app.pages.editor.graph import EditRefused, WorkingGraph, empty_definition
from components.config_form import UNSET, InputError, build_fields, field_label, parse_input, resolve
from engine.contract import EmptyConfig, NodeType, Port, registry
from nodes.agent.agent import AgentConfig
from nodes.http.http_request import HttpRequestConfig


def chain(*types: str) -> WorkingGraph:
    """Nodes of `types` connected in a row (out -> in)."""
    graph = WorkingGraph(empty_definition("Test"))
    ids = []
    for i, node_type in enumerate(types):
        graph, node_id = graph.add_node(node_type, i * 300, 0)
        ids.append(node_id)
    for a, b in zip(ids, ids[1:], strict=False):
        graph, _ = graph.connect(a, "out", b, "in")
    return graph


def test_dropped_nodes_get_readable_unique_ids_and_the_drop_position():
    graph = WorkingGraph(empty_definition("Test"))
    graph, first = graph.add_node("tool.python", 10, 20)
    graph, second = graph.add_node("tool.python", 30, 40)
    assert (first, second) == ("tool_python", "tool_python_2")
    assert graph.node(second)["position"] == {"x": 30.0, "y": 40.0}
    assert graph.to_definition().node(first).label == "Python tool"


def test_edits_return_new_graphs_and_leave_the_old_one_untouched():
    before = chain("start", "end")
    after = before.move([{"id": "end", "x": 999, "y": 5}])
    assert before.node("end")["position"]["x"] == 300.0
    assert after.node("end")["position"] == {"x": 999.0, "y": 5.0}
    assert after.node("start") is before.node("start"), "untouched nodes are shared"


def test_self_loops_and_cycles_are_refused_in_dag_mode_with_the_loop_named():
    graph = chain("start", "tool.python", "tool.python", "end")
    with pytest.raises(EditRefused, match="cannot connect to itself"):
        graph.connect("tool_python", "out", "tool_python", "in")
    with pytest.raises(EditRefused, match=r"close a loop \(tool_python_2 → tool_python → tool_python_2\)"):
        graph.connect("tool_python_2", "out", "tool_python", "in")
    looped, _ = graph.replace(mode="state_machine").connect("tool_python_2", "out", "tool_python", "in")
    assert len(looped.edges) == 4


def test_unknown_ports_and_duplicate_connections_are_refused():
    graph = chain("start", "agent")
    with pytest.raises(EditRefused, match='no output port "nope"; its outputs: out, error'):
        graph.connect("start", "nope", "agent", "in")
    with pytest.raises(EditRefused, match='"start" has no input port "in"'):
        graph.connect("agent", "out", "start", "in")
    with pytest.raises(EditRefused, match="already connected"):
        graph.connect("start", "out", "agent", "in")
    errored, _ = graph.replace(mode="state_machine").connect("agent", "error", "agent", "in")
    assert errored.edges[-1]["source_port"] == "error"


def test_mismatched_port_types_are_refused(monkeypatch: pytest.MonkeyPatch):
    def run(ctx, cfg, inputs):
        return {}

    typed = NodeType(
        "test.embed",
        "ai",
        "Embed",
        EmptyConfig,
        {"in": Port("text")},
        {"out": Port("embedding")},
        run,
    )
    monkeypatch.setitem(registry._REGISTRY, "test.embed", typed)
    graph, first = WorkingGraph(empty_definition("Test")).add_node("test.embed", 0, 0)
    graph, second = graph.add_node("test.embed", 300, 0)
    with pytest.raises(EditRefused, match='type mismatch: output "out" of "test_embed" is embedding'):
        graph.connect(first, "out", second, "in")


def test_approval_actions_become_output_ports_on_the_canvas():
    graph, node_id = WorkingGraph(empty_definition("Test")).add_node("human.approval", 0, 0)
    assert "outs" not in graph.canvas_nodes()[0], "the default actions are the declared ports"
    actions = [{"name": "ship", "label": "Ship it"}, {"name": "hold", "label": "Hold"}]
    graph = graph.update_node(node_id, config={"actions": actions})
    assert list(graph.canvas_nodes()[0]["outs"]) == ["ship", "hold"]
    graph, _ = graph.add_node("end", 300, 0)
    graph, _ = graph.connect(node_id, "ship", "end", "in")


def test_paste_copies_nodes_and_their_inner_edges_with_fresh_ids():
    graph = chain("start", "tool.python", "end")
    fragment = graph.fragment(["tool_python", "end"])
    assert len(fragment["edges"]) == 1
    pasted, new_ids = graph.paste(fragment, offset=40)
    assert new_ids == ["tool_python_2", "end_2"]
    assert pasted.node("end_2")["position"] == {"x": 640.0, "y": 40.0}
    assert {(e["source"], e["target"]) for e in pasted.edges[-1:]} == {("tool_python_2", "end_2")}
    assert graph.fragment([]) is None


def test_rename_carries_edges_and_remove_takes_the_nodes_edges_along():
    graph = chain("start", "tool.python", "end").rename_node("tool_python", "fetch")
    assert {(e["source"], e["target"]) for e in graph.edges} == {("start", "fetch"), ("fetch", "end")}
    with pytest.raises(EditRefused, match="already called"):
        graph.rename_node("fetch", "end")
    with pytest.raises(EditRefused, match="starts with a letter"):
        graph.rename_node("fetch", "9lives")
    assert graph.remove(["fetch"]).edges == []
    assert graph.to_definition().node("fetch").type == "tool.python"


def test_auto_layout_puts_nodes_in_columns_along_the_edges_loops_included():
    edges = [
        {"source": a, "target": b} for a, b in [("s", "a"), ("s", "b"), ("a", "e"), ("b", "e"), ("e", "a")]
    ]
    positions = layout_positions(["s", "a", "b", "e"], edges)
    assert positions["s"]["x"] == 0.0
    assert positions["b"]["x"] == COLUMN_GAP
    assert positions["a"]["x"] == positions["e"]["x"], "a loop shares one column"
    assert layout_positions([], []) == {}


def test_the_form_follows_the_schema_and_shows_values_and_errors():
    schema = HttpRequestConfig.model_json_schema()
    fields = {
        f.name: f
        for f in build_fields(
            schema, {"url": "https://x.test", "headers": {"A": "b"}, "timeout_s": 5}, {"url": "bad"}
        )
    }
    assert fields["url"].kind == "text" and fields["url"].required and fields["url"].error == "bad"
    assert fields["method"].kind == "select" and fields["method"].options == [
        "GET",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
    ]
    assert fields["headers"].kind == "keyvalue" and fields["headers"].pairs == [["A", "b"]]
    assert fields["body"].kind == "multiline"
    assert fields["body_from_input"].kind == "boolean" and not fields["body_from_input"].checked
    assert fields["timeout_s"].kind == "number" and fields["timeout_s"].value == "5"
    assert fields["timeout_s"].label == "Timeout (s)"
    assert fields["expect_status"].kind == "json"
    agent = {f.name: f for f in build_fields(AgentConfig.model_json_schema(), {})}
    assert agent["system_prompt"].kind == "multiline" and agent["api_key_secret"].kind == "secret"
    assert field_label("api_key_secret", {}) == "API key secret"


def test_typed_text_becomes_config_values():
    number = {"type": "number"}
    assert parse_input(number, "2.5") == 2.5
    assert parse_input({"type": "integer"}, "3") == 3
    assert parse_input(number, "{{ input.n }}") == "{{ input.n }}"
    assert parse_input(number, "  ") is UNSET
    with pytest.raises(InputError, match="enter a number"):
        parse_input(number, "two")
    assert parse_input({"type": "array"}, "[1, 2]") == [1, 2]
    with pytest.raises(InputError, match="invalid JSON"):
        parse_input({"type": "object"}, "{nope")
    body = resolve(HttpRequestConfig.model_json_schema()["properties"]["body"], {})
    assert parse_input(body, '{"a": 1}') == {"a": 1}
    assert parse_input(body, "plain text") == "plain text"
    optional = resolve({"anyOf": [{"type": "number"}, {"type": "null"}], "default": None}, {})
    assert optional["type"] == "number" and optional["nullable"]


def test_a_choice_field_offers_the_rows_it_is_given_and_keeps_a_value_not_among_them():
    schema = {
        "properties": {
            "workflow_id": {"type": "string", "x-choices": "workflows"},
            "version": {"type": "integer", "x-choices": "workflow_versions", "default": 1},
        }
    }
    rows = {"workflow_id": [["a1", "Billing (v3)"]], "version": [["3", "v3"], ["1", "v1"]]}
    fields = {f.name: f for f in build_fields(schema, {"workflow_id": "zz", "version": 3}, choices=rows)}
    assert fields["workflow_id"].kind == "choice" and fields["version"].kind == "choice"
    assert fields["workflow_id"].choices == [["a1", "Billing (v3)"], ["zz", "zz (not in the list)"]]
    assert (fields["version"].value, fields["version"].choices) == ("3", [["3", "v3"], ["1", "v1"]])
    assert parse_input(schema["properties"]["version"], "3") == 3  # a version picked is a number
    with pytest.raises(InputError, match="pick one from the list"):
        parse_input(schema["properties"]["version"], "v3")
    assert parse_input(schema["properties"]["workflow_id"], "a1") == "a1"

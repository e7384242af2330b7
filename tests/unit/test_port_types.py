"""Ports have real types: what flows into what (one rule, engine.contract.port_types_compatible),
refusals with the reason in the validator and the editor alike, and few ports left `any`."""

from __future__ import annotations

import pytest

from app.pages.editor.graph import EditRefused, WorkingGraph, empty_definition
from engine.contract import PORT_TYPES, all_node_types, get_node_type, port_types_compatible
from engine.parse import parse_dict
from engine.validate import validate


@pytest.mark.parametrize(
    ("source", "target", "fits"),
    [
        ("object", "object", True),
        ("object", "json", True),
        ("object", "text", False),
        ("object", "list", False),
        ("documents", "list", True),
        ("embedding", "list", True),
        ("list", "documents", False),
        ("text", "number", False),
        ("number", "any", True),
        ("any", "messages", True),
        ("json", "text", False),
    ],
)
def test_what_flows_into_what(source: str, target: str, fits: bool) -> None:
    assert port_types_compatible(source, target) is fits


def test_the_new_types_are_known_ports():
    assert {"object", "list", "text", "number", "documents", "embedding", "messages"} <= set(PORT_TYPES)


def _agents_fed_by(source_type: str, source_port: str) -> dict:
    return {
        "name": "t",
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "src", "type": source_type, "config": {"url": "https://example.com"}},
            {"id": "agent", "type": "agent", "config": {"model": "m"}},
            {"id": "end", "type": "end"},
        ],
        "edges": [
            {"id": "a", "source": "start", "target": "src"},
            {
                "id": "b",
                "source": "src",
                "source_port": source_port,
                "target": "agent",
                "target_port": "history",
            },
            {"id": "c", "source": "agent", "target": "end"},
        ],
    }


def test_a_wrong_connection_is_refused_by_the_validator_and_the_editor_with_the_same_reason():
    report = validate(parse_dict(_agents_fed_by("tool.http", "out")))
    [issue] = [i for i in report.issues if i.code == "port_type_mismatch"]
    assert issue.edge_id == "b"
    assert issue.message == (
        'type mismatch: output "out" of "src" is object, input "history" of "agent" takes messages '
        "(an object output feeds json, object or any inputs)"
    )
    graph = WorkingGraph(parse_dict({**_agents_fed_by("tool.http", "out"), "edges": []}).to_dict())
    with pytest.raises(EditRefused) as refused:
        graph.connect("src", "out", "agent", "history")
    assert str(refused.value) == issue.message


def test_a_python_tools_result_is_typed_by_the_tools_return_annotation():
    node_type = get_node_type("tool.python")
    assert node_type is not None
    typed = {
        tool: node_type.output_ports(node_type.config_model.model_validate({"tool": tool}))["out"].type
        for tool in ("add", "text_template", "echo", "fail")
    }
    assert typed == {"add": "number", "text_template": "text", "echo": "any", "fail": "object"}
    graph = WorkingGraph(empty_definition("t"))
    graph, tool = graph.add_node("tool.python", 0, 0)
    graph = graph.update_node(tool, config={"tool": "add"})
    assert graph.canvas_node(tool)["outs"]["out"]["type"] == "number", "the canvas shows the typed port"
    graph, agent = graph.add_node("agent", 300, 0)
    with pytest.raises(EditRefused, match='is number, input "history" of "agent" takes messages'):
        graph.connect(tool, "out", agent, "history")


def test_few_outputs_stay_any_and_each_of_those_passes_on_whatever_comes():
    # Pass-through and user-code nodes cannot know their output's type before a run; start's edges
    # often only order the first steps, so its output (the run's inputs) feeds any input.
    generic = {"condition", "delay", "end", "merge", "start", "subworkflow", "tool.code", "tool.python"}
    built_in = [t for t in all_node_types() if t.run.__module__.startswith("nodes.")]  # not the tests' own
    untyped = {t.type for t in built_in for p in t.outputs.values() if p.type == "any"}
    assert untyped <= generic, untyped - generic
    typed = [p for t in built_in for p in t.outputs.values() if p.type != "any"]
    assert len(typed) >= 20

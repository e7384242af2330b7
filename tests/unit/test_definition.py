"""Definition models, the exported JSON schema and the Python DSL."""

from __future__ import annotations

import json

import pydantic
import pytest

from engine.definition import (
    SCHEMA_PATH,
    EdgeSpec,
    NodeSpec,
    RetryPolicy,
    WorkflowDefinition,
    workflow_json_schema,
    workflow_json_schema_text,
)
from engine.dsl import Node, Workflow
from engine.errors import DefinitionError
from engine.parse import parse_json


def test_full_dump_keeps_defaults_and_round_trips_losslessly() -> None:
    defn = WorkflowDefinition(name="w", nodes=[NodeSpec(id="s", type="start")])
    data = defn.to_dict()
    assert data["policy"]["max_visits"] == 10
    assert data["nodes"][0]["position"] == {"x": 0.0, "y": 0.0}
    assert data["error_handling"]["retry"]["max_attempts"] == 1
    assert WorkflowDefinition.model_validate(data) == defn
    assert json.loads(json.dumps(data)) == data


def test_unknown_keys_are_errors_so_typos_surface() -> None:
    with pytest.raises(pydantic.ValidationError, match="confg"):
        NodeSpec.model_validate({"id": "a", "type": "start", "confg": {}})
    with pytest.raises(pydantic.ValidationError):
        WorkflowDefinition.model_validate({"name": "w", "nodes": [], "polcy": {}})


@pytest.mark.parametrize("bad_id", ["", "1abc", "a b", "a.b", "x" * 65, "é"])
def test_node_ids_must_be_identifier_like(bad_id: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        NodeSpec(id=bad_id, type="start")


def test_numbers_are_bounded() -> None:
    with pytest.raises(pydantic.ValidationError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(pydantic.ValidationError):
        RetryPolicy(backoff_factor=0.5)
    with pytest.raises(pydantic.ValidationError):
        NodeSpec(id="a", type="delay", timeout_s=0)
    with pytest.raises(pydantic.ValidationError):
        NodeSpec.model_validate({"id": "a", "type": "delay", "position": {"x": float("nan")}})


def test_retry_backoff_grows_is_capped_and_jitters_between_half_and_all_of_it() -> None:
    retry = RetryPolicy(max_attempts=5, backoff_s=1, backoff_factor=3, max_backoff_s=20)
    assert [retry.backoff_ceiling(n) for n in (1, 2, 3, 4)] == [1, 3, 9, 20]
    assert [retry.backoff_range(n) for n in (1, 4)] == [(0.5, 1), (10, 20)]
    # Equal jitter: rand() in [0, 1) maps onto [ceiling / 2, ceiling).
    assert [retry.backoff_for(3, rand=lambda r=r: r) for r in (0.0, 0.5, 0.999)] == [
        4.5,
        6.75,
        4.5 + 4.5 * 0.999,
    ]
    delays = {retry.backoff_for(2) for _ in range(200)}
    assert all(1.5 <= d <= 3 for d in delays) and len(delays) > 100  # really random, within bounds
    # 1e300 ** 9999 overflows a float: the guard answers with the cap instead of raising.
    huge = RetryPolicy(backoff_factor=1e300, max_backoff_s=7)
    assert huge.backoff_ceiling(10_000) == 7 and 3.5 <= huge.backoff_for(10_000) <= 7


def test_node_and_edge_lookup() -> None:
    defn = WorkflowDefinition(
        name="w",
        nodes=[NodeSpec(id="s", type="start"), NodeSpec(id="e", type="end")],
        edges=[
            EdgeSpec(id="s-e", source="s", target="e"),
            EdgeSpec(id="err", source="s", source_port="error", target="e"),
        ],
    )
    assert defn.node("e").type == "end"
    assert defn.edge("s-e").target == "e"
    assert defn.edge("err").is_error_edge and not defn.edge("s-e").is_error_edge
    with pytest.raises(KeyError, match="nope"):
        defn.node("nope")


def test_exported_json_schema_is_up_to_date() -> None:
    stale = "docs/workflow-schema.json is stale; refresh it with: python -m engine.definition"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == workflow_json_schema_text(), stale
    schema = workflow_json_schema()
    assert schema["additionalProperties"] is False
    assert {"nodes", "name"} <= set(schema["required"])


DSL_EQUIVALENT_JSON = """
{
  "id": "triage", "name": "Triage", "mode": "dag",
  "nodes": [
    {"id": "start", "type": "start"},
    {"id": "fetch", "type": "tool.http", "config": {"url": "https://example.com"}, "timeout_s": 5,
     "retry": {"max_attempts": 3}},
    {"id": "check", "type": "condition", "config": {"expression": "value.ok"}, "position": {"x": 300, "y": 40}},
    {"id": "a", "type": "delay", "config": {"seconds": 0}},
    {"id": "b", "type": "delay", "config": {"seconds": 0}},
    {"id": "done", "type": "end"}
  ],
  "edges": [
    {"id": "start->fetch", "source": "start", "target": "fetch"},
    {"id": "fetch->check", "source": "fetch", "target": "check"},
    {"id": "fetch.error->done.in", "source": "fetch", "source_port": "error", "target": "done"},
    {"id": "check.true->a.in", "source": "check", "source_port": "true", "target": "a"},
    {"id": "check.false->b.in", "source": "check", "source_port": "false", "target": "b"},
    {"id": "a->done", "source": "a", "target": "done"},
    {"id": "b->done", "source": "b", "target": "done"}
  ]
}
"""


def test_dsl_builds_the_same_model_as_the_equivalent_json() -> None:
    with Workflow("Triage", id="triage") as wf:
        start = Node("start", "start")
        fetch = Node(
            "fetch", "tool.http", url="https://example.com", timeout_s=5, retry=RetryPolicy(max_attempts=3)
        )
        check = Node("check", "condition", expression="value.ok", position=(300, 40))
        a = Node("a", "delay", seconds=0)
        b = Node("b", "delay", seconds=0)
        done = Node("done", "end")
        start >> fetch >> check
        fetch.port("error") >> done.port("in")
        check.port("true") >> a
        check.port("false") >> b
        [a, b] >> done
    assert wf.definition() == parse_json(DSL_EQUIVALENT_JSON)


def test_dsl_fan_out_fan_in_and_chain_results() -> None:
    with Workflow("fan") as wf:
        s, x, y, m, e = (
            Node(i, t)
            for i, t in [("s", "start"), ("x", "delay"), ("y", "delay"), ("m", "merge"), ("e", "end")]
        )
        result = s >> [x, y] >> m.port("in") >> e
    assert result is e
    pairs = [(edge.source, edge.target) for edge in wf.definition().edges]
    assert pairs == [("s", "x"), ("s", "y"), ("x", "m"), ("y", "m"), ("m", "e")]


def test_dsl_conditional_edges_and_repeated_connections_get_unique_ids() -> None:
    with Workflow("loop", mode="state_machine") as wf:
        s, work, e = Node("s", "start"), Node("work", "delay"), Node("e", "end")
        s >> work
        work.when("value.n > 3") >> e
        work.when("value.n <= 3") >> work
        work.when("steps.work.visit > 9") >> e
    edges = wf.definition().edges
    assert [edge.condition for edge in edges] == [None, "value.n > 3", "value.n <= 3", "steps.work.visit > 9"]
    assert [edge.id for edge in edges] == ["s->work", "work->e", "work->work", "work->e#2"]


def test_dsl_config_named_like_a_node_option_goes_through_config() -> None:
    with Workflow("w") as wf:
        Node("s", "start")
        Node("h", "tool.http", config={"timeout_s": 3}, url="https://example.com", timeout_s=30)
    node = wf.definition().node("h")
    assert node.config == {"timeout_s": 3, "url": "https://example.com"} and node.timeout_s == 30


def test_dsl_misuse_raises_definition_errors() -> None:
    with pytest.raises(DefinitionError, match="outside"):
        Node("lost", "start")
    with Workflow("w") as wf, pytest.raises(DefinitionError, match="duplicate node id 'a'"):
        Node("a", "start")
        Node("a", "end")
    with Workflow("other"):
        stranger = Node("b", "end")
    with pytest.raises(DefinitionError, match="another workflow"):
        wf.nodes["a"] >> stranger
    with pytest.raises(DefinitionError, match="source side"):
        wf.nodes["a"] >> stranger.when("true")
    with pytest.raises(DefinitionError, match="cannot connect"):
        wf.nodes["a"] >> "b"


def test_dsl_bad_node_id_is_reported_by_path() -> None:
    with Workflow("w") as wf:
        Node("has space", "start")
    with pytest.raises(DefinitionError) as err:
        wf.definition()
    assert err.value.path == "workflow 'w': nodes[0].id"
    assert err.value.node_id == "has space"

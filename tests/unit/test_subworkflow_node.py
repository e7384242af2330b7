"""The `subworkflow` node without services: its ports come from the called version's schema and
outputs, its run returns the ChildRun the engine starts, and a template may bundle the workflows
it calls (the integration tests run all of it on real workers)."""

from __future__ import annotations

import uuid

import pytest

from engine.contract import CalledWorkflow, ChildRun, StepContext, get_node_type
from engine.errors import DefinitionError
from engine.parse import parse_dict
from engine.template_files import template_from_data
from nodes.subworkflow import subworkflow as node_module

CHILD_ID = str(uuid.uuid4())
CHILD = CalledWorkflow(
    CHILD_ID,
    2,
    str(uuid.uuid4()),
    "Quote",
    parse_dict(
        {
            "name": "Quote",
            "inputs": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "description": "what to price"},
                    "qty": {"type": "integer"},
                    "rush": {"type": "boolean"},
                    "lines": {"type": "array"},
                    "extra": {},
                },
                "required": ["sku", "qty"],
            },
            "outputs": {"price": "{{ 1 }}", "eta": "{{ 2 }}"},
            "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],
            "edges": [{"id": "e", "source": "start", "target": "end"}],
        }
    ),
)


@pytest.fixture(autouse=True)
def called(monkeypatch: pytest.MonkeyPatch) -> None:
    def lookup(workflow_id: str, version: int) -> CalledWorkflow | None:
        return CHILD if (workflow_id, version) == (CHILD_ID, 2) else None

    monkeypatch.setattr(node_module, "called_workflow", lookup)


def config(**extra):
    return node_module.SubWorkflowConfig(workflow_id=CHILD_ID, version=2, **extra)


def test_its_ports_are_the_called_versions_inputs_and_outputs() -> None:
    node_type = get_node_type("subworkflow")
    assert node_type is not None and node_type.calls_workflow is not None
    ins = node_type.input_ports(config(inputs={"qty": 3}))
    assert {name: (p.type, p.required) for name, p in ins.items()} == {
        "in": ("any", False),
        "sku": ("text", True),
        "qty": ("number", False),  # the config gives it
        "rush": ("boolean", False),
        "lines": ("list", False),
        "extra": ("any", False),
    }
    assert ins["sku"].description == "what to price"
    assert list(node_type.output_ports(config())) == ["price", "eta"]
    # A version that does not exist derives nothing: the declared ports stand.
    missing = node_module.SubWorkflowConfig(workflow_id=CHILD_ID, version=9)
    assert list(node_type.output_ports(missing)) == ["out"] and list(node_type.input_ports(missing)) == ["in"]
    assert node_type.calls_workflow({"workflow_id": CHILD_ID.upper(), "version": 2}) == (CHILD_ID, 2)
    assert node_type.calls_workflow({"workflow_id": "{{ input.wf }}"}) is None


def test_the_run_asks_for_a_child_run_with_the_inputs_from_ports_and_config() -> None:
    ctx = StepContext(run_id="r", step_id="s", node_id="call", node_type="subworkflow")
    result = node_module.subworkflow(
        ctx,
        config(inputs={"qty": 3, "rush": True}),
        {"in": {"sku": "A-1", "qty": 1, "noise": "x"}, "rush": False},
    )
    # From `in` only what the schema declares; the config over `in`; a connected port over both.
    assert result == ChildRun(CHILD_ID, 2, {"sku": "A-1", "qty": 3, "rush": False})


def test_workflow_id_and_version_are_fixed_and_checked() -> None:
    with pytest.raises(ValueError, match="is not a workflow id"):
        node_module.SubWorkflowConfig(workflow_id="billing")
    schema = node_module.SubWorkflowConfig.model_json_schema()["properties"]
    assert schema["workflow_id"]["x-fixed"] is True and schema["version"]["x-fixed"] is True


def _template(subworkflows) -> dict:
    return {
        "template": {
            "key": "calls",
            "title": "Calls",
            "description": "d",
            "category": "getting-started",
            "examples": [{"expect": {"checks": ["status == 'succeeded'"]}}],
        },
        "definition": {"name": "Calls", "nodes": [{"id": "start", "type": "start"}]},
        "subworkflows": subworkflows,
    }


def test_a_template_bundles_the_workflows_it_calls_and_bad_ones_are_refused() -> None:
    bundled = {
        "id": CHILD_ID,
        "name": "Quote",
        "definition": {"name": "Quote", "nodes": [{"id": "s", "type": "start"}]},
    }
    template = template_from_data(_template([bundled]), "calls.yaml")
    assert [(b.id, b.name) for b in template.subworkflows] == [(CHILD_ID, "Quote")]
    with pytest.raises(DefinitionError, match=r"subworkflows\[0\]\.id"):
        template_from_data(_template([{**bundled, "id": "quote"}]), "calls.yaml")
    with pytest.raises(DefinitionError, match="the same id is listed twice"):
        template_from_data(_template([bundled, bundled]), "calls.yaml")
    with pytest.raises(DefinitionError):
        template_from_data(_template([{**bundled, "definition": {"name": "no nodes"}}]), "calls.yaml")

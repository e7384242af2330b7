"""The `subworkflow` node: call another saved workflow, pinned at a version, as a child run.

Its input ports are the called version's run inputs (from its inputs schema, typed and required
as the schema says), its output ports the called version's run outputs (`outputs:`). The step
waits for the child run without holding a worker; the engine links parent step and child run
both ways, cancels the child with the parent, refuses recursion when validating and caps the
nesting depth when running (docs/nodes.md, "Sub-workflows").
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.contract import (
    CHOICES,
    FIXED,
    PORT_TYPES,
    CalledWorkflow,
    ChildRun,
    Port,
    StepContext,
    called_workflow,
    register,
)

# What a JSON Schema type becomes as a port type (the first one this engine knows wins).
_PORT_TYPES_OF = {
    "string": ("text",),
    "number": ("number",),
    "integer": ("number",),
    "boolean": ("boolean",),
    "object": ("object", "json"),
    "array": ("list", "json"),
}
_IN = Port("any", required=False, description="an object whose keys fill the called workflow's inputs")


class SubWorkflowConfig(BaseModel):
    """Config of `subworkflow`."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str = Field(
        description="The saved workflow to call (its id)",
        json_schema_extra={FIXED: True, CHOICES: "workflows"},
    )
    version: int = Field(
        1,
        ge=1,
        description="Its version, pinned",
        json_schema_extra={FIXED: True, CHOICES: "workflow_versions"},
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="Values of its inputs that no port brings (templated, e.g. {{ input.city }})",
    )

    @field_validator("workflow_id")
    @classmethod
    def _an_id(cls, value: str) -> str:
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            raise ValueError(f"{value!r} is not a workflow id; pick a saved workflow") from None


def _calls(config: Mapping[str, Any]) -> tuple[str, int] | None:
    """(workflow id, version) a raw config calls; None when it does not say (yet)."""
    workflow_id, version = config.get("workflow_id"), config.get("version", 1)
    if not isinstance(workflow_id, str) or not isinstance(version, int) or isinstance(version, bool):
        return None
    try:
        return str(uuid.UUID(workflow_id.strip())), version
    except ValueError:
        return None


def _port_type(schema: Any) -> str:
    kind = schema.get("type") if isinstance(schema, Mapping) else None
    for candidate in _PORT_TYPES_OF.get(kind, ()) if isinstance(kind, str) else ():
        if candidate in PORT_TYPES:
            return candidate
    return "any"


def input_ports(cfg: BaseModel) -> dict[str, Port]:
    """`in`, and one port per input of the called version (required unless the config gives it)."""
    called = _called(cfg)
    if called is None:
        return {}
    schema = called.inputs_schema
    found_properties, found_required = schema.get("properties"), schema.get("required")
    properties: Mapping[str, Any] = found_properties if isinstance(found_properties, Mapping) else {}
    required: list[Any] = found_required if isinstance(found_required, list) else []
    given = getattr(cfg, "inputs", None) or {}
    ports = {"in": _IN}
    for name, prop in properties.items():
        description = (
            str(prop.get("description") or prop.get("title") or "") if isinstance(prop, Mapping) else ""
        )
        ports[name] = Port(
            _port_type(prop), required=name in required and name not in given, description=description
        )
    return ports


def output_ports(cfg: BaseModel) -> dict[str, Port]:
    """One port per run output of the called version."""
    called = _called(cfg)
    if called is None:
        return {}
    return {
        name: Port("any", description=f'output "{name}" of {called.name}') for name in called.output_names
    }


def _called(cfg: BaseModel) -> CalledWorkflow | None:
    target = _calls({"workflow_id": getattr(cfg, "workflow_id", None), "version": getattr(cfg, "version", 1)})
    return None if target is None else called_workflow(*target)


@register(
    "subworkflow",
    category="control",
    label="Sub-workflow",
    config=SubWorkflowConfig,
    inputs={"in": _IN},
    outputs={"out": Port("any", description="the called workflow's outputs, when it declares none")},
    icon="workflow",
    dynamic_inputs=input_ports,
    dynamic_outputs=output_ports,
    calls_workflow=_calls,
)
def subworkflow(ctx: StepContext, cfg: SubWorkflowConfig, inputs: dict[str, Any]) -> ChildRun:
    """Run another saved workflow (a pinned version) as a child run and pass on its outputs."""
    called = _called(cfg)
    properties = called.inputs_schema.get("properties") if called is not None else None
    values: dict[str, Any] = {}
    whole = inputs.get("in")
    if isinstance(whole, Mapping):  # from `in`, what the called workflow declares (all when it declares none)
        values.update(
            {k: v for k, v in whole.items() if not isinstance(properties, Mapping) or k in properties}
        )
    values.update(cfg.inputs)
    values.update({k: v for k, v in inputs.items() if k != "in" and v is not None})
    return ChildRun(cfg.workflow_id, cfg.version, values)

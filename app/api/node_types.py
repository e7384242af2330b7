"""/api/node-types: the node types a definition may use, with their config JSON Schemas and ports."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.schemas import NodeTypePublic, PortPublic
from engine.contract import NodeType, Port, all_node_types, get_node_type
from engine.errors import ErrorCode, FlowloomError

router = APIRouter(prefix="/node-types", tags=["workflows"])


def _port(port: Port) -> PortPublic:
    return PortPublic(type=port.type, required=port.required, description=port.description)


def node_type_public(node_type: NodeType) -> NodeTypePublic:
    """A node type as the API returns it."""
    return NodeTypePublic(
        type=node_type.type, category=node_type.category, label=node_type.label,
        description=node_type.description, icon=node_type.icon,
        config_schema=node_type.config_model.model_json_schema(),
        inputs={name: _port(p) for name, p in node_type.inputs.items()},
        outputs={name: _port(p) for name, p in node_type.outputs.items()},
        branching=node_type.branching, dynamic_outputs=node_type.dynamic_outputs is not None,
        dynamic_inputs=node_type.dynamic_inputs is not None, calls_workflow=node_type.calls_workflow is not None,
        expression_fields=sorted(node_type.expression_fields), unrendered_fields=sorted(node_type.unrendered_fields),
    )  # fmt: skip


@router.get("", response_model=list[NodeTypePublic])
def list_node_types() -> list[NodeTypePublic]:
    """Every registered node type (built-in families and installed plug-ins), by type name."""
    return [node_type_public(t) for t in sorted(all_node_types(), key=lambda t: t.type)]


@router.get(
    "/{node_type}",
    response_model=NodeTypePublic,
    responses={404: {"description": "No node type has this name (not_found)"}},
)
def read_node_type(node_type: str) -> NodeTypePublic:
    """One node type, e.g. `tool.http`."""
    found = get_node_type(node_type)
    if found is None:
        raise FlowloomError(f"no node type is named {node_type[:100]!r}", code=ErrorCode.NOT_FOUND)
    return node_type_public(found)

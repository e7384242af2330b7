"""What an agent may call: registered Python tools and tool nodes, each with a JSON schema.

A Python tool (registered with the contract's `tool`) is offered under its own name with the schema of its
signature. A tool node type (category "tool", e.g. tool.http) is offered as `tool_http` with
its config model's schema as the arguments; calling it runs the node with the agent's step
context, so the workflow's egress policy and secrets rules still apply.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from engine.contract import (
    ErrorCode,
    NodeType,
    StepContext,
    StepError,
    Suspend,
    Tool,
    all_node_types,
    all_tools,
    get_node_type,
    get_tool,
)
from nodes.agent.mcp_tools import MCP_TOOL_SEPARATOR, call_server_tool, list_server_tools, server_label

# tool.python only wraps the Python tools, which are offered directly.
_NOT_OFFERED = {"tool.python"}
_FUNCTION_NAME = re.compile(r"[^A-Za-z0-9_-]")


def function_name(name: str) -> str:
    """The name a model sees: providers allow letters, digits, '_' and '-' (so tool.http -> tool_http)."""
    return _FUNCTION_NAME.sub("_", name)[:64]


@dataclass(frozen=True)
class AgentTool:
    """One callable offered to a model."""

    name: str  # as configured: a Python tool name or a node type
    function: str  # as the model sees it
    description: str
    parameters: dict[str, Any]
    tool: Tool | None = None
    node_type: NodeType | None = None
    mcp_server: str | None = None  # an MCP server's entry in mcp_servers, with mcp_tool its tool's name
    mcp_tool: str | None = None

    def spec(self) -> dict[str, Any]:
        return {"name": self.function, "description": self.description, "parameters": self.parameters}

    async def call(self, ctx: StepContext, args: Mapping[str, Any]) -> Any:
        """Run the tool; StepError for bad arguments or a failure."""
        if self.tool is not None:
            return await self.tool.call(ctx, args)
        if self.mcp_server is not None and self.mcp_tool is not None:
            return await call_server_tool(ctx, self.mcp_server, self.mcp_tool, args)
        assert self.node_type is not None
        try:
            cfg = self.node_type.config_model.model_validate(dict(args))
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "arguments"
            raise StepError(f"tool {self.name!r}: {where}: {first['msg']}", retryable=False) from exc
        run = self.node_type.run
        # The model chose these arguments: it may not pick a credential from the secrets store.
        with ctx.secrets_refused("a tool call chosen by a model cannot use secrets; use a tool node instead"):
            result = (
                await run(ctx, cfg, {})
                if self.node_type.is_async
                else await asyncio.to_thread(run, ctx, cfg, {})
            )
        if isinstance(result, Suspend):
            raise StepError(
                f"tool {self.name!r} wants to wait ({result.kind}); agents cannot wait", retryable=False
            )
        if isinstance(result, dict) and set(result) == {"out"}:
            return result["out"]
        return result


def _without_secret_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """The config schema offered to a model, minus fields that name secrets (it may not use them)."""
    defs = schema.get("$defs", {})

    def names_secret(prop: dict[str, Any]) -> bool:
        options = [prop, *prop.get("anyOf", [])]
        refs = [defs.get(str(o.get("$ref", "")).rsplit("/", 1)[-1], {}) for o in options if "$ref" in o]
        inner = [p for r in refs for p in r.get("properties", {}).values()]
        return any(o.get("format") == "secret" or o.get("x-secret-values") for o in options + inner)

    props = {k: v for k, v in schema.get("properties", {}).items() if not names_secret(v)}
    required = [r for r in schema.get("required", []) if r in props]
    offered = {k: v for k, v in schema.items() if k not in ("title", "properties", "required")}
    return {**offered, "properties": props, **({"required": required} if required else {})}


def _node_tools() -> dict[str, NodeType]:
    return {n.type: n for n in all_node_types() if n.category == "tool" and n.type not in _NOT_OFFERED}


def offered_tool_names() -> list[str]:
    """Every name an agent's `tools` list may hold."""
    return sorted([t.name for t in all_tools()] + list(_node_tools()))


def resolve_tools(names: list[str]) -> dict[str, AgentTool]:
    """The tools named in an agent's config, keyed by the function name the model uses."""
    resolved: dict[str, AgentTool] = {}
    for name in names:
        tool = get_tool(name)
        node_type = get_node_type(name) if tool is None else None
        if tool is not None:
            entry = AgentTool(name, function_name(name), tool.description, tool.parameters, tool=tool)
        elif node_type is not None and name in _node_tools():
            schema = _without_secret_fields(node_type.config_model.model_json_schema())
            entry = AgentTool(
                name,
                function_name(name),
                node_type.description or node_type.label,
                schema,
                node_type=node_type,
            )
        else:
            raise StepError(
                f"tools: unknown tool {name!r}; known: {', '.join(offered_tool_names())}",
                retryable=False,
                code=ErrorCode.UNKNOWN_TOOL,
                field="tools",
            )
        if entry.function in resolved:
            raise StepError(f"tools: {name!r} is listed twice", retryable=False)
        resolved[entry.function] = entry
    return resolved


async def resolve_mcp_tools(ctx: StepContext, servers: list[str]) -> dict[str, AgentTool]:
    """The tools of the agent's MCP servers, keyed by `<server>__<tool>` (the model's name for them)."""
    resolved: dict[str, AgentTool] = {}
    for entry in servers:
        label = server_label(entry)
        for found in await list_server_tools(ctx, entry):
            function = function_name(f"{label}{MCP_TOOL_SEPARATOR}{found['name']}")
            resolved[function] = AgentTool(
                f"{label}/{found['name']}", function, found["description"], found["parameters"],
                mcp_server=entry, mcp_tool=found["name"],
            )  # fmt: skip
    return resolved

"""Tools of MCP servers, offered to an agent next to its Python tools and tool nodes.

An agent's `mcp_servers` lists servers by the name the operator gave them in FLOWLOOM_MCP_SERVERS
(`{"command": [...], "env": {...}, "cwd": ...}` for a stdio server the worker starts, or
`{"url": ...}` for streamable HTTP), or as an `http(s)://` URL of a streamable-HTTP server. A
definition never carries a command: starting a program on the worker is the operator's decision.
Every HTTP request (and redirect) goes through the step's egress policy and the destination's
circuit breaker (engine.contract.egress_httpx_client).

At the step's start each server's tools are listed; the model sees them as `<server>__<tool>`
with the server's JSON schemas, and approval lists name them `<server>/<tool>`. Each call opens
its own session (connect, initialize, call, close), so a call after a human's approval, in
another worker process, needs nothing kept from before.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from engine.contract import ErrorCode, StepContext, StepError, egress_httpx_client, node_environment

MCP_TOOL_SEPARATOR = "__"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
CALL_TIMEOUT_S = 60.0


def is_url(entry: str) -> bool:
    return entry.startswith(("http://", "https://"))


def server_label(entry: str) -> str:
    """How tools of a server are prefixed: its configured name, or `mcp<n>`-free host of a URL."""
    if not is_url(entry):
        return entry
    host = re.sub(r"^https?://", "", entry).split("/", 1)[0].split(":", 1)[0]
    return re.sub(r"[^A-Za-z0-9_-]", "_", host)[:40] or "mcp"


def check_entry(entry: str, servers: Mapping[str, Any]) -> str | None:
    """What is wrong with an `mcp_servers` entry, or None."""
    if is_url(entry):
        return None
    if not _NAME.match(entry):
        return f"{entry!r} is neither a server name (letters, digits, _ and -) nor an http(s):// URL"
    if entry not in servers:
        known = ", ".join(sorted(servers)) or "none configured"
        return f"unknown MCP server {entry!r}; add it to FLOWLOOM_MCP_SERVERS (known: {known})"
    spec = servers[entry]
    if not isinstance(spec, Mapping) or not (
        isinstance(spec.get("command"), list) or isinstance(spec.get("url"), str)
    ):
        return f"FLOWLOOM_MCP_SERVERS[{entry!r}] needs a command (list) or a url"
    return None


@asynccontextmanager
async def session_for(ctx: StepContext, entry: str) -> AsyncIterator[Any]:
    """An initialized MCP ClientSession with the server `entry` names."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client

    servers = node_environment().mcp_servers
    problem = check_entry(entry, servers)
    if problem:
        raise StepError(f"mcp_servers: {problem}", retryable=False, field="mcp_servers")
    spec = {"url": entry} if is_url(entry) else dict(servers[entry])
    if "url" in spec:
        client = egress_httpx_client(ctx.http.policy, timeout=CALL_TIMEOUT_S)
        async with client, streamable_http_client(str(spec["url"]), http_client=client) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session
        return
    command = [str(part) for part in spec["command"]]
    env = spec.get("env") or {}
    env = {str(k): str(v) for k, v in env.items()} if isinstance(env, Mapping) else {}
    params = StdioServerParameters(
        command=command[0], args=command[1:], env=env or None,
        cwd=spec.get("cwd"),
    )  # fmt: skip
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def list_server_tools(ctx: StepContext, entry: str) -> list[dict[str, Any]]:
    """[{name, description, parameters}] of a server's tools; StepError when it cannot be reached."""
    try:
        async with session_for(ctx, entry) as session:
            listed = await session.list_tools()
    except StepError:
        raise
    except Exception as exc:  # the SDK raises its own and anyio's errors, often wrapped in groups
        raise StepError(
            f"mcp_servers: {entry!r} could not be listed: {_reason(exc)}", retryable=True, field="mcp_servers"
        ) from None
    return [
        {
            "name": t.name,
            "description": t.description or t.title or t.name,
            "parameters": dict(t.inputSchema or {}),
        }
        for t in listed.tools
    ]


async def call_server_tool(ctx: StepContext, entry: str, tool: str, arguments: Mapping[str, Any]) -> Any:
    """The tool's result: its structured content, else its text; StepError when the tool failed."""
    try:
        async with session_for(ctx, entry) as session:
            result = await session.call_tool(tool, dict(arguments))
    except StepError:
        raise
    except Exception as exc:
        raise StepError(f"MCP tool {entry}/{tool}: {_reason(exc)}", retryable=True) from None
    text = "\n".join(
        getattr(part, "text", "") for part in result.content if getattr(part, "type", "") == "text"
    )
    if result.isError:
        raise StepError(
            f"MCP tool {entry}/{tool} failed: {text or 'no detail'}",
            retryable=False,
            code=ErrorCode.STEP_FAILED,
        )
    if result.structuredContent is not None:
        return result.structuredContent
    return text


def _reason(exc: BaseException) -> str:
    """The innermost message of an exception group (anyio wraps the transport's failure)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"

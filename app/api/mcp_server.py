"""Flowloom as an MCP server: every saved workflow is a tool at /api/mcp (streamable HTTP).

An MCP client (Claude Desktop, an IDE, another agent) connects with a Flowloom API key
(`Authorization: Bearer <key>`, operator role or above; a browser session does not count). It
lists one tool per workflow that has a saved version: the tool's name is the workflow's name made
safe for MCP (letters, digits, `_`, `-`; a short id suffix when two names collide), its
description the workflow's description, its input schema the workflow's run-inputs JSON Schema.
Calling a tool starts a run of the workflow's latest saved version (Flowloom has no publishing
step yet) on the workers, as the key's owner, and answers with the run's outputs as JSON once it
ends (or an error result when it fails, is cancelled or passes FLOWLOOM_MCP_WAIT_S).

The server is stateless (a fresh MCP transport per request, JSON answers, no session ids), so any
web process can answer any request. The official `mcp` package does the protocol.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.api.openapi_doc import package_version
from app.auth.policy import Role, allows
from app.auth.principal import Principal
from app.problems import problem_response
from engine import publishing, run_events, workflows
from engine.errors import ErrorCode, FlowloomError
from engine.runs import get_run, start_run
from engine.settings import get_settings
from models.db import get_engine

log = logging.getLogger(__name__)

PATH = "/api/mcp"
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_caller: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "flowloom_mcp_caller", default=None
)


@dataclass(frozen=True)
class WorkflowTool:
    """A saved workflow as an MCP tool."""

    name: str
    workflow_id: str
    title: str
    description: str
    input_schema: dict[str, Any]


def tool_name(workflow_name: str) -> str:
    """A workflow's name as MCP allows tool names: `Order intake (v2)` -> `order_intake_v2`."""
    return _TOOL_NAME.sub("_", workflow_name.strip().lower()).strip("_")[:56] or "workflow"


def workflow_tools(workspace_id: str, database_url: str | None = None) -> list[WorkflowTool]:
    """Every workflow of the workspace (the API key's) with a published version, as a tool; names
    made unique with a short id suffix."""
    with get_engine(database_url or get_settings().database_url).connect() as conn:
        rows = publishing.published_definitions(
            conn, workspace_id=workspace_id
        )  # the published versions only
    taken: dict[str, int] = {}
    for _, name, _ in rows:
        taken[tool_name(name)] = taken.get(tool_name(name), 0) + 1
    found = []
    for workflow_id, name, definition in rows:
        base = tool_name(name)
        unique = base if taken[base] == 1 else f"{base}_{workflow_id.replace('-', '')[:6]}"
        schema = definition.get("inputs") or {}
        if schema.get("type") != "object":
            schema = {
                "type": "object",
                "properties": {},
                **({"description": "no inputs"} if not schema else {}),
            }
        description = (
            str(definition.get("description") or "").strip() or f'Run the Flowloom workflow "{name}".'
        )
        found.append(WorkflowTool(unique, workflow_id, name, description, schema))
    return found


def _server() -> Server:
    server: Server = Server("flowloom", version=package_version())

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        principal = _caller.get()
        if principal is None:  # the route refuses callers without a key before this runs
            raise FlowloomError("sign in with an API key", code=ErrorCode.SIGN_IN_REQUIRED)
        found = await run_in_threadpool(workflow_tools, principal.workspace_id)
        return [
            types.Tool(name=t.name, title=t.title, description=t.description, inputSchema=t.input_schema)
            for t in found
        ]

    @server.call_tool(validate_input=True)
    async def call_tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        principal = _caller.get()
        if principal is None:  # the route refuses callers without a key before this runs
            raise FlowloomError("sign in with an API key", code=ErrorCode.SIGN_IN_REQUIRED)
        tools = {t.name: t for t in await run_in_threadpool(workflow_tools, principal.workspace_id)}
        chosen = tools.get(name)
        if chosen is None:
            raise ValueError(f"unknown tool {name!r}; list the tools to see the workflows")
        run_id = await run_in_threadpool(_start, chosen, arguments, principal)
        status = await _wait_for_end(run_id, get_settings().mcp_wait_s)
        view = await run_in_threadpool(partial(get_run, run_id, workspace_id=principal.workspace_id))
        if status != "succeeded" or view is None:
            detail = (view.error if view else None) or f"the run is {status}"
            raise ValueError(f"run {run_id} {status}: {detail}")
        return {"run_id": run_id, "outputs": view.outputs or {}}

    return server


def _start(tool: WorkflowTool, arguments: dict[str, Any], principal: Principal) -> str:
    saved = workflows.saved_version(tool.workflow_id, workspace_id=principal.workspace_id)
    if saved is None:
        raise ValueError(f"workflow {tool.title!r} has no saved version any more")
    return start_run(
        saved.definition, arguments, workflow_id=saved.workflow_id, version_id=saved.version_id,
        created_by=principal.user_id, started_by=principal.started_by, started_via="mcp", actor=principal.actor,
    )  # fmt: skip


async def _wait_for_end(run_id: str, timeout: float) -> str | None:
    deadline = time.monotonic() + timeout
    while True:
        view = await run_in_threadpool(get_run, run_id)
        status = view.status if view else None
        left = deadline - time.monotonic()
        if status is None or status in run_events.TERMINAL_RUN or left <= 0:
            return status
        await run_events.wait_async(run_id, min(left, 2.0))


_SERVER = _server()


class McpEndpoint:
    """The ASGI app behind /api/mcp: checks the caller, then serves one stateless MCP request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal: Principal | None = scope.get("state", {}).get("principal")
        if principal is None or principal.via != "api_key":
            response = problem_response(
                ErrorCode.SIGN_IN_REQUIRED, "send a Flowloom API key as 'Authorization: Bearer <key>'"
            )
            await response(scope, receive, send)
            return
        if not allows(principal.role, Role.OPERATOR):
            response = problem_response(ErrorCode.FORBIDDEN, "running workflows needs the operator role")
            await response(scope, receive, send)
            return
        token = _caller.set(principal)
        try:
            await _serve(scope, receive, send)
        finally:
            _caller.reset(token)


async def _serve(scope: Scope, receive: Receive, send: Send) -> None:
    transport = StreamableHTTPServerTransport(
        mcp_session_id=None,
        is_json_response_enabled=True,
        event_store=None,
        # The app's own Host allow-list and cross-site checks run before this; the SDK's would
        # need the public host name repeated here.
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    async def run_server(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with transport.connect() as (read_stream, write_stream):
            task_status.started()
            await _SERVER.run(
                read_stream, write_stream, _SERVER.create_initialization_options(), stateless=True
            )

    async with anyio.create_task_group() as group:
        await group.start(run_server)
        try:
            await transport.handle_request(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await transport.terminate()
        group.cancel_scope.cancel()


def route() -> Route:
    """The /api/mcp route (GET, POST, DELETE as the streamable HTTP transport uses them)."""
    return Route(PATH, endpoint=McpEndpoint(), methods=["GET", "POST", "DELETE"])

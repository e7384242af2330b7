"""Flowloom as an MCP server (/api/mcp), spoken to by the official `mcp` package's client over
streamable HTTP on loopback: the API app served by uvicorn, runs on real workers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from app.api.mcp_server import tool_name
from app.db import db_session
from engine import workflows
from tests.integration.engine_helpers import node, workflow


@pytest.fixture(scope="module")
def served_api() -> Iterator[str]:
    """The API app on a loopback port, as a web process serves it."""
    from app.api.main import api

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def save_workflow(name: str, definition: Any) -> str:
    with db_session() as session:
        created = workflows.create_workflow(session, name)
        workflows.save_version(session, created.id, definition.model_dump(mode="json"))
        return str(created.id)


def doubler(name: str):
    return workflow(
        [
            node("start", "start"),
            node("twice", "tool.python", tool="add", args={"a": "{{ input.n }}", "b": "{{ input.n }}"}),
            node("end", "end"),
        ],
        [("start", "twice"), ("twice", "end")],
        id=f"mcp-{uuid.uuid4().hex[:6]}",
        name=name,
        description="Doubles n.",
        inputs={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        outputs={"doubled": "{{ steps.twice.outputs.out }}"},
    )


async def talk(url: str, key: str | None, action) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        async with streamable_http_client(f"{url}/api/mcp", http_client=client) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await action(session)


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_an_mcp_client_lists_workflows_as_tools_and_calling_one_runs_it(served_api: str, api_client) -> None:
    operator = api_client("operator")
    name = f"Doubler {uuid.uuid4().hex[:6]}"
    save_workflow(name, doubler(name))

    async def use(session: ClientSession) -> tuple[Any, Any, Any]:
        listed = await session.list_tools()
        called = await session.call_tool(tool_name(name), {"n": 21})
        refused = await session.call_tool(tool_name(name), {"n": "twenty"})
        return listed, called, refused

    listed, called, refused = asyncio.run(talk(served_api, operator.api_key, use))
    [mine] = [t for t in listed.tools if t.name == tool_name(name)]
    assert mine.description == "Doubles n." and mine.title == name
    assert mine.inputSchema["properties"] == {"n": {"type": "integer"}} and mine.inputSchema["required"] == [
        "n"
    ]
    assert not called.isError, called.content
    result = called.structuredContent
    assert result["outputs"] == {"doubled": 42}
    run = operator.get(f"/api/runs/{result['run_id']}").json()
    assert run["status"] == "succeeded" and run["started_via"] == "mcp"
    assert run["started_by"].startswith("api_key:")
    assert refused.isError  # the input schema is checked before a run starts


def test_without_a_key_or_with_a_viewers_key_the_server_refuses(served_api: str, api_client) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"accept": "application/json, text/event-stream"}
    anonymous = httpx.post(f"{served_api}/api/mcp", json=body, headers=headers, timeout=10)
    assert anonymous.status_code == 401
    viewer = api_client("viewer")
    seen = httpx.post(
        f"{served_api}/api/mcp",
        json=body,
        headers={**headers, "authorization": f"Bearer {viewer.api_key}"},
        timeout=10,
    )
    assert seen.status_code == 403


def test_tool_names_are_safe_and_unique() -> None:
    assert tool_name("Order intake (v2)") == "order_intake_v2"
    assert tool_name("  ??? ") == "workflow"
    assert len(tool_name("x" * 300)) <= 56

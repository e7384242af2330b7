"""An agent calling tools of MCP servers (tests/fixtures/mcp_tool_server.py, built with the official
`mcp` package) on real workers: over stdio (a server the operator configured by name) and over
streamable HTTP (a URL, through the egress policy), with a person approving a call."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.approvals import Approver
from engine.approvals import decide as decide_approval
from engine.runs import start_run
from engine.settings import get_settings
from models.db import get_engine
from tests.conftest import MCP_CALL_LOG, REPO_ROOT, SUITE_MCP_SERVER
from tests.fixtures.scripted_llm import answer, scripted_llm, tool_call  # noqa: F401
from tests.integration.engine_helpers import (
    agent_approval_flow,
    node,
    steps_by_node,
    wait_for_run,
    wait_for_step,
    workflow,
)

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")


def calls_since(mark: int) -> list[dict]:
    if not MCP_CALL_LOG.exists():
        return []
    return [json.loads(line) for line in MCP_CALL_LOG.read_text().splitlines()[mark:]]


def log_mark() -> int:
    return len(MCP_CALL_LOG.read_text().splitlines()) if MCP_CALL_LOG.exists() else 0


def agent_flow(llm, allowed: list[str], **config):
    return workflow(
        [
            node("start", "start"),
            node("agent", "agent", model="scripted", base_url=llm.base_url, prompt="{{ input.q }}", **config),
            node("end", "end"),
        ],
        [("start", "agent"), ("agent", "end")],
        id=f"mcp-{uuid.uuid4().hex[:6]}",
        policy={"egress": {"allowed_hosts": allowed}},
    )


def test_an_agent_calls_a_tool_of_a_configured_stdio_server(scripted_llm) -> None:  # noqa: F811
    mark = log_mark()
    scripted_llm.script(tool_call(f"{SUITE_MCP_SERVER}__multiply", {"a": 6, "b": 7}), answer("6 x 7 = 42"))
    view = wait_for_run(
        start_run(
            agent_flow(scripted_llm, [scripted_llm.host], mcp_servers=[SUITE_MCP_SERVER]), {"q": "6 x 7?"}
        ),
        timeout=90,
    )
    assert view.status == "succeeded", view.error
    offered = {t["function"]["name"]: t["function"] for t in scripted_llm.requests[0]["body"]["tools"]}
    assert set(offered) == {f"{SUITE_MCP_SERVER}__multiply", f"{SUITE_MCP_SERVER}__delete_record"}
    assert offered[f"{SUITE_MCP_SERVER}__multiply"]["parameters"]["required"] == ["a", "b"]
    assert offered[f"{SUITE_MCP_SERVER}__multiply"]["description"] == "Multiply two integers."
    assert calls_since(mark) == [{"tool": "multiply", "arguments": {"a": 6, "b": 7}}]
    told = scripted_llm.requests[1]["body"]["messages"][-1]
    assert told["role"] == "tool" and "42" in told["content"]
    calls = steps_by_node(view)["agent"]["outputs"]["agent"]["tool_calls"]
    assert [c["tool"] for c in calls] == [f"{SUITE_MCP_SERVER}/multiply"]


def test_an_unknown_server_name_is_refused_naming_the_field(scripted_llm) -> None:  # noqa: F811
    asked = len(scripted_llm.requests)
    view = wait_for_run(
        start_run(agent_flow(scripted_llm, [scripted_llm.host], mcp_servers=["nosuch"]), {"q": "hi"}),
        timeout=60,
    )
    assert view.status == "failed"
    assert "unknown MCP server 'nosuch'" in steps_by_node(view)["agent"]["error"]
    assert len(scripted_llm.requests) == asked  # refused before the model was asked


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The fixture server over streamable HTTP on a loopback port; (its /mcp URL, its call log)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "calls.jsonl"
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests" / "fixtures" / "mcp_tool_server.py"), "http", str(port)],
        env={"MCP_CALL_LOG": str(log), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp", log
    process.terminate()
    process.wait(10)


def test_an_agent_calls_a_tool_of_a_streamable_http_server_through_the_egress_policy(
    scripted_llm,  # noqa: F811
    http_server,
) -> None:
    url, log = http_server
    host = url.split("/")[2]
    scripted_llm.script(tool_call("127_0_0_1__multiply", {"a": 3, "b": 5}), answer("15"))
    view = wait_for_run(
        start_run(agent_flow(scripted_llm, [scripted_llm.host, host], mcp_servers=[url]), {"q": "3 x 5?"}),
        timeout=90,
    )
    assert view.status == "succeeded", view.error
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        {"tool": "multiply", "arguments": {"a": 3, "b": 5}}
    ]


class Canary:
    """A loopback listener that counts the connections it is offered."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()


def test_an_mcp_url_the_egress_policy_does_not_allow_is_refused_before_a_connection(scripted_llm) -> None:  # noqa: F811
    canary = Canary()
    try:
        url = f"http://127.0.0.1:{canary.port}/mcp"
        view = wait_for_run(
            start_run(agent_flow(scripted_llm, [scripted_llm.host], mcp_servers=[url]), {"q": "hi"}),
            timeout=60,
        )
        assert view.status == "failed"
        error = steps_by_node(view)["agent"]["error"]
        assert "127.0.0.1" in error and ("not allowed" in error or "egress" in error.lower()), error
        assert canary.accepted == 0
    finally:
        canary.stop.set()
        canary.sock.close()


def test_an_mcp_tool_that_needs_approval_runs_only_after_a_person_approves(scripted_llm) -> None:  # noqa: F811
    mark = log_mark()
    scripted_llm.script(
        tool_call(f"{SUITE_MCP_SERVER}__delete_record", {"record_id": "r-7"}), answer("Deleted r-7.")
    )
    agent_cfg = {
        "model": "scripted", "base_url": scripted_llm.base_url, "prompt": "{{ input.q }}",
        "mcp_servers": [SUITE_MCP_SERVER], "approval_tools": [f"{SUITE_MCP_SERVER}/delete_record"],
    }  # fmt: skip
    defn = agent_approval_flow(agent_cfg, [scripted_llm.host], flow_id=f"mcp-approval-{uuid.uuid4().hex[:6]}")
    run_id = start_run(defn, {"q": "delete r-7"})
    wait_for_step(run_id, "review", "waiting", timeout=90)
    assert calls_since(mark) == []  # not called before the decision
    with get_engine(get_settings().database_url).connect() as conn:
        approval_id = conn.execute(
            text("SELECT id FROM approvals WHERE run_id = :r AND status = 'pending'"), {"r": run_id}
        ).scalar_one()
    person = Approver(user_id="alice", email="alice@example.test", role="operator", email_verified=True)
    decide_approval(str(approval_id), person, action="approved")
    view = wait_for_run(run_id, timeout=90)
    assert view.status == "succeeded", view.error
    assert calls_since(mark) == [{"tool": "delete_record", "arguments": {"record_id": "r-7"}}]

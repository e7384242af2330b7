"""The agent with `stream` on, on real workers: tool calls assembled from streamed deltas, and the
answer's tokens written to the outbox as agent.stream events tagged with their model call, while
the model is still writing (OpenAI-compatible and Anthropic providers)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from engine import run_events
from engine.runs import start_run
from engine.settings import get_settings
from models.db import get_engine
from tests.fixtures.scripted_llm import answer, scripted_llm, tool_call  # noqa: F401
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "clean_db")


def _stream_events(run_id: str) -> list[dict]:
    with get_engine(get_settings().database_url).connect() as conn:
        rows = conn.execute(
            text("SELECT payload FROM events WHERE run_id = :r AND event_type = 'agent.stream' ORDER BY id"),
            {"r": run_id},
        ).all()
    return [r.payload["data"] for r in rows]


def test_a_streaming_agent_calls_tools_from_streamed_deltas_and_streams_its_answer(scripted_llm):  # noqa: F811
    scripted_llm.script(tool_call("add", {"a": 2, "b": 3}), answer("2 + 3 = 5, as the tool says."))
    defn = workflow(
        [
            node("start", "start"),
            node(
                "agent",
                "agent",
                model="scripted",
                base_url=scripted_llm.base_url,
                prompt="{{ input.q }}",
                tools=["add"],
                stream=True,
            ),  # fmt: skip
            node("end", "end"),
        ],
        [("start", "agent"), ("agent", "end")],
        policy={"egress": {"allowed_hosts": [scripted_llm.host]}},
    )
    scripted_llm.gate = threading.Event()  # the server holds its answer after the first token
    try:
        run_id = start_run(defn, {"q": "What is 2 + 3?"})
        first = _first_stream_event(run_id)
        assert first["chunks"] == ["2 "] and _step_status(run_id, "agent") == "running"  # still writing
    finally:
        scripted_llm.gate.set()
    view = wait_for_run(run_id)
    assert view.status == "succeeded", view.error
    out = steps_by_node(view)["agent"]["outputs"]
    assert out["out"]["text"] == "2 + 3 = 5, as the tool says."
    assert out["agent"]["tool_calls"][0]["arguments"] == {"a": 2, "b": 3}  # from two argument deltas
    assert out["out"]["usage"]["total_tokens"] == 31  # 15 + 16, from the streams' usage chunks
    first, second = scripted_llm.requests
    assert first["body"]["stream"] is True and first["body"]["tools"]
    assert second["body"]["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}

    events = _stream_events(view.id)
    assert {e["iteration"] for e in events} == {2}  # the tool call itself carried no text
    assert "".join(c for e in events for c in e["chunks"]) == out["out"]["text"]
    assert events[0]["index"] == 0 and len(events[0]["chunks"]) == 1  # the first token went out at once
    assert all(e["node_id"] == "agent" and e["agent_id"] == out["agent"]["id"] for e in events)


def test_an_anthropic_agent_streams_its_answer_while_the_model_is_still_writing_it(scripted_llm):  # noqa: F811
    tool_use = {
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 40, "b": 2}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 20, "output_tokens": 8},
    }
    final = {
        "content": [{"type": "text", "text": "40 + 2 = 42, as the tool says."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 30, "output_tokens": 11},
    }
    scripted_llm.script(tool_use, final)
    scripted_llm.gate = threading.Event()  # the server holds its answer after the first token
    defn = workflow(
        [
            node("start", "start"),
            node(
                "agent",
                "agent",
                provider="anthropic",
                model="scripted",
                base_url=scripted_llm.base_url,
                prompt="{{ input.q }}",
                tools=["add"],
                stream=True,
            ),  # fmt: skip
            node("end", "end"),
        ],
        [("start", "agent"), ("agent", "end")],
        policy={"egress": {"allowed_hosts": [scripted_llm.host]}},
    )
    try:
        run_id = start_run(defn, {"q": "What is 40 + 2?"})
        first = _first_stream_event(run_id)
        # Written while the model still holds the rest of its answer: the step is still running.
        assert first["chunks"] == ["40 "] and first["index"] == 0 and first["iteration"] == 2
        assert _step_status(run_id, "agent") == "running"
        assert len(scripted_llm.requests) == 2  # the held reply is the answer, after the tool call
    finally:
        scripted_llm.gate.set()

    view = wait_for_run(run_id)
    assert view.status == "succeeded", view.error
    out = steps_by_node(view)["agent"]["outputs"]
    assert out["out"]["text"] == "40 + 2 = 42, as the tool says."
    assert out["agent"]["tool_calls"][0]["arguments"] == {"a": 40, "b": 2}  # from two JSON pieces
    usage = out["out"]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (50, 19)  # message_start + message_delta
    first_request, second_request = scripted_llm.requests
    assert first_request["path"] == "/v1/messages" and first_request["body"]["stream"] is True
    assert second_request["body"]["messages"][-1]["content"][0]["type"] == "tool_result"
    events = _stream_events(view.id)
    assert "".join(c for e in events for c in e["chunks"]) == out["out"]["text"]
    assert len(events) >= 2  # the rest came after the gate opened, in later batches


def _first_stream_event(run_id: str, timeout: float = 60.0) -> dict:
    """The run's first agent.stream event, waiting on the run's event notifications for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _stream_events(run_id)
        if events:
            return events[0]
        run_events.wait(run_id, timeout=1.0)
    raise AssertionError(f"no agent.stream event for run {run_id}")


def _step_status(run_id: str, node_id: str) -> str:
    with get_engine(get_settings().database_url).connect() as conn:
        query = text("SELECT status FROM step_runs WHERE run_id = :r AND node_id = :n")
        return conn.execute(query, {"r": run_id, "n": node_id}).scalar_one()

"""The agent with `stream` on, on real workers: tool calls assembled from streamed deltas, and the
answer's tokens written to the outbox as agent.stream events tagged with their model call."""

from __future__ import annotations

import pytest
from sqlalchemy import text

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
    view = wait_for_run(start_run(defn, {"q": "What is 2 + 3?"}))
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

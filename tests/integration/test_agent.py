"""The agent node on real workers, driven by a scripted OpenAI-compatible (and Anthropic) server.

No real language model runs here: the scripted server answers each model call with the next
reply the test wrote, and records what the agent sent, so the loop's logic is checked exactly.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text

from engine import secrets
from engine.approvals import Approver
from engine.approvals import decide as decide_approval
from engine.contract import as_documents
from engine.parse import parse_dict
from engine.runs import start_run
from engine.settings import get_settings
from models.db import get_engine
from nodes.agent.agent_lifecycle import ID_PATTERN, Agent, AgentState, Capability, new_agent_id
from nodes.memory import memory_nodes
from tests.fixtures.ai_engine import ai_data_dir, ai_env, ai_worker  # noqa: F401
from tests.fixtures.models import TINY_LLAMA
from tests.fixtures.scripted_llm import answer, scripted_llm, tool_call  # noqa: F401
from tests.integration.engine_helpers import (
    agent_approval_flow,
    node,
    steps_by_node,
    wait_for_run,
    wait_for_step,
    workflow,
)

API_KEY = "sk-test-4f8a1c2e9b"
LIFECYCLE = [
    "CREATED",
    "INITIALIZING",
    "VALIDATING",
    "VALIDATED",
    "READY",
    "EXECUTING",
    "COMPLETED",
    "READY",
]


def _events(run_id: str) -> list[tuple[str, dict]]:
    with get_engine(get_settings().database_url).connect() as conn:
        rows = conn.execute(
            text("SELECT event_type, payload FROM events WHERE run_id = :r ORDER BY id"), {"r": run_id}
        ).all()
    return [(r.event_type, r.payload["data"]) for r in rows]


def _agent_flow(llm, **agent_config):
    """start -> agent -> end, with the scripted server allowed by the egress policy."""
    config = {
        "model": "scripted",
        "base_url": llm.base_url,
        "api_key_secret": "llm-key",
        "prompt": "{{ input.question }}",
        **agent_config,
    }
    return workflow(
        [node("start", "start"), node("agent", "agent", **config), node("end", "end")],
        [("start", "agent"), ("agent", "end")],
        policy={"egress": {"allowed_hosts": [llm.host]}},
    )


def test_agent_ids_and_lifecycle_follow_the_design():
    agent_id = new_agent_id()
    assert re.match(ID_PATTERN, agent_id) and agent_id != new_agent_id()
    agent = Agent.create([Capability.TEXT_PROCESSING])
    for state in ("INITIALIZING", "VALIDATING", "VALIDATED", "READY", "EXECUTING"):
        agent.to(AgentState(state))
    agent.finish(AgentState.COMPLETED)
    assert agent.describe()["lifecycle"] == LIFECYCLE
    with pytest.raises(Exception, match="cannot go from READY to COMPLETED"):
        agent.to(AgentState.COMPLETED)


@pytest.fixture
def llm(scripted_llm, ai_env, clean_db):  # noqa: F811 - the imported fixture
    """The scripted server, with the API key in the encrypted secrets store."""
    secrets.set_secret("llm-key", API_KEY, allowed_destinations=[scripted_llm.host])
    return scripted_llm


pytestmark = pytest.mark.usefixtures("ai_env")


@pytest.mark.usefixtures("ai_worker")
class TestAgentOnWorkers:
    def test_tool_loop_calls_the_tool_and_answers_with_its_result(self, llm):
        llm.script(tool_call("add", {"a": 2, "b": 3}), answer("2 + 3 = 5"))
        run_id = start_run(
            _agent_flow(llm, tools=["add", "tool.http"], system_prompt="Use tools."),
            {"question": "What is 2 + 3?"},
        )
        view = wait_for_run(run_id, timeout=60)
        assert view.status == "succeeded", view.error
        out = steps_by_node(view)["agent"]["outputs"]
        assert out["out"]["text"] == "2 + 3 = 5"
        assert out["out"]["usage"] == {"prompt_tokens": 22, "completion_tokens": 9, "total_tokens": 31}

        first, second = llm.requests
        assert first["headers"]["Authorization"] == f"Bearer {API_KEY}"
        tools = {t["function"]["name"]: t["function"] for t in first["body"]["tools"]}
        assert set(tools) == {"add", "tool_http"}
        assert tools["add"]["parameters"]["required"] == ["a", "b"]
        assert "url" in tools["tool_http"]["parameters"]["properties"]
        assert [m["role"] for m in first["body"]["messages"]] == ["system", "user"]
        tool_msg = second["body"]["messages"][-1]
        assert tool_msg == {"role": "tool", "tool_call_id": "call_1", "content": "5"}

        agent = out["agent"]
        assert re.match(ID_PATTERN, agent["id"])
        assert agent["lifecycle"] == LIFECYCLE and agent["state"] == "READY"
        assert agent["capabilities"] == ["TEXT_PROCESSING", "API_INTEGRATION"]
        assert agent["iterations"] == 2
        assert agent["tool_calls"][0] | {"result": "5"} == {
            "iteration": 1,
            "tool": "add",
            "arguments": {"a": 2, "b": 3},
            "ok": True,
            "result": "5",
        }
        assert [m["role"] for m in out["messages"]] == ["user", "assistant", "tool", "assistant"]

        kinds = [k for k, _ in _events(run_id) if k.startswith("agent.")]
        assert kinds == ["agent.started", "agent.tool.called", "agent.completed"]
        # The key is used on the wire and nowhere else.
        stored = json.dumps([s["outputs"] for s in view.steps], default=str) + json.dumps(_events(run_id))
        assert API_KEY not in stored
        with get_engine(get_settings().database_url).connect() as conn:
            ciphertext = conn.execute(
                text("SELECT ciphertext FROM secrets WHERE name = 'llm-key'")
            ).scalar_one()
        assert API_KEY.encode() not in bytes(ciphertext)

    def test_a_tool_error_goes_back_to_the_model_which_can_recover(self, llm):
        llm.script(
            tool_call("add", {"a": "two", "b": 3}), tool_call("add", {"a": 2, "b": 3}, "call_2"), answer("5")
        )
        view = wait_for_run(start_run(_agent_flow(llm, tools=["add"]), {"question": "2+3?"}), timeout=60)
        assert view.status == "succeeded", view.error
        error_msg = llm.requests[1]["body"]["messages"][-1]
        assert error_msg["role"] == "tool" and error_msg["content"].startswith("error: tool 'add'")
        calls = steps_by_node(view)["agent"]["outputs"]["agent"]["tool_calls"]
        assert [c["ok"] for c in calls] == [False, True]

    def test_max_iterations_stops_a_model_that_keeps_calling_tools(self, llm):
        llm.script(repeat=tool_call("add", {"a": 1, "b": 1}))
        run_id = start_run(_agent_flow(llm, tools=["add"], max_iterations=3), {"question": "loop"})
        view = wait_for_run(run_id, timeout=60)
        assert view.status == "failed"
        step = steps_by_node(view)["agent"]
        assert "max_iterations" in step["error"] and "after 3 calls" in step["error"]
        assert step["attempt"] == 1  # not retried
        assert len(llm.requests) == 3
        kinds = [k for k, _ in _events(run_id) if k.startswith("agent.")]
        assert kinds[0] == "agent.started" and kinds[-1] == "agent.failed"
        assert kinds.count("agent.tool.called") == 3

    def test_structured_output_is_validated_and_repaired_once(self, llm):
        schema = {
            "type": "object",
            "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
            "required": ["city", "temp_c"],
        }
        llm.script(answer('{"city": "Lisbon"}'), answer('```json\n{"city": "Lisbon", "temp_c": 21}\n```'))
        view = wait_for_run(
            start_run(_agent_flow(llm, output_schema=schema), {"question": "Weather?"}), timeout=60
        )
        assert view.status == "succeeded", view.error
        out = steps_by_node(view)["agent"]["outputs"]["out"]
        assert out["data"] == {"city": "Lisbon", "temp_c": 21}
        assert "JSON schema" in llm.requests[0]["body"]["messages"][0]["content"]
        repair = llm.requests[1]["body"]["messages"][-1]
        assert repair["role"] == "user" and "temp_c" in repair["content"]

    def test_structured_output_that_never_matches_fails_naming_the_schema(self, llm):
        llm.script(repeat=answer("sunny"))
        view = wait_for_run(
            start_run(
                _agent_flow(llm, output_schema={"type": "object"}, max_iterations=2), {"question": "?"}
            ),
            timeout=60,
        )
        assert view.status == "failed"
        assert "output_schema" in steps_by_node(view)["agent"]["error"]

    def test_long_term_memory_is_recalled_before_the_call_and_the_answer_stored(self, llm):
        memory_nodes.ingest(
            "kb",
            as_documents(
                [
                    {
                        "id": "refunds",
                        "text": "Customers may return any item within 30 days for a full refund.",
                    },
                    {"id": "office", "text": "The Lisbon office is open Monday to Friday from nine to six."},
                ]
            ),
        )
        llm.script(answer("You have 30 days [refunds#0]."))
        view = wait_for_run(
            start_run(
                _agent_flow(llm, memory_collection="kb", memory_store=True, memory_min_score=-1),
                {"question": "How long can I return things?"},
            ),
            timeout=120,
        )
        assert view.status == "succeeded", view.error
        system = [m["content"] for m in llm.requests[0]["body"]["messages"] if m["role"] == "system"]
        assert "30 days" in system[0].split("\n")[1]  # the refund note comes first
        assert system[0].split("\n")[1].startswith("[refunds#0] ")  # labelled for citing
        cited = {c["id"]: c for c in steps_by_node(view)["agent"]["outputs"]["out"]["citations"]}
        assert cited["refunds#0"]["cited"] and cited["refunds#0"]["document"] == "refunds"
        assert cited["refunds#0"]["chunk"] == 0 and cited["refunds#0"]["score"] > 0
        assert cited["refunds#0"]["snippet"].startswith("Customers may return")
        assert cited["office#0"]["cited"] is False
        agent = steps_by_node(view)["agent"]["outputs"]["agent"]
        assert "DOCUMENT_ANALYSIS" in agent["capabilities"]
        hits, _ = memory_nodes.search("kb", "How long can I return things?", top_k=5)
        stored = [h for h in hits if h.document_id.startswith(agent["id"])]
        assert stored and "You have 30 days [refunds#0]." in stored[0].content

    def test_conversation_continues_from_the_history_input(self, llm):
        llm.script(answer("Your name is Ada."))
        history = [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hi Ada!"},
        ]
        defn = _agent_flow(llm, prompt="What is my name?")
        defn = parse_dict(
            {
                **defn.model_dump(mode="json"),
                "nodes": [
                    *[n.model_dump(mode="json") for n in defn.nodes],
                    {
                        "id": "past",
                        "type": "tool.python",
                        "config": {"tool": "echo", "args": {"value": history}},
                    },
                ],
                "edges": [
                    {"id": "e0", "source": "start", "target": "past"},
                    {"id": "e1", "source": "past", "target": "agent", "target_port": "history"},
                    {"id": "e2", "source": "agent", "target": "end"},
                ],
            }
        )
        view = wait_for_run(start_run(defn, {}), timeout=60)
        assert view.status == "succeeded", view.error
        sent = llm.requests[0]["body"]["messages"]
        assert [m["content"] for m in sent] == ["My name is Ada.", "Hi Ada!", "What is my name?"]
        assert len(steps_by_node(view)["agent"]["outputs"]["messages"]) == 4

    def test_anthropic_provider_runs_the_tool_loop_in_its_own_wire_format(self, llm):
        llm.script(
            {
                "content": [
                    {"type": "text", "text": "Let me add."},
                    {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 40, "b": 2}},
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 20, "output_tokens": 8},
            },
            {
                "content": [{"type": "text", "text": "42"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 30, "output_tokens": 2},
            },
        )
        view = wait_for_run(
            start_run(
                _agent_flow(llm, provider="anthropic", tools=["add"], system_prompt="Be exact."),
                {"question": "40+2?"},
            ),
            timeout=60,
        )
        assert view.status == "succeeded", view.error
        assert steps_by_node(view)["agent"]["outputs"]["out"]["text"] == "42"
        first, second = llm.requests
        assert first["path"] == "/v1/messages"
        assert first["headers"]["x-api-key"] == API_KEY and "anthropic-version" in first["headers"]
        assert first["body"]["system"] == "Be exact."
        assert first["body"]["tools"][0]["input_schema"]["required"] == ["a", "b"]
        assert second["body"]["messages"][-1] == {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}],
        }
        assert second["body"]["messages"][-2]["content"][1]["type"] == "tool_use"

    def test_openvino_provider_answers_with_the_local_tiny_model(self, llm):
        defn = workflow(
            [
                node("start", "start"),
                node("agent", "agent", provider="openvino", model=TINY_LLAMA, prompt="Hello", max_tokens=12),
                node("end", "end"),
            ],
            [("start", "agent"), ("agent", "end")],
        )
        view = wait_for_run(start_run(defn, {}), timeout=120)
        assert view.status == "succeeded", view.error
        out = steps_by_node(view)["agent"]["outputs"]
        assert out["out"]["usage"]["completion_tokens"] == 12 and out["out"]["text"]
        assert out["agent"]["lifecycle"] == LIFECYCLE


def _approval_flow(llm):
    """A state machine: the agent's approval output goes to a person, whose decision comes back."""
    agent_cfg = {
        "model": "scripted",
        "base_url": llm.base_url,
        "api_key_secret": "llm-key",
        "prompt": "{{ input.question }}",
        "tools": ["add", "echo"],
        "approval_tools": ["add"],
    }
    return agent_approval_flow(agent_cfg, [llm.host])


def _person(email: str) -> Approver:
    return Approver(user_id=email.split("@")[0], email=email, role="operator", email_verified=True)


def _pending_approval(run_id: str) -> tuple[str, str]:
    wait_for_step(run_id, "review", "waiting", timeout=60)
    with get_engine(get_settings().database_url).connect() as conn:
        row = conn.execute(
            text("SELECT id, title FROM approvals WHERE run_id = :r AND status = 'pending'"), {"r": run_id}
        ).one()
    return str(row.id), row.title


@pytest.mark.usefixtures("ai_worker")
class TestToolApproval:
    def test_approved_tool_call_runs_and_the_agent_finishes(self, llm):
        llm.script(
            {**tool_call("echo", {"value": "checking"}, "call_0")},
            tool_call("add", {"a": 2, "b": 3}),
            answer("The total is 5."),
        )
        run_id = start_run(_approval_flow(llm), {"question": "Add 2 and 3"})
        approval_id, title = _pending_approval(run_id)
        assert title == "Allow the agent to call add?"
        assert len(llm.requests) == 2  # paused before running add; echo ran without asking

        decide_approval(approval_id, _person("alice@example.test"), action="approved")
        view = wait_for_run(run_id, timeout=60)
        assert view.status == "succeeded", view.error
        assert [(s["node_id"], s["visit"]) for s in view.steps] == [
            ("start", 1),
            ("agent", 1),
            ("review", 1),
            ("agent", 2),
            ("end", 1),
        ]
        assert llm.requests[2]["body"]["messages"][-1] == {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": "5",
        }
        visits = [s for s in view.steps if s["node_id"] == "agent"]
        first, second = visits[0]["outputs"]["agent"], visits[1]["outputs"]["agent"]
        assert first["id"] == second["id"]  # the same agent carried on
        assert "WORKFLOW_CONTROL" in second["capabilities"]
        assert [(c["tool"], c.get("approved_by")) for c in second["tool_calls"]] == [
            ("echo", None),
            ("add", "alice@example.test"),
        ]
        assert second["iterations"] == 3
        assert view.outputs == {
            "text": "The total is 5.",
            "usage": {"prompt_tokens": 32, "completion_tokens": 14, "total_tokens": 46},
        }

    def test_rejected_tool_call_is_not_run_and_the_model_is_told(self, llm):
        llm.script(tool_call("add", {"a": 2, "b": 3}), answer("Understood, I will not add."))
        run_id = start_run(_approval_flow(llm), {"question": "Add 2 and 3"})
        approval_id, _ = _pending_approval(run_id)
        decide_approval(approval_id, _person("bob@example.test"), action="rejected", comment="not today")
        view = wait_for_run(run_id, timeout=60)
        assert view.status == "succeeded", view.error
        told = llm.requests[1]["body"]["messages"][-1]
        assert (
            told["role"] == "tool"
            and "rejected by bob@example.test" in told["content"]
            and "not today" in told["content"]
        )
        calls = [s for s in view.steps if s["node_id"] == "agent"][-1]["outputs"]["agent"]["tool_calls"]
        assert calls == [
            {
                "iteration": 1,
                "tool": "add",
                "arguments": {"a": 2, "b": 3},
                "ok": False,
                "result": told["content"],
                "refused_by": "bob@example.test",
            }
        ]

"""The Agent Manager on real services: saved agents, their lifecycle and checks, capabilities, sessions.

Saved agents live in PostgreSQL; their transitions are `agent.transitioned` events in the outbox,
each checked against the published agent schema. Agent nodes that name a saved agent (or ask
for a capability) run on a real worker against the scripted OpenAI-compatible server.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import text

from engine import agent_sessions, agents, secrets
from engine.agent_lifecycle import ID_PATTERN, AgentState, IllegalTransition
from engine.agent_sessions import MemoryPolicy
from engine.agents import AgentSpec
from engine.celery_app import celery_for
from engine.errors import ErrorCode, FlowloomError, ValidationError
from engine.event_schema import OutboxRow, json_schema, to_envelope
from engine.runs import start_run
from engine.settings import get_settings
from engine.validate import validate
from models.db import get_engine
from tests.fixtures.scripted_llm import answer, scripted_llm, tool_call  # noqa: F401
from tests.integration.conftest import ENGINE_WORKER_ENV
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

QUEUE = f"flowloom-agents-{os.getpid()}"
API_KEY = "sk-agents-5e1b7c9d20"
SCHEMA = Draft202012Validator(json_schema("agent"))


@pytest.fixture(scope="module")
def agents_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agents-data")


@pytest.fixture(scope="module")
def agents_worker(worker_factory, agents_data):
    """A worker on a queue of our own that shares our data dir (the secrets key)."""
    env = {**ENGINE_WORKER_ENV, "FLOWLOOM_QUEUE": QUEUE, "FLOWLOOM_DATA_DIR": str(agents_data)}
    return worker_factory(concurrency=2, env=env)


@pytest.fixture
def agents_env(pg_url, redis_url, agents_data, clean_db, monkeypatch) -> Iterator[Path]:
    for key, value in {
        "FLOWLOOM_DATABASE_URL": pg_url,
        "FLOWLOOM_REDIS_URL": redis_url,
        "FLOWLOOM_QUEUE": QUEUE,
        "FLOWLOOM_DATA_DIR": str(agents_data),
        **ENGINE_WORKER_ENV,
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    celery_for.cache_clear()
    yield agents_data
    get_settings.cache_clear()
    celery_for.cache_clear()


@pytest.fixture
def llm(scripted_llm, agents_env):  # noqa: F811 - the imported fixture
    secrets.set_secret("llm-key", API_KEY, allowed_destinations=[scripted_llm.host])
    return scripted_llm


def _spec(llm, **extra) -> AgentSpec:
    config = {"model": "scripted", "base_url": llm.base_url, "api_key_secret": "llm-key",
              "system_prompt": "You are terse.", **extra.pop("config", {})}  # fmt: skip
    return AgentSpec(name=extra.pop("name", "Support"), config=config, **extra)


def _ready(llm, **extra):
    agent = agents.create(_spec(llm, **extra), actor="user:tester")
    return agents.prepare(agent.id, actor="user:tester")


def _transitions(agent_id: str) -> list[dict]:
    """The agent's agent.transitioned events, as published records (each validated against the schema)."""
    with get_engine(get_settings().database_url).connect() as conn:
        rows = conn.execute(
            text("SELECT id, event_id, event_type, run_id, payload FROM events "
                 "WHERE event_type = 'agent.transitioned' AND payload->'data'->>'agent_id' = :a ORDER BY id"),
            {"a": agent_id},
        ).all()  # fmt: skip
    records = []
    for r in rows:
        _, record = to_envelope(
            OutboxRow(r.id, str(r.event_id), r.event_type, r.run_id and str(r.run_id), r.payload), None, None
        )
        SCHEMA.validate(record)
        records.append(record)
    return records


def _path(records: list[dict]) -> list[tuple[str | None, str]]:
    return [(r["output_data"]["from_state"], r["output_data"]["to_state"]) for r in records]


def _flow(llm, **agent_config):
    return workflow(
        [node("start", "start"), node("agent", "agent", prompt="{{ input.question }}", **agent_config),
         node("end", "end")],
        [("start", "agent"), ("agent", "end")],
        policy={"egress": {"allowed_hosts": [llm.host]}},
    )  # fmt: skip


READY_PATH = [
    (None, "CREATED"),
    ("CREATED", "INITIALIZING"),
    ("INITIALIZING", "VALIDATING"),
    ("VALIDATING", "VALIDATED"),
    ("VALIDATED", "READY"),
]


def test_a_saved_agent_goes_to_ready_through_every_design_state_each_an_event_of_the_schema(llm):
    agent = _ready(llm, capabilities=["SUMMARISE"])
    assert re.match(ID_PATTERN, agent.id)
    assert agent.state is AgentState.READY, agent.state_reason
    assert agent.capabilities == ["TEXT_PROCESSING", "SUMMARISE"]
    assert {c["check"] for c in agent.checks} == {"config", "resources", "dependencies", "permissions"}
    assert all(c["ok"] for c in agent.checks)
    records = _transitions(agent.id)
    assert _path(records) == READY_PATH
    assert all(r["agent_id"] == agent.id and r["run_id"] is None for r in records)
    assert [r["status"] for r in records][-1] == "succeeded"
    assert records[1]["output_data"]["check"] == "config validation"
    assert records[2]["output_data"]["check"] == "resource check"
    assert records[3]["output_data"]["check"] == "dependencies ready"


@pytest.mark.parametrize(
    ("config", "failed_from", "check", "field", "message"),
    [
        ({"tools": ["no_such_tool"]}, "INITIALIZING", "config", "config.tools", "unknown tool"),
        ({"prompt": "hi"}, "INITIALIZING", "config", "config.prompt", "belongs to the agent node"),
        ({"provider": "openvino", "model": "no-such-model", "base_url": "", "api_key_secret": ""},
         "INITIALIZING", "resources", "config.model", "no model folder 'no-such-model'"),
        ({"api_key_secret": "missing-key"}, "VALIDATING", "dependencies", "config.api_key_secret", "is not set"),
        ({"base_url": "", "api_key_secret": ""}, "VALIDATING", "dependencies", "config.api_key_secret",
         "needs an API key"),
        ({"base_url": "http://10.1.2.3:8000/v1"}, "VALIDATING", "permissions", "config.api_key_secret",
         "may not be sent to"),
    ],
)  # fmt: skip
def test_each_check_stops_the_lifecycle_at_its_transition_and_names_the_field(
    llm, config, failed_from, check, field, message
):
    agent = _ready(llm, config=config)
    assert agent.state is AgentState.FAILED
    failed = [c for c in agent.checks if not c["ok"]]
    assert failed and failed[0]["check"] == check and failed[0]["field"] == field
    assert message in failed[0]["message"] and message in agent.state_reason
    records = _transitions(agent.id)
    assert _path(records)[-1] == (failed_from, "FAILED")
    assert records[-1]["status"] == "failed" and message in records[-1]["error"]


def test_guardrails_that_the_guardrails_engine_cannot_read_fail_the_config_check(llm):
    agent = _ready(llm, guardrails={"execution_limits": {"max_steps_per_run": "many"}})
    assert agent.state is AgentState.FAILED
    (failed,) = [c for c in agent.checks if not c["ok"]]
    assert failed["check"] == "config" and failed["field"].startswith("guardrails.execution_limits")


def test_a_permission_the_secret_does_not_give_agent_nodes_fails_validation(llm):
    secrets.set_secret("http-only", "sk-x", allowed_destinations=[llm.host], allowed_node_types=["tool.http"])
    agent = _ready(llm, config={"api_key_secret": "http-only"})
    assert agent.state is AgentState.FAILED
    assert "may not be used by agent nodes" in agent.state_reason


def test_a_fixed_agent_validates_again_and_a_terminated_one_refuses_every_change(llm):
    agent = _ready(llm, config={"tools": ["no_such_tool"]})
    assert agent.state is AgentState.FAILED
    agent = agents.update(agent.id, {"config": {**agent.config, "tools": ["add"]}}, actor="user:tester")
    assert agent.state is AgentState.READY and "API_INTEGRATION" in agent.capabilities
    assert _path(_transitions(agent.id))[-4:] == [
        ("FAILED", "INITIALIZING"), ("INITIALIZING", "VALIDATING"), ("VALIDATING", "VALIDATED"), ("VALIDATED", "READY"),
    ]  # fmt: skip
    agent = agents.terminate(agent.id, actor="user:tester", reason="retired")
    assert agent.state is AgentState.TERMINATED and agent.state_reason == "retired"
    assert _transitions(agent.id)[-1]["output_data"]["reason"] == "retired"
    with pytest.raises(IllegalTransition, match="cannot go from TERMINATED to INITIALIZING"):
        agents.prepare(agent.id, actor="user:tester")
    with pytest.raises(FlowloomError, match="terminated agent cannot change") as refused:
        agents.update(agent.id, {"name": "again"}, actor="user:tester")
    assert refused.value.code is ErrorCode.AGENT_NOT_READY
    with pytest.raises(IllegalTransition):
        agents.terminate(agent.id, actor="user:tester")


def test_the_validator_names_the_node_and_field_of_a_missing_agent_or_capability(llm):
    defn = _flow(llm, capability="SUMMARISE")
    issues = [i for i in validate(defn).errors if i.node_id == "agent"]
    assert [(i.field, i.code) for i in issues] == [("capability", ErrorCode.NO_CAPABLE_AGENT)]
    missing = _flow(llm, agent_id="AGENT-20250101-000000-0001-ABCD")
    issues = [i for i in validate(missing).errors if i.node_id == "agent"]
    assert [(i.field, i.code) for i in issues] == [("agent_id", ErrorCode.AGENT_NOT_FOUND)]
    agent = _ready(llm, capabilities=["SUMMARISE"])
    assert validate(defn).ok and validate(_flow(llm, agent_id=agent.id)).ok
    agents.terminate(agent.id, actor="user:tester")
    assert not validate(defn).ok


def test_a_node_may_not_redefine_what_its_saved_agent_sets(llm):
    report = validate(_flow(llm, agent_id="AGENT-20250101-000000-0001-ABCD", model="other"))
    assert any("model: set by the saved agent" in i.message for i in report.errors if i.node_id == "agent")


@pytest.mark.usefixtures("agents_worker")
class TestSavedAgentsOnWorkers:
    def test_an_agent_node_runs_its_saved_agent_executing_then_back_to_ready_with_metrics(self, llm):
        agent = _ready(llm, pricing={"input_per_1m": 1000, "output_per_1m": 2000})
        llm.script(answer("Hello from the saved agent"))
        run_id = start_run(_flow(llm, agent_id=agent.id), {"question": "Hi?"})
        view = wait_for_run(run_id, timeout=60)
        assert view.status == "succeeded", view.error
        step = steps_by_node(view)["agent"]
        assert step["outputs"]["out"]["text"] == "Hello from the saved agent"
        assert step["outputs"]["agent"]["id"] == agent.id
        assert step["outputs"]["agent"]["lifecycle"] == ["READY", "EXECUTING", "COMPLETED", "READY"]
        (request,) = llm.requests
        assert request["body"]["messages"][0] == {"role": "system", "content": "You are terse."}
        assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
        metrics = step["metrics"]
        assert (
            metrics["agent_id"] == agent.id
            and metrics["input_tokens"] == 12
            and metrics["output_tokens"] == 4
        )
        assert metrics["cost_usd"] == pytest.approx((12 * 1000 + 4 * 2000) / 1e6)
        records = _transitions(agent.id)
        assert _path(records)[len(READY_PATH):] == [("READY", "EXECUTING"), ("EXECUTING", "COMPLETED"),
                                                    ("COMPLETED", "READY")]  # fmt: skip
        assert all(r["run_id"] == run_id for r in records[len(READY_PATH) :])
        after = agents.get(agent.id)
        assert after.state is AgentState.READY and after.active_steps == []
        (execution,) = agents.recent_executions([agent.id])[agent.id]
        assert (execution.run_id, execution.node_id, execution.status) == (run_id, "agent", "succeeded")
        assert execution.input_tokens == 12 and execution.latency_ms and execution.latency_ms > 0

    def test_a_failing_execution_moves_the_agent_failed_then_ready_and_a_terminated_one_is_refused(self, llm):
        agent = _ready(llm, config={"tools": ["add"], "max_iterations": 1})
        llm.script(tool_call("add", {"a": 1, "b": 2}), repeat=tool_call("add", {"a": 1, "b": 2}))
        view = wait_for_run(start_run(_flow(llm, agent_id=agent.id), {"question": "?"}), timeout=60)
        assert view.status == "failed" and "max_iterations" in view.error
        assert _path(_transitions(agent.id))[-2:] == [("EXECUTING", "FAILED"), ("FAILED", "READY")]
        assert "max_iterations" in _transitions(agent.id)[-2]["error"]
        assert agents.get(agent.id).state is AgentState.READY
        agents.terminate(agent.id, actor="user:tester")
        with pytest.raises(ValidationError) as refused:  # the validator refuses before the run starts
            start_run(_flow(llm, agent_id=agent.id), {"question": "?"})
        (issue,) = refused.value.issues
        assert (issue.node_id, issue.field, issue.code) == ("agent", "agent_id", ErrorCode.AGENT_NOT_READY)

    def test_a_saved_agents_guardrails_guard_its_steps_and_the_node_narrows_them(self, llm):
        llm.script(repeat=answer("hello"))
        agent = _ready(llm, guardrails={"execution_limits": {"max_llm_calls_per_run": 0}})
        stopped = wait_for_run(start_run(_flow(llm, agent_id=agent.id), {"question": "hi"}), timeout=90)
        assert stopped.status == "failed"
        with get_engine(get_settings().database_url).connect() as conn:
            fired = conn.execute(
                text("SELECT payload->'data' AS d FROM events WHERE run_id = :r "
                     "AND event_type = 'workflow.guardrail.violated'"), {"r": stopped.id},
            ).scalars().all()  # fmt: skip
        assert [(e["rule"], e["level"]) for e in fired] == [
            ("execution_limits.max_llm_calls_per_run", "agent")
        ]
        # The node's own guardrails are narrower than the agent's and win field by field.
        narrowed = workflow(
            [node("start", "start"),
             {**node("agent", "agent", prompt="{{ input.question }}", agent_id=agent.id),
              "guardrails": {"execution_limits": {"max_llm_calls_per_run": 2}}},
             node("end", "end")],
            [("start", "agent"), ("agent", "end")],
            policy={"egress": {"allowed_hosts": [llm.host]}},
        )  # fmt: skip
        allowed = wait_for_run(start_run(narrowed, {"question": "hi"}), timeout=90)
        assert allowed.status == "succeeded", allowed.error

    def test_a_node_asking_for_a_capability_runs_a_ready_agent_that_has_it(self, llm):
        _ready(llm, name="Plain")
        wanted = _ready(llm, name="Summariser", capabilities=["SUMMARISE"])
        llm.script(answer("short"))
        view = wait_for_run(start_run(_flow(llm, capability="SUMMARISE"), {"question": "Sum up"}), timeout=60)
        assert view.status == "succeeded", view.error
        assert steps_by_node(view)["agent"]["outputs"]["agent"]["id"] == wanted.id

    def test_sessions_persist_across_runs_and_older_turns_are_summarised_past_the_limit(self, llm):
        memory = MemoryPolicy(max_turns=2, policy="summarise")
        agent = _ready(llm, memory=memory)
        flow = _flow(llm, agent_id=agent.id, session="{{ input.user }}")
        for i, reply in enumerate(["one", "two"]):
            llm.script(answer(reply))
            view = wait_for_run(start_run(flow, {"question": f"q{i}", "user": "ann"}), timeout=60)
            assert view.status == "succeeded", view.error
        sent = llm.requests[0]["body"]["messages"]
        assert [m["content"] for m in sent[1:]] == ["q0", "one", "q1"]  # the first turn came back
        llm.script(answer("three"), answer("Ann asked q0; the agent said one."))
        view = wait_for_run(start_run(flow, {"question": "q2", "user": "ann"}), timeout=60)
        assert view.status == "succeeded", view.error
        session = steps_by_node(view)["agent"]["outputs"]["agent"]["session"]
        assert session["turns"] == 3 and session["dropped_turns"] == 1 and session["kept_messages"] == 4
        assert session["summary"] == "Ann asked q0; the agent said one."
        assert (
            "q0" in llm.requests[1]["body"]["messages"][-1]["content"]
        )  # the summary call saw the dropped turn
        llm.script(answer("four"))
        wait_for_run(start_run(flow, {"question": "q3", "user": "ann"}), timeout=60)
        notes = [m["content"] for m in llm.requests[0]["body"]["messages"] if m["role"] == "system"]
        assert any("Ann asked q0" in n for n in notes)
        other = agent_sessions.load(agent.id, "bob")
        assert other.history == [] and agent_sessions.sizes([agent.id])[agent.id]["sessions"] == 1

    def test_a_failed_summary_keeps_the_answer_and_says_why(self, llm):
        agent = _ready(llm, memory=MemoryPolicy(max_turns=1, policy="summarise"))
        flow = _flow(llm, agent_id=agent.id, session="s1")
        llm.script(answer("one"))
        assert wait_for_run(start_run(flow, {"question": "q0"}), timeout=60).status == "succeeded"
        llm.script(answer("two"))  # nothing scripted for the summary call: the server answers 500
        view = wait_for_run(start_run(flow, {"question": "q1"}), timeout=60)
        assert view.status == "succeeded", view.error
        outputs = steps_by_node(view)["agent"]["outputs"]
        assert outputs["out"]["text"] == "two"
        assert outputs["agent"]["session"]["summary_error"] and outputs["agent"]["session"]["summary"] == ""
        assert agent_sessions.load(agent.id, "s1").history[-1] == {"role": "assistant", "content": "two"}

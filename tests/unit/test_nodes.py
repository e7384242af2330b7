"""Built-in node types run as plain functions: no Celery, no database, a local HTTP server."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from engine.contract import StepContext, Suspend, get_node_type, get_tool
from engine.egress import EgressPolicy
from engine.errors import PolicyViolation, StepError
from engine.settings import get_settings
from nodes.human import approval as human

NODE_TYPES = [
    "start",
    "end",
    "condition",
    "merge",
    "delay",
    "tool.python",
    "tool.http",
    "tool.sql",
    "webhook.send",
    "human.approval",
    "agent",
]


def make_ctx(**kw: Any) -> StepContext:
    defaults: dict[str, Any] = {"run_id": "run-1", "step_id": "step-1", "node_id": "n1", "node_type": "test"}
    return StepContext(**{**defaults, **kw})


def run_node(
    type_name: str, config: dict[str, Any], inputs: dict[str, Any] | None = None, **ctx_kw: Any
) -> Any:
    """Validate the config and call the node's run function the way a worker would."""
    node = get_node_type(type_name)
    assert node is not None
    cfg = node.config_model.model_validate(config)
    ctx = ctx_kw.pop("ctx", None) or make_ctx(node_type=type_name, **ctx_kw)

    async def call() -> Any:
        try:
            result = node.run(ctx, cfg, dict(inputs or {}))
            return await result if inspect.isawaitable(result) else result
        finally:
            await ctx.aclose()

    return asyncio.run(call())


# A local HTTP server that records requests


class Recorder(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        self.requests.append(
            {"method": self.command, "path": url.path, "headers": dict(self.headers), "body": body}
        )
        if url.path.startswith("/status/"):
            self._reply(int(url.path.rsplit("/", 1)[1]), {"error": "as asked"})
        elif url.path == "/v1/chat/completions":
            messages = json.loads(body)["messages"]
            answer = {"role": "assistant", "content": f"you said: {messages[-1]['content']}"}
            usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
            self._reply(200, {"choices": [{"index": 0, "message": answer}], "usage": usage})
        else:
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            echoed = json.loads(body) if body else None
            self._reply(
                200, {"method": self.command, "query": query, "echo": echoed}, {"Set-Cookie": "sid=1"}
            )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def recorded() -> list[dict[str, Any]]:
    Recorder.requests.clear()
    return Recorder.requests


def allowing(hostport: str) -> EgressPolicy:
    return EgressPolicy(allowed_hosts=[hostport])


@pytest.fixture
def env_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """env_secret(name, value, destinations): opt an environment variable in as secret `name` (no store)."""
    mapping: dict[str, Any] = {}

    def opt_in(name: str, value: str, destinations: list[str]) -> None:
        variable = "TEST_SECRET_" + uuid.uuid4().hex[:8].upper()
        monkeypatch.setenv(variable, value)
        mapping[name] = {"env": variable, "allowed_destinations": destinations}
        monkeypatch.setenv("FLOWLOOM_ENV_SECRETS", json.dumps(mapping))
        monkeypatch.delenv("FLOWLOOM_DATABASE_URL", raising=False)
        get_settings.cache_clear()

    yield opt_in
    monkeypatch.undo()
    get_settings.cache_clear()


# Schemas and ports


@pytest.mark.parametrize("type_name", NODE_TYPES)
def test_every_node_type_describes_itself_with_a_json_config_form(type_name: str) -> None:
    node = get_node_type(type_name)
    assert node is not None
    described = json.loads(json.dumps(node.describe()))
    schema = described["config_schema"]
    assert schema["type"] == "object"
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"{type_name}.{name} has no description for the editor form"
    assert node.outputs


def test_editor_hints_mark_multiline_secret_and_keyvalue_fields() -> None:
    props = get_node_type("webhook.send").config_model.model_json_schema()["properties"]
    assert props["secret"]["format"] == "secret"
    assert props["headers"]["format"] == "keyvalue"
    assert (
        get_node_type("tool.sql").config_model.model_json_schema()["properties"]["query"]["format"]
        == "multiline"
    )


# Control


def test_start_passes_run_inputs_and_end_returns_its_input() -> None:
    assert run_node("start", {}, run_inputs={"q": 1}) == {"out": {"q": 1}}
    assert run_node("end", {}, {"in": [1, 2]}) == {"out": [1, 2]}


def test_condition_fires_only_the_port_its_expression_chooses() -> None:
    cfg = {"expression": "value.score > 0.5"}
    assert run_node("condition", cfg, {"in": {"score": 0.9}}) == {"true": {"score": 0.9}}
    assert run_node("condition", cfg, {"in": {"score": 0.1}}) == {"false": {"score": 0.1}}


def test_condition_branches_fire_the_first_match_or_default() -> None:
    cfg = {
        "branches": [
            {"name": "big", "expression": "value > 100"},
            {"name": "positive", "expression": "value > 0"},
        ]
    }
    assert run_node("condition", cfg, {"in": 500}) == {"big": 500}
    assert run_node("condition", cfg, {"in": 5}) == {"positive": 5}
    assert run_node("condition", cfg, {"in": -1}) == {"default": -1}
    node = get_node_type("condition")
    ports = node.output_ports(node.config_model.model_validate(cfg))
    assert {"big", "positive", "default"} <= set(ports)


def test_condition_config_needs_an_expression_or_unique_branches() -> None:
    model = get_node_type("condition").config_model
    with pytest.raises(ValidationError):
        model.model_validate({})
    with pytest.raises(ValidationError, match="repeated: a"):
        model.model_validate(
            {"branches": [{"name": "a", "expression": "1"}, {"name": "a", "expression": "2"}]}
        )


def test_merge_passes_what_the_engine_gathered() -> None:
    assert run_node("merge", {"mode": "any"}, {"in": {"a": 1, "b": 2}}) == {"out": {"a": 1, "b": 2}}


def test_short_delay_sleeps_and_long_delay_suspends_on_a_timer() -> None:
    assert run_node("delay", {"seconds": 0.01}, {"in": "x"}) == {"out": "x"}
    result = run_node("delay", {"seconds": 3600}, {"in": "x"})
    assert isinstance(result, Suspend)
    assert result.kind == "timer"
    assert result.request["resume_after_s"] == 3600


# Python tools


def test_python_tool_merges_configured_args_over_a_dict_input() -> None:
    assert run_node("tool.python", {"tool": "add", "args": {"b": 3}}, {"in": {"a": 2, "b": 100, "c": 9}}) == {
        "out": 5
    }


def test_python_tool_schema_comes_from_the_function_signature() -> None:
    add = get_tool("add")
    assert add is not None
    assert add.parameters["required"] == ["a", "b"]
    assert set(add.parameters["properties"]) == {"a", "b"}
    assert "ctx" not in get_tool("fail").parameters["properties"]


def test_unknown_tool_fails_config_validation_listing_known_tools() -> None:
    model = get_node_type("tool.python").config_model
    with pytest.raises(ValidationError) as info:
        model.model_validate({"tool": "nope"})
    error = info.value.errors()[0]
    assert error["loc"] == ("tool",)
    assert "unknown tool 'nope'" in error["msg"]
    assert "add" in error["msg"]
    with pytest.raises(ValidationError, match="unknown argument") as info:
        model.model_validate({"tool": "add", "args": {"c": 1}})
    assert info.value.errors()[0]["loc"] == ("args",)


def test_fail_tool_fails_while_attempt_is_within_fail_times() -> None:
    cfg = {"tool": "fail", "args": {"fail_times": 2}}
    for attempt in (1, 2):
        with pytest.raises(StepError) as info:
            run_node("tool.python", cfg, attempt=attempt)
        assert info.value.retryable
    assert run_node("tool.python", cfg, attempt=3) == {"out": {"attempt": 3}}


def test_builtin_tools_pick_echo_and_fill_templates() -> None:
    data = {"items": [{"name": "a"}, {"name": "b"}]}
    assert run_node("tool.python", {"tool": "json_pick", "args": {"path": "items.1.name"}}, {"in": data}) == {
        "out": "b"
    }
    assert run_node("tool.python", {"tool": "echo"}, {"in": [1, 2]}) == {"out": [1, 2]}
    cfg = {"tool": "text_template", "args": {"template": "hi $who", "values": {"who": "ann"}}}
    assert run_node("tool.python", cfg) == {"out": "hi ann"}
    with pytest.raises(StepError, match="tool 'add': a"):
        run_node("tool.python", {"tool": "add", "args": {"a": "bad", "b": 1}})


# Human approval


APPROVAL = {
    "title": "Ship it?",
    "fields": [
        {"name": "reason", "kind": "text", "required": True},
        {"name": "size", "kind": "select", "options": ["s", "m", "l"]},
        {"name": "count", "kind": "number"},
    ],
    "approvers": {"roles": ["ops"]},
}


def test_approval_suspends_with_the_request_and_action_ports() -> None:
    result = run_node("human.approval", APPROVAL, {"in": {"order": 7}})
    assert isinstance(result, Suspend)
    assert result.kind == "approval"
    assert result.request["title"] == "Ship it?"
    assert result.request["data"] == {"order": 7}
    assert [a["name"] for a in result.request["actions"]] == ["approved", "rejected"]
    node = get_node_type("human.approval")
    assert set(node.output_ports(node.config_model.model_validate(APPROVAL))) == {"approved", "rejected"}


def test_resume_fires_exactly_the_chosen_action_with_a_checked_form() -> None:
    cfg = human.HumanApprovalConfig.model_validate(APPROVAL)
    decision = {
        "action": "approved",
        "form": {"reason": "ok", "size": "m", "count": "3"},
        "decided_by": "ann",
    }
    outputs = human.resume_outputs(cfg, {**decision, "data": {"order": 7}})
    assert list(outputs) == ["approved"]
    assert outputs["approved"]["form"] == {"reason": "ok", "size": "m", "count": 3}
    assert outputs["approved"]["data"] == {"order": 7}


def test_resume_rejects_a_missing_required_field_by_name() -> None:
    cfg = human.HumanApprovalConfig.model_validate(APPROVAL)
    with pytest.raises(StepError, match="form.reason"):
        human.resume_outputs(cfg, {"action": "approved", "form": {"size": "s"}})


def test_resume_rejects_a_select_value_outside_its_options() -> None:
    cfg = human.HumanApprovalConfig.model_validate(APPROVAL)
    with pytest.raises(StepError, match="form.size") as info:
        human.resume_outputs(cfg, {"action": "rejected", "form": {"reason": "no", "size": "xl"}})
    assert not info.value.retryable
    with pytest.raises(StepError, match="action"):
        human.resume_outputs(cfg, {"action": "maybe", "form": {"reason": "no"}})


def test_approval_config_checks_escalation_and_select_options() -> None:
    with pytest.raises(ValidationError, match="escalate_to_role"):
        human.HumanApprovalConfig.model_validate({"on_expiry": "escalate"})
    with pytest.raises(ValidationError, match="needs options"):
        human.HumanApprovalConfig.model_validate({"fields": [{"name": "x", "kind": "select"}]})


def test_expiry_decision_resumes_without_required_fields() -> None:
    cfg = human.HumanApprovalConfig.model_validate({**APPROVAL, "deadline_s": 60})
    outputs = human.resume_outputs(cfg, human.expiry_decision(cfg), expired=True)
    assert list(outputs) == ["rejected"]


# HTTP and webhooks against a local server


def test_http_request_returns_status_parsed_body_and_no_cookies(server: str, recorded: list) -> None:
    cfg = {"url": f"http://{server}/items", "query": {"page": 2}, "headers": {"X-Test": "1"}}
    out = run_node("tool.http", cfg, egress_policy=allowing(server))["out"]
    assert out["status"] == 200
    assert out["body"] == {"method": "GET", "query": {"page": "2"}, "echo": None}
    assert "set-cookie" not in out["headers"]
    assert recorded[0]["headers"]["X-Test"] == "1"


def test_http_request_posts_the_input_as_json_body(server: str, recorded: list) -> None:
    cfg = {"url": f"http://{server}/items", "method": "POST", "body_from_input": True}
    out = run_node("tool.http", cfg, {"in": {"a": 1}}, egress_policy=allowing(server))["out"]
    assert out["body"]["echo"] == {"a": 1}


def test_http_4xx_is_final_5xx_is_retryable_and_expected_statuses_pass(server: str) -> None:
    policy = allowing(server)
    with pytest.raises(StepError) as info:
        run_node("tool.http", {"url": f"http://{server}/status/404"}, egress_policy=policy)
    assert not info.value.retryable
    with pytest.raises(StepError) as info:
        run_node("tool.http", {"url": f"http://{server}/status/503"}, egress_policy=policy)
    assert info.value.retryable
    cfg = {"url": f"http://{server}/status/404", "expect_status": [404]}
    assert run_node("tool.http", cfg, egress_policy=policy)["out"]["status"] == 404


def test_http_request_to_a_host_the_policy_does_not_allow_is_refused(server: str) -> None:
    with pytest.raises(PolicyViolation):
        run_node("tool.http", {"url": f"http://{server}/items"})


def test_webhook_signs_the_exact_body_and_keeps_one_idempotency_key_across_retries(
    server: str, recorded: list, env_secret: Any
) -> None:
    env_secret("hook-key", "s3cret", [server])
    cfg = {"url": f"http://{server}/hook", "secret": "hook-key"}
    payload = {"b": [1, 2], "a": "é"}
    ctx = make_ctx(node_id="notify", visit=1, egress_policy=allowing(server))
    out = run_node("webhook.send", cfg, {"in": payload}, ctx=ctx)["out"]
    assert out["status"] == 200
    run_node(
        "webhook.send",
        cfg,
        {"in": payload},
        ctx=make_ctx(node_id="notify", attempt=2, egress_policy=ctx.egress_policy),
    )
    first, retry = recorded
    assert (
        first["body"]
        == json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    # Standard Webhooks: the receiver's library verifies id, timestamp and body with the raw secret bytes.
    assert Webhook(b"s3cret").verify(first["body"], first["headers"]) == payload
    assert first["headers"]["webhook-signature"].startswith("v1,")
    assert first["headers"]["Idempotency-Key"] == ctx.idempotency_key == first["headers"]["webhook-id"]
    assert first["headers"]["webhook-timestamp"].isdigit()
    assert retry["body"] == first["body"]
    assert retry["headers"]["Idempotency-Key"] == first["headers"]["Idempotency-Key"]
    assert retry["headers"]["webhook-id"] == first["headers"]["webhook-id"]


def test_webhook_without_a_secret_is_unsigned_and_a_missing_secret_says_where_to_add_it(
    server: str, recorded: list, env_secret: Any
) -> None:
    policy = allowing(server)
    run_node(
        "webhook.send", {"url": f"http://{server}/hook", "payload": '{"x": 1, "a": 2}'}, egress_policy=policy
    )
    assert "webhook-signature" not in recorded[0]["headers"]
    assert recorded[0]["body"] == b'{"a":2,"x":1}'  # JSON text from the editor is sent canonically
    env_secret("other", "unrelated", [server])
    with pytest.raises(StepError, match='secret "absent" is not set; add it on the Secrets page'):
        run_node("webhook.send", {"url": f"http://{server}/hook", "secret": "absent"}, egress_policy=policy)
    with pytest.raises(StepError) as info:
        run_node("webhook.send", {"url": f"http://{server}/status/502"}, egress_policy=policy)
    assert info.value.retryable


def test_agent_sends_system_and_user_messages_to_an_openai_compatible_server(
    server: str, recorded: list, env_secret: Any
) -> None:
    env_secret("llm", "sk-test", [f"http://{server}/v1"])
    cfg = {
        "model": "tiny",
        "system_prompt": "Be brief.",
        "prompt": "hello",
        "base_url": f"http://{server}/v1",
        "api_key_secret": "llm",
    }
    out = run_node("agent", cfg, egress_policy=allowing(server))["out"]
    assert out == {
        "text": "you said: hello",
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
    sent = json.loads(recorded[0]["body"])
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert recorded[0]["headers"]["Authorization"] == "Bearer sk-test"


# SQL: the statements themselves run against the suite's database in
# tests/integration/test_sql_node.py; what needs no database is here.


def test_sql_unknown_or_unconfigured_connection_names_the_setting() -> None:
    with pytest.raises(StepError, match="FLOWLOOM_SQL_CONNECTIONS"):
        run_node("tool.sql", {"connection": "nope", "query": "SELECT 1"}, sql_connection={}.__getitem__)
    with pytest.raises(StepError, match="FLOWLOOM_SQL_CONNECTIONS"):
        run_node("tool.sql", {"connection": "main", "query": "SELECT 1"})

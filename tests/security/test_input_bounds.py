"""Bounded input everywhere: request bodies, definitions, JSON Schema references, regular expressions,
templates and step attempts.

Bodies are sent to the real API served by granian on a loopback port (raw sockets, so a 60 MB body
never sits in the test's memory); everything else attacks through the REST API, the engine's own
entry points or real worker processes, on real PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, text

from engine import executor, expression_limits, expressions, json_schemas, leases, waiting
from engine.errors import DefinitionError, PolicyViolation, ValidationError
from engine.ops.migrate import upgrade_to_head
from engine.ops.services import find_free_port
from engine.parse import parse_dict
from engine.runs import check_inputs, start_run
from engine.settings import get_settings
from engine.validate import validate
from models.db import get_engine
from tests.integration.conftest import TEST_SECRET_KEY
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

REPO_ROOT = Path(__file__).resolve().parents[2]
MB = 1_000_000


# ---------------------------------------------------------------------------------------------
# The real API on a loopback port, and raw HTTP/1.1 requests to it


@pytest.fixture(scope="module")
def served_api(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """app.api.main:api served by granian (as `flowloom up` serves the backend); yields its port."""
    port = find_free_port()
    log_path = tmp_path_factory.mktemp("granian") / "server.log"
    env = {
        **os.environ,
        "FLOWLOOM_DATABASE_URL": pg_url,
        "FLOWLOOM_SECRET_KEY": TEST_SECRET_KEY,
        "FLOWLOOM_DATA_DIR": str(log_path.parent / "data"),
    }
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--no-ws", "app.api.main:api"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break  # any answer: the server is up (health itself may say degraded: no workers)
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"granian did not come up:\n{log_path.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    body_bytes_sent: int

    def detail(self) -> str:
        return json.loads(self.body)["detail"]


@dataclass
class _RawExchange:
    """One HTTP/1.1 request on a plain socket; a thread reads the answer while the body is sent."""

    sock: socket.socket
    received: bytearray = field(default_factory=bytearray)
    answered: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.received += chunk
                self.answered.set()
        except OSError:
            pass
        finally:
            self.answered.set()
            self.closed.set()

    def response(self, sent: int, timeout: float = 30) -> RawResponse:
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.received and time.monotonic() < deadline and not self.closed.is_set():
            time.sleep(0.01)
        head, _, body = bytes(self.received).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        headers = {k.lower(): v for k, v in headers.items()}
        length = int(headers.get("content-length", "0"))
        while len(body) < length and time.monotonic() < deadline and not self.closed.is_set():
            time.sleep(0.01)
            body = bytes(self.received).partition(b"\r\n\r\n")[2]
        return RawResponse(int(lines[0].split(" ")[1]), headers, body[:length], sent)


def raw_request(
    port: int, method: str, path: str, headers: dict[str, str], *, chunked_bytes: int = 0
) -> RawResponse:
    """Send the request head, then (chunked_bytes > 0) a chunked body until the server answers."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    exchange = _RawExchange(sock)
    reader = threading.Thread(target=exchange.read, daemon=True)
    reader.start()
    head = {"Host": f"127.0.0.1:{port}", **headers}
    if chunked_bytes:
        head["Transfer-Encoding"] = "chunked"
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    sent, piece = 0, b"a" * 65536
    frame = b"%x\r\n" % len(piece) + piece + b"\r\n"
    try:
        while sent < chunked_bytes and not exchange.answered.is_set():
            sock.sendall(frame)
            sent += len(piece)
    except OSError:
        pass  # the server answered and closed while we were still sending
    response = exchange.response(sent)
    sock.close()
    reader.join(5)
    return response


def test_a_declared_60_mb_body_is_answered_413_before_a_byte_of_it_is_sent(served_api: int) -> None:
    response = raw_request(
        served_api, "POST", "/api/runs", {"Content-Type": "application/json", "Content-Length": str(60 * MB)}
    )
    assert response.status == 413
    assert "8,000,000 bytes" in response.detail() and "FLOWLOOM_MAX_BODY_BYTES" in response.detail()
    assert response.headers["connection"] == "close"


def test_a_streamed_60_mb_body_without_length_is_cut_off_at_the_cap(served_api: int, api_client) -> None:
    key = api_client("editor").api_key  # signed in: the body reaches the route, which reads it
    response = raw_request(
        served_api,
        "POST",
        "/api/runs",
        {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        chunked_bytes=60 * MB,
    )
    assert response.status == 413, response.body
    assert "FLOWLOOM_MAX_BODY_BYTES" in response.detail()
    assert response.body_bytes_sent < 60 * MB  # answered while the client was still sending


def test_sign_in_takes_only_the_small_anonymous_body(served_api: int) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    streamed = raw_request(served_api, "POST", "/auth/local", form, chunked_bytes=2 * MB)
    assert streamed.status == 413
    assert "65,536 bytes" in streamed.detail() and "FLOWLOOM_MAX_ANONYMOUS_BODY_BYTES" in streamed.detail()
    declared = raw_request(served_api, "POST", "/auth/setup", {**form, "Content-Length": "100000"})
    assert declared.status == 413 and "FLOWLOOM_MAX_ANONYMOUS_BODY_BYTES" in declared.detail()
    # A route that needs sign-in keeps the larger cap: the same 100 kB gets the auth gate's answer.
    other = raw_request(
        served_api, "POST", "/api/runs", {"Content-Type": "application/json", "Content-Length": "100000"}
    )
    assert other.status == 401


def test_reflex_upload_endpoint_is_capped_too(served_api: int) -> None:
    response = raw_request(
        served_api,
        "POST",
        "/_upload",
        {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(60 * MB)},
    )
    assert response.status == 413 and "FLOWLOOM_MAX_BODY_BYTES" in response.detail()


# ---------------------------------------------------------------------------------------------
# JSON Schema: "$ref" inside the same document only, nothing ever fetched


@dataclass
class Canary:
    """A loopback HTTP server that records every request; it must see none."""

    url: str
    requests: list[str]


@pytest.fixture
def canary() -> Iterator[Canary]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            seen.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/schema+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Canary(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()


def _definition(inputs: dict[str, Any] | None = None, nodes: list[dict] | None = None) -> dict[str, Any]:
    nodes = nodes or [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}]
    edges = [
        {"id": f"e{i}", "source": a["id"], "target": b["id"]}
        for i, (a, b) in enumerate(zip(nodes, nodes[1:], strict=False))
    ]
    return {"name": "bounds", "nodes": nodes, "edges": edges, "inputs": inputs or {}}


def _outside_refs(canary: Canary) -> list[str]:
    return [f"{canary.url}/schema.json", "file:///etc/passwd", 'data:application/json,{"type":"string"}']


def test_a_remote_ref_in_the_inputs_schema_is_refused_by_the_api_and_never_fetched(
    api_client, canary: Canary
) -> None:
    client = api_client("editor")
    for ref in _outside_refs(canary):
        schema = {"type": "object", "properties": {"x": {"$ref": ref}}}
        response = client.post("/api/runs", json={"definition": _definition(schema), "inputs": {"x": "a"}})
        assert response.status_code == 422, response.text
        issues = response.json()["issues"]
        assert {"field": "inputs.properties.x.$ref", "code": "inputs_invalid"}.items() <= issues[0].items()
        assert "points outside this schema" in issues[0]["message"]
    assert canary.requests == []


def test_run_input_checking_never_fetches_a_ref_even_without_validation(canary: Canary) -> None:
    schemas = [
        {"type": "object", "properties": {"x": {"$ref": f"{canary.url}/x.json"}}},
        {"$id": f"{canary.url}/root.json", "type": "object", "properties": {"x": {"$ref": "other.json"}}},
        {"$schema": f"{canary.url}/meta.json", "properties": {"x": {"$dynamicRef": f"{canary.url}/d"}}},
    ]
    for schema in schemas:
        defn = parse_dict(_definition(schema))  # parsed, never validated: the run-time check alone
        with pytest.raises(ValidationError, match="cannot be resolved inside the schema"):
            check_inputs(defn, {"x": "a"})
    assert canary.requests == []


def test_an_agent_output_schema_with_a_remote_ref_is_refused_and_never_fetched(canary: Canary) -> None:
    schema = {"type": "object", "properties": {"answer": {"$ref": f"{canary.url}/answer.json"}}}
    agent = {
        "id": "agent",
        "type": "agent",
        "config": {"model": "m", "base_url": canary.url, "prompt": "hi", "output_schema": schema},
    }
    nodes = [{"id": "start", "type": "start"}, agent, {"id": "end", "type": "end"}]
    report = validate(parse_dict(_definition(nodes=nodes)))
    issue = next(i for i in report.errors if i.node_id == "agent")
    assert issue.field == "config.output_schema" and "points outside this schema" in issue.message
    # The run-time check of a model's answer (nodes/agent/agent_loop.py) uses the same validator.
    problems = json_schemas.instance_problems(schema, {"answer": "42"})
    assert problems and "cannot be resolved inside the schema" in problems[0].message
    assert canary.requests == []


# ---------------------------------------------------------------------------------------------
# Regular expressions from users run on RE2


CATASTROPHIC = "^(a+)+$"  # exponential for a backtracking engine on "aaaa...!"


@pytest.mark.timeout(120)
def test_a_catastrophic_pattern_fails_at_once_while_the_app_stays_responsive(
    served_api: int, api_client
) -> None:
    key = api_client("editor").api_key
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": CATASTROPHIC}}}
    body = {"definition": _definition(schema), "inputs": {"code": "a" * 60 + "!"}}
    base, auth = f"http://127.0.0.1:{served_api}", {"Authorization": f"Bearer {key}"}
    answers: dict[str, httpx.Response] = {}

    def attack() -> None:
        answers["run"] = httpx.post(f"{base}/api/runs", json=body, headers=auth, timeout=60)

    attacker = threading.Thread(target=attack)
    attacker.start()
    health = [httpx.get(f"{base}/api/health", timeout=60).status_code for _ in range(3)]
    attacker.join(90)
    assert all(code in (200, 503) for code in health)  # answered: ok, or degraded (no workers here)
    response = answers["run"]
    assert response.status_code == 422, response.text
    issue = response.json()["issues"][0]
    assert issue["field"] == "input.code" and "does not match '^(a+)+$'" in issue["message"]


def test_patterns_the_linear_engine_cannot_run_are_validation_errors_naming_the_field(api_client) -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": r"^(a)\1$"}},
        "patternProperties": {"^(?=x)": {"type": "string"}},
    }
    response = api_client("editor").post("/api/runs", json={"definition": _definition(schema)})
    assert response.status_code == 422
    issues = {i["field"]: i["message"] for i in response.json()["issues"]}
    assert "linear-time engine" in issues["inputs.properties.code.pattern"]
    assert "linear-time engine" in issues["inputs.patternProperties"]


def test_an_agent_output_schema_pattern_runs_on_the_linear_engine() -> None:
    schema = {
        "type": "object",
        "patternProperties": {CATASTROPHIC: {"type": "integer"}},
        "additionalProperties": False,
    }
    problems = json_schemas.instance_problems(schema, {"a" * 60 + "!": 1})
    assert problems and "Additional properties are not allowed" in problems[0].message
    with pytest.raises(json_schemas.SchemaRefused, match="linear-time engine"):
        json_schemas.check_schema({"type": "string", "pattern": "(?<=a)b"})


# ---------------------------------------------------------------------------------------------
# Definition limits, checked before the model or the graph library sees the definition


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def _nodes(count: int) -> list[dict[str, Any]]:
    return [{"id": f"n{i}", "type": "delay"} for i in range(count)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # Malformed nodes: the count is reported, not the model's complaints about each node.
        (
            {"name": "w", "nodes": [{"bad": 1}] * 2001},
            "definition has 2,001 nodes; the limit is 2,000 (FLOWLOOM_MAX_DEFINITION_NODES)",
        ),
        (
            {"name": "w", "nodes": [], "edges": [{}] * 5001},
            "definition has 5,001 edges; the limit is 5,000 (FLOWLOOM_MAX_DEFINITION_EDGES)",
        ),
        (
            {"name": "w", "nodes": [{"id": "big", "type": "delay", "config": {"x": ["y" * 1000] * 300}}]},
            "the limit is 262,144 (FLOWLOOM_MAX_NODE_CONFIG_BYTES)",
        ),
        (
            {"name": "w", "nodes": [], "description": "d" * 100_001},
            "the limit is 100,000 (FLOWLOOM_MAX_DEFINITION_STRING)",
        ),
        (
            {"name": "w", "nodes": [], "inputs": {"x": _nested(32)}},
            "the limit is 32 levels (FLOWLOOM_MAX_DEFINITION_DEPTH)",
        ),
    ],
)
def test_definition_limits_are_definition_errors_naming_the_limit(
    data: dict[str, Any], expected: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_dict(data)
    assert expected in str(caught.value)


def test_definition_limits_follow_the_settings_and_hold_on_the_api(api_client, settings_env) -> None:
    client = api_client("editor")
    response = client.post("/api/runs", json={"definition": {"name": "w", "nodes": _nodes(2001)}})
    assert response.status_code == 422 and "FLOWLOOM_MAX_DEFINITION_NODES" in response.json()["detail"]
    settings_env(max_definition_nodes=3)
    with pytest.raises(DefinitionError, match="definition has 4 nodes; the limit is 3"):
        parse_dict({"name": "w", "nodes": _nodes(4)})


# ---------------------------------------------------------------------------------------------
# Templates and expressions: the same caps on every path


@pytest.mark.timeout(30)
def test_a_long_filter_chain_is_refused_at_once_instead_of_compiling_for_minutes() -> None:
    chain = "{{ input.x" + "|replace('a', 'aa')" * 250 + " }}"
    assert "nests more than 64 levels deep" in (expressions.check_template(chain) or "")
    with pytest.raises(PolicyViolation, match="nests more than 64 levels deep"):
        expressions.render_template(chain, {"input": {"x": "a"}})


def test_filters_on_constants_run_under_the_work_cap_not_while_compiling() -> None:
    # 90 million characters of work on constants. Jinja used to fold them while compiling, and
    # validation compiles with no budget at all: the run then rendered the folded, cached result.
    template = "{{ 'a'|center(900000)|length }}" * 100 + "{# bounds #}"
    assert expressions.check_template(template) is None  # what validation does: compile, run nothing
    with pytest.raises(PolicyViolation, match="produced more than 50,000,000 characters|ran longer than"):
        expressions.render_template(template, {})


@pytest.mark.timeout(30)
def test_quadratic_text_codecs_are_refused_in_templates() -> None:
    text = "".join(chr(0x4E00 + i) for i in range(20_000))
    with pytest.raises(PolicyViolation, match=r"str.encode\('punycode'\) is not allowed"):
        expressions.render_template("{{ s.encode('punycode')|length }}", {"s": text})
    assert expressions.render_template("{{ s.encode('utf-8')|length }}", {"s": text}) == "60000"


def test_evaluations_inside_one_budget_share_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expression_limits, "MAX_SECONDS", 0.5)
    loop = "{% for i in range(20000) %}{% endfor %}"
    with pytest.raises(PolicyViolation, match="ran longer than 0.5s"), expressions.evaluation_budget():
        for _ in range(500):  # each alone is far under the limit; together they are not
            expressions.render_template(loop, {})


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_a_step_evaluating_many_conditions_shares_one_time_budget() -> None:
    slow = "(range(100000)|map('string')|list|length) < 0"  # false, after a fraction of a second
    branches = [{"name": f"b{i}", "expression": slow} for i in range(40)]
    defn = workflow(
        [node("start", "start"), node("check", "condition", branches=branches), node("end", "end")],
        [("start", "check"), ("check", "end", "default")],
    )
    view = wait_for_run(start_run(defn, {}), timeout=120)
    assert view.status == "failed"
    assert "templates ran longer than 2s" in steps_by_node(view)["check"]["error"]


# ---------------------------------------------------------------------------------------------
# Runs end: a failing output template fails the run, and no step is attempted forever


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_a_failing_run_output_template_fails_the_run_naming_the_template() -> None:
    defn = workflow(
        [node("start", "start"), node("end", "end")],
        [("start", "end")],
        outputs={"ok": "{{ input.n }}", "total": "{{ input.n // 0 }}"},
    )
    view = wait_for_run(start_run(defn, {"n": 1}), timeout=60)
    assert view.status == "failed"
    assert 'run output "total" (outputs.total)' in view.error and "ZeroDivisionError" in view.error


@pytest.fixture(scope="module")
def private_db(pg_url: str) -> Iterator[str]:
    """A database of its own, migrated: no session worker's sweeper touches its steps."""
    name = f"bounds_{uuid.uuid4().hex[:12]}"
    admin = get_engine(pg_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    upgrade_to_head(url)
    yield url
    get_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _new_run(url: str) -> tuple[str, str]:
    defn = parse_dict(_definition())
    with get_engine(url).begin() as conn:
        run_id, sent = executor.create_run(conn, defn, {})
    return run_id, sent[0].step_id


def _run_row(url: str, run_id: str) -> Any:
    with get_engine(url).connect() as conn:
        return conn.execute(text("SELECT status, error FROM runs WHERE id = :id"), {"id": run_id}).one()


def test_a_step_whose_lease_keeps_expiring_is_failed_at_the_attempt_cap(
    private_db: str, settings_env: Callable[..., None]
) -> None:
    settings_env(max_step_attempts=3)
    run_id, step_id = _new_run(private_db)
    engine = get_engine(private_db)
    attempts = []
    for _ in range(6):  # a worker that dies mid-step every time: the lease runs out, the step is taken again
        with engine.begin() as conn:
            claimed = executor.claim_step(conn, step_id, lease_s=0.001, worker="dies")
        attempts.append(claimed.attempt if claimed else None)
        time.sleep(0.05)
    assert attempts == [1, 2, 3, None, None, None]
    with engine.begin() as conn:
        leases.lost_steps(conn, resend_after_s=0)  # the sweeper
    status, error = _run_row(private_db, run_id)
    assert status == "failed"
    assert "started 3 times without finishing" in error and "FLOWLOOM_MAX_STEP_ATTEMPTS" in error
    assert get_settings().max_step_attempts == 3


def test_retries_stop_at_the_attempt_cap_whatever_the_retry_policy_says(
    private_db: str, settings_env: Callable[..., None]
) -> None:
    settings_env(max_step_attempts=2)
    run_id, step_id = _new_run(private_db)
    engine = get_engine(private_db)
    for attempt in (1, 2):
        with engine.begin() as conn:
            claimed = executor.claim_step(conn, step_id, lease_s=30, worker="w")
            assert claimed is not None and claimed.attempt == attempt
            sent = waiting.schedule_retry(conn, claimed, delay_s=0, error="upstream down")
        assert (sent[0].step_id == step_id) if attempt == 1 else not sent
    status, error = _run_row(private_db, run_id)
    assert status == "failed"
    assert (
        "upstream down" in error
        and "gave up after 2 attempts" in error
        and "FLOWLOOM_MAX_STEP_ATTEMPTS" in error
    )

"""Secrets: no workflow reaches the app's own settings, a secret goes only where it is bound, values
are write-only through the REST API and redacted from what runs store, webhooks are signed per
Standard Webhooks.

Workflows run on a real worker whose environment holds the app's signing key, database and broker
URLs and an OIDC client secret; the receivers are loopback servers on 127.0.0.2 and 127.0.0.3 that
record every request, so a refusal is proven by a receiver that saw nothing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets as pysecrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from reflex.istate.data import RouterData
from reflex_base.constants import RouteVar
from sqlalchemy import text
from standardwebhooks import Webhook, WebhookVerificationError

import app.app  # noqa: F401 - registers the pages and their states, as the running app does
from app import routes
from app.auth import sessions
from app.db import db_session
from app.pages.secrets_state import SecretsState
from engine import secret_policy, secrets
from engine.celery_app import celery_for
from engine.errors import ValidationError
from engine.runs import RunView, start_run
from engine.settings import get_settings
from engine.workflows import create_workflow
from models.db import get_engine
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

APP_KEY = "app-signing-key-" + pysecrets.token_hex(16)
OIDC_SECRET = "oidc-client-secret-" + pysecrets.token_hex(8)
PLAIN_ENV = {  # what a deployment often has in its environment besides FLOWLOOM_ settings
    "SECRET_KEY": "plain-secret-key-" + pysecrets.token_hex(8),
    "DATABASE_URL": "postgresql://app:plain-db-password@db/app",
    "REDIS_URL": "redis://:plain-redis-password@cache:6379/0",
}
PARTNER_TOKEN = "partner-token-" + pysecrets.token_hex(8)
BROKER_DB = 14  # a Redis database of our own: no other module's worker takes our steps
# ... and a queue of our own, in case the session's own broker is that database too.
QUEUE = f"{os.environ.get('FLOWLOOM_QUEUE', 'flowloom')}-secrets"
WORKER_TUNING = {"FLOWLOOM_STEP_LEASE_S": "10", "FLOWLOOM_SWEEP_INTERVAL_S": "1"}
HOST_A, HOST_B = "127.0.0.2", "127.0.0.3"
EGRESS = {"egress": {"allowed_hosts": [HOST_A, HOST_B]}}
NAME_GUESSES = [
    "KEY", "key", "SECRET_KEY", "secret_key", "Secret_Key", "FLOWLOOM_SECRET_KEY", "flowloom_secret_key",
    "DATABASE_URL", "database_url", "FLOWLOOM_DATABASE_URL", "REDIS_URL", "redis_url", "OIDC_PROVIDERS",
    "oidc_providers", "OIDC_PROVIDERS.0.client_secret", "SQL_CONNECTIONS", "ENV_SECRETS", "ADMIN_EMAILS",
    "DATA_DIR", "secrets.key", "secret_key.txt", "PGPASSWORD", "HOME", "PATH", "../KEY", "..", "../../KEY",
    "KEY/../KEY", "%2e%2e/KEY", "KEY\n", " KEY", "$FLOWLOOM_SECRET_KEY", "{{ KEY }}", "sneaky", "sneaky-db",
]  # fmt: skip


def _env_secrets(destination: str) -> str:
    """FLOWLOOM_ENV_SECRETS: one honest opt-in, and two that name the app's own configuration."""
    return json.dumps(
        {
            "partner": {"env": "PARTNER_TOKEN", "allowed_destinations": [destination]},
            "sneaky": "FLOWLOOM_SECRET_KEY",
            "sneaky-db": {"env": "DATABASE_URL", "allowed_destinations": [HOST_A, HOST_B]},
        }
    )


# ---- loopback receivers ---------------------------------------------------------------------


class Receiver:
    """An HTTP server on one loopback address that records requests and answers by path.

    /echo: 200 with the credential headers it got in the body; /deny: 401 echoing Authorization;
    /redirect: 302 to `redirect_to`; /hook: verifies Standard Webhooks with `webhook_secret`;
    /v1/chat/completions: the next scripted model reply; anything else: 200 {"ok": true}.
    """

    def __init__(self, host: str) -> None:
        self.requests: list[dict[str, Any]] = []
        self.verified: list[bool] = []
        self.webhook_secret: str | bytes = b""
        self.redirect_to = ""
        self.replies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header(
                    "Content-Type", "application/json" if not isinstance(body, bytes) else "text/plain"
                )
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers)
                receiver.requests.append({"path": self.path, "headers": headers, "body": body})
                if self.path.startswith("/echo"):
                    auth = self.headers.get("Authorization")
                    self._answer(200, {"authorization": auth, "x-api-key": self.headers.get("X-Api-Key")})
                elif self.path.startswith("/deny"):
                    self._answer(401, f"bad credentials: {self.headers.get('Authorization')}".encode())
                elif self.path.startswith("/redirect"):
                    self._answer(302, {}, {"Location": receiver.redirect_to})
                elif self.path.startswith("/hook"):
                    try:
                        Webhook(receiver.webhook_secret).verify(body, headers)
                        receiver.verified.append(True)
                    except Exception:  # a wrong or empty key, a bad signature: not verified
                        receiver.verified.append(False)
                    self._answer(200, {"ok": True})
                elif self.path.startswith("/v1/chat/completions"):
                    self._answer(200, receiver.replies.pop(0) if receiver.replies else _answer("done"))
                else:
                    self._answer(200, {"ok": True})

            do_GET = do_POST = do_PUT = _handle  # noqa: N815 - the http.server API

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.host = host
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def clear(self) -> None:
        self.requests.clear()
        self.verified.clear()
        self.replies.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _answer(text_: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text_}}], "usage": {}}


def _tool_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]}}]
    }


@pytest.fixture(scope="module")
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    a, b = Receiver(HOST_A), Receiver(HOST_B)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def a_b(receivers: tuple[Receiver, Receiver]) -> tuple[Receiver, Receiver]:
    for r in receivers:
        r.clear()
    return receivers


# ---- a worker holding the app's own configuration --------------------------------------------


def _broker(redis_url: str) -> str:
    return f"{redis_url.rpartition('/')[0]}/{BROKER_DB}"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("secrets-data")


@pytest.fixture(scope="module")
def secrets_worker(worker_factory: Callable[..., Any], redis_url: str, receivers, data_dir) -> Any:
    """A worker whose environment has FLOWLOOM_SECRET_KEY, database and broker URLs, an OIDC secret."""
    broker = _broker(redis_url)
    redis.Redis.from_url(broker).flushdb()
    oidc = [
        {"name": "corp", "issuer": "http://127.0.0.1:9/", "client_id": "app", "client_secret": OIDC_SECRET}
    ]
    return worker_factory(
        concurrency=2,
        env={
            "FLOWLOOM_REDIS_URL": broker,
            "FLOWLOOM_QUEUE": QUEUE,
            "FLOWLOOM_SECRET_KEY": APP_KEY,
            "FLOWLOOM_DATA_DIR": str(data_dir),
            "FLOWLOOM_OIDC_PROVIDERS": json.dumps(oidc),
            "FLOWLOOM_ENV_SECRETS": _env_secrets(receivers[0].host),
            "PARTNER_TOKEN": PARTNER_TOKEN,
            **PLAIN_ENV,
            **WORKER_TUNING,
        },  # fmt: skip
    )


@pytest.fixture
def engine_here(
    pg_url, redis_url, clean_db, data_dir, receivers, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """This process stores secrets with the worker's key and sends runs to its broker."""
    for key, value in {
        "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": _broker(redis_url), "FLOWLOOM_QUEUE": QUEUE,
        "FLOWLOOM_SECRET_KEY": APP_KEY,
        "FLOWLOOM_DATA_DIR": str(data_dir), "FLOWLOOM_ENV_SECRETS": _env_secrets(receivers[0].host),
        **WORKER_TUNING,
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    celery_for.cache_clear()  # its apps send to the queue they were made with
    yield
    get_settings.cache_clear()
    celery_for.cache_clear()


def _app_values(pg_url: str, redis_url: str) -> dict[str, str]:
    return {"signing key": APP_KEY, "database URL": pg_url, "broker URL": _broker(redis_url),
            "OIDC client secret": OIDC_SECRET, **PLAIN_ENV}  # fmt: skip


def _stored(view: RunView) -> str:
    """Everything the run left in the database: steps, run row and events."""
    with get_engine(get_settings().database_url).connect() as conn:
        events = conn.execute(
            text("SELECT payload::text FROM events WHERE run_id = :r"), {"r": view.id}
        ).scalars()
        rows = "\n".join(events)
    return json.dumps([view.steps, view.outputs, view.error], default=str) + rows


def _run(nodes: list[dict], edges: list[tuple], inputs: dict | None = None, **extra: Any) -> RunView:
    defn = workflow([*nodes, node("end", "end")], [*edges, ("start", "end")], policy=EGRESS, **extra)
    return wait_for_run(start_run(defn, inputs or {}), timeout=90)


def _http(node_id: str, url: str, secret: str, **config: Any) -> dict:
    return node(node_id, "tool.http", url=url, auth={"type": "bearer", "secret": secret}, **config)


pytestmark = pytest.mark.usefixtures("secrets_worker", "engine_here")


# ---- the app's own configuration is out of reach ----------------------------------------------


def _probes(i: int, ref: str, base: str) -> list[dict]:
    """Every way a node can name a secret, all naming `ref`."""
    return [
        _http(f"http{i}", f"{base}/echo/{i}", ref),
        node(f"header{i}", "tool.http", url=f"{base}/echo/h{i}", auth={"type": "header", "secret": ref}),
        node(f"hook{i}", "webhook.send", url=f"{base}/hook/{i}", secret=ref, payload={"i": i}),
        node(f"agent{i}", "agent", model="m", prompt="hi", base_url=f"{base}/v1", api_key_secret=ref),
    ]


def test_a_secret_name_that_is_not_a_plain_name_is_refused_before_the_run_starts(a_b) -> None:
    a, _ = a_b
    odd = [n for n in NAME_GUESSES if not re.fullmatch(secrets.NAME_PATTERN, n)]
    assert "../KEY" in odd and "{{ KEY }}" in odd
    for i, name in enumerate(odd):
        probes = _probes(i, name, a.base)
        with pytest.raises(ValidationError) as refused:
            _run([node("start", "start"), *probes], [("start", p["id"]) for p in probes])
        assert {issue.node_id for issue in refused.value.issues if issue.severity == "error"} == {
            p["id"] for p in probes
        }, name
    assert a.requests == []


def test_no_secret_name_a_workflow_can_guess_reaches_the_apps_own_settings(a_b, pg_url, redis_url) -> None:
    a, _ = a_b
    names = [n for n in NAME_GUESSES if re.fullmatch(secrets.NAME_PATTERN, n)]
    probes = [p for i, name in enumerate(NAME_GUESSES) if name in names for p in _probes(i, name, a.base)]
    edges = [("start", p["id"]) for p in probes]
    view = _run([node("start", "start"), *probes], edges, {},
                error_handling={"on_error": "continue"})  # fmt: skip

    steps = steps_by_node(view)
    for probe in probes:
        step = steps[probe["id"]]
        assert step["status"] == "failed", (probe["id"], step)
        assert any(
            w in step["error"] for w in ("is not set", "policy violation", "config.", "not a secret name")
        )
    assert a.requests == []  # nothing was sent anywhere: not even a request without the credential
    stored = _stored(view)
    for what, value in _app_values(pg_url, redis_url).items():
        assert value not in stored, f"the {what} reached the run"
    sneaky, sneaky_db = (f"http{NAME_GUESSES.index(n)}" for n in ("sneaky", "sneaky-db"))
    assert "FLOWLOOM_SECRET_KEY is the application's own configuration" in steps[sneaky]["error"]
    assert "DATABASE_URL is read by the application itself" in steps[sneaky_db]["error"]


def test_an_opted_in_environment_secret_reaches_its_destination_and_nothing_else(a_b) -> None:
    a, b = a_b
    view = _run(
        [node("start", "start"), _http("to_a", f"{a.base}/echo", "partner"),
         _http("to_b", f"{b.base}/echo", "partner"), _http("flowloom", f"{a.base}/echo/x", "sneaky")],
        [("start", "to_a"), ("start", "to_b"), ("start", "flowloom")],
        error_handling={"on_error": "continue"},
    )  # fmt: skip
    steps = steps_by_node(view)
    assert steps["to_a"]["status"] == "succeeded", steps["to_a"]["error"]
    assert [r["headers"]["Authorization"] for r in a.requests] == [f"Bearer {PARTNER_TOKEN}"]
    assert b.requests == []
    assert 'secret "partner" may not be sent to http://127.0.0.3' in steps["to_b"]["error"]
    assert "FLOWLOOM_SECRET_KEY is the application's own configuration" in steps["flowloom"]["error"]
    assert PARTNER_TOKEN not in _stored(view)  # the echoed header is redacted from the output


# ---- bindings: destinations and node types ------------------------------------------------------


def test_a_secret_bound_to_host_a_goes_to_a_and_is_refused_toward_b_before_any_request(a_b) -> None:
    a, b = a_b
    secrets.create_secret("partner-api", "pk-" + pysecrets.token_hex(8), allowed_destinations=[HOST_A])
    value = secrets.get_secret("partner-api")
    view = _run(
        [node("start", "start"), _http("to_a", f"{a.base}/echo", "partner-api"),
         _http("to_b", f"{b.base}/echo", "partner-api"),
         node("hook_b", "webhook.send", url=f"{b.base}/hook", secret="partner-api", payload={"x": 1}),
         node("agent_b", "agent", model="m", prompt="hi", base_url=f"{b.base}/v1", api_key_secret="partner-api")],
        [("start", "to_a"), ("start", "to_b"), ("start", "hook_b"), ("start", "agent_b")],
        error_handling={"on_error": "continue"},
    )  # fmt: skip
    steps = steps_by_node(view)
    assert steps["to_a"]["status"] == "succeeded"
    assert [r["headers"]["Authorization"] for r in a.requests] == [f"Bearer {value}"]
    assert b.requests == []
    for node_id, node_type, field in [("to_b", "tool.http", "auth.secret"), ("hook_b", "webhook.send", "secret"),
                                      ("agent_b", "agent", "api_key_secret")]:  # fmt: skip
        error = steps[node_id]["error"]
        assert error.startswith(
            f'policy violation: node "{node_id}" ({node_type}): {field}: secret "partner-api"'
        )
        assert f"may not be sent to http://{HOST_B}:{b.port}" in error and f"allowed: {HOST_A}" in error


def test_a_url_prefix_binding_allows_only_paths_under_it(a_b) -> None:
    a, _ = a_b
    secrets.create_secret("prefixed", "px-" + pysecrets.token_hex(8), allowed_destinations=[f"{a.base}/api/"])
    urls = {"inside": f"{a.base}/api/echo", "sibling": f"{a.base}/apix/echo", "escape": f"{a.base}/api/%2e%2e/echo",
            "other_port": f"http://{HOST_A}:{a.port + 1}/api/echo", "https": f"https://{HOST_A}:{a.port}/api/echo"}  # fmt: skip
    view = _run(
        [node("start", "start"), *[_http(k, u, "prefixed") for k, u in urls.items()]],
        [("start", k) for k in urls],
        error_handling={"on_error": "continue"},
    )
    steps = steps_by_node(view)
    assert steps["inside"]["status"] == "succeeded"
    for refused in ("sibling", "escape", "other_port", "https"):
        assert 'secret "prefixed" may not be sent to' in steps[refused]["error"], refused
    assert [r["path"] for r in a.requests] == ["/api/echo"]


def test_a_node_type_binding_refuses_other_node_types(a_b) -> None:
    a, _ = a_b
    secrets.create_secret("hook-only", "ho-" + pysecrets.token_hex(8), allowed_destinations=[HOST_A],
                          allowed_node_types=["webhook.send"])  # fmt: skip
    view = _run([node("start", "start"), _http("http", f"{a.base}/echo", "hook-only")], [("start", "http")])
    assert view.status == "failed"
    error = steps_by_node(view)["http"]["error"]
    assert (
        'node "http" (tool.http): auth.secret: secret "hook-only" may not be used by tool.http nodes' in error
    )
    assert "allowed: webhook.send" in error
    assert a.requests == []


def test_a_request_carrying_a_secret_does_not_follow_a_redirect_to_another_host(a_b) -> None:
    a, b = a_b
    a.redirect_to = f"{b.base}/echo"
    secrets.create_secret("redirected", "rd-" + pysecrets.token_hex(8), allowed_destinations=[HOST_A])
    view = _run(
        [node("start", "start"), _http("http", f"{a.base}/redirect", "redirected")], [("start", "http")]
    )
    assert view.status == "failed"
    assert "never follows redirects" in steps_by_node(view)["http"]["error"]
    assert len(a.requests) == 1 and b.requests == []


def test_a_tool_call_chosen_by_the_model_cannot_use_a_secret(a_b) -> None:
    a, b = a_b
    secrets.create_secret("llm", "sk-" + pysecrets.token_hex(8), allowed_destinations=[f"{a.base}/v1/"])
    secrets.create_secret("target", "tg-" + pysecrets.token_hex(8), allowed_destinations=[HOST_B])
    attack = {"url": f"{b.base}/echo", "auth": {"type": "bearer", "secret": "target"}}
    a.replies.append(_tool_call("tool_http", attack))
    agent = node("agent", "agent", model="m", prompt="hi", base_url=f"{a.base}/v1", api_key_secret="llm",
                 tools=["tool.http"])  # fmt: skip
    view = _run([node("start", "start"), agent], [("start", "agent")])
    assert view.status == "succeeded", view.error
    offered = json.loads(a.requests[0]["body"])["tools"][0]["function"]["parameters"]["properties"]
    assert "auth" not in offered and "secret_headers" not in offered
    tool_result = json.loads(a.requests[1]["body"])["messages"][-1]["content"]
    assert "a tool call chosen by a model cannot use secrets" in tool_result
    assert b.requests == []


# ---- redaction ----------------------------------------------------------------------------------


def test_secret_values_are_redacted_from_stored_outputs_errors_and_events(a_b) -> None:
    a, _ = a_b
    value = "rv-" + pysecrets.token_hex(12)
    secrets.create_secret("echoed", value, allowed_destinations=[HOST_A])
    basic = {"type": "basic", "secret": "echoed", "username": "svc"}
    view = _run(
        [node("start", "start"), _http("bearer", f"{a.base}/echo", "echoed"),
         node("basic", "tool.http", url=f"{a.base}/echo/basic", auth=basic),
         node("header", "tool.http", url=f"{a.base}/echo/h", secret_headers={"X-Api-Key": "echoed"}),
         _http("denied", f"{a.base}/deny", "echoed")],
        [("start", "bearer"), ("start", "basic"), ("start", "header"), ("start", "denied")],
        error_handling={"on_error": "continue"},
    )  # fmt: skip
    steps = steps_by_node(view)
    assert {r["headers"].get("Authorization") or r["headers"].get("X-Api-Key") for r in a.requests} >= {
        f"Bearer {value}", value}  # fmt: skip
    assert steps["bearer"]["outputs"]["out"]["body"]["authorization"] == "Bearer [redacted]"
    assert steps["basic"]["outputs"]["out"]["body"]["authorization"] == "Basic [redacted]"
    assert steps["header"]["outputs"]["out"]["body"]["x-api-key"] == "[redacted]"
    assert "bad credentials: Bearer [redacted]" in steps["denied"]["error"]
    stored = _stored(view)
    token = base64.b64encode(f"svc:{value}".encode()).decode()
    assert value not in stored and token not in stored


# ---- Standard Webhooks signatures --------------------------------------------------------------


def test_webhooks_are_signed_per_standard_webhooks_and_verify_on_the_receiver(a_b) -> None:
    a, _ = a_b
    key = "whsec_" + base64.b64encode(pysecrets.token_bytes(24)).decode()
    secrets.create_secret("hook-key", key, allowed_destinations=[f"{a.base}/hook"])
    a.webhook_secret = key
    payload = {"order": 7, "note": "é"}
    view = _run([node("start", "start"), node("hook", "webhook.send", url=f"{a.base}/hook", secret="hook-key",
                                             payload=payload)], [("start", "hook")])  # fmt: skip
    assert view.status == "succeeded", view.error
    assert a.verified == [True]
    [request] = a.requests
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["webhook-id"] == headers["idempotency-key"] == f"{view.id}:hook:1"
    assert headers["webhook-signature"].startswith("v1,") and headers["webhook-timestamp"].isdigit()
    assert "x-flowloom-signature" not in headers
    assert Webhook(key).verify(request["body"], request["headers"]) == payload
    with pytest.raises(WebhookVerificationError):  # the body is signed: a changed byte fails
        Webhook(key).verify(request["body"].replace(b"7", b"8"), request["headers"])
    with pytest.raises(WebhookVerificationError):  # and so is the timestamp
        Webhook(key).verify(request["body"], {**request["headers"], "webhook-timestamp": str(int(
            headers["webhook-timestamp"]) - 1)})  # fmt: skip


# ---- the REST API: admins only, values write-only ------------------------------------------------


def test_secrets_api_is_admin_only_and_never_returns_a_value(api_client, make_user) -> None:
    admin = api_client("admin")
    value, rotated = "api-" + pysecrets.token_hex(12), "rot-" + pysecrets.token_hex(12)
    seen: list[str] = []
    body = {"name": "crm", "value": value, "description": "CRM key", "allowed_destinations": ["crm.example.com"],
            "allowed_node_types": ["tool.http"]}  # fmt: skip
    created = admin.post("/api/secrets", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["created_by"].startswith(admin.user.email) and created.json()[
        "allowed_node_types"
    ] == ["tool.http"]
    definition = {"id": "w", "name": "w", "nodes": [
        {"id": "s", "type": "start"},
        {"id": "c", "type": "tool.http", "config": {"url": "https://crm.example.com/x",
                                                    "auth": {"type": "bearer", "secret": "crm"}}}],
        "edges": [{"id": "e", "source": "s", "target": "c"}]}  # fmt: skip
    with db_session() as session:
        create_workflow(session, "CRM sync", definition=definition)
    rotated_answer = admin.put("/api/secrets/crm", json={"value": rotated})
    assert rotated_answer.status_code == 200
    assert (
        rotated_answer.json()["rotated_by"].startswith(admin.user.email)
        and rotated_answer.json()["rotated_at"]
    )
    listed = admin.get("/api/secrets")
    [row] = [r for r in listed.json() if r["name"] == "crm"]
    assert [w["name"] for w in row["used_by"]] == ["CRM sync"]
    assert {r["name"]: r["source"] for r in listed.json()}["partner"] == "env"
    assert admin.post("/api/secrets", json=body).status_code == 409
    bad = admin.post("/api/secrets", json={"value": value, "allowed_destinations": ["not a host"]})
    assert bad.status_code == 422
    seen += [created.text, rotated_answer.text, listed.text, bad.text, str(dict(created.headers))]
    seen.append(admin.get("/api/audit?limit=100").text)
    with get_engine(get_settings().database_url).connect() as conn:
        seen.append(
            conn.execute(text("SELECT ciphertext FROM secrets WHERE name = 'crm'")).scalar_one().hex()
        )
    for text_ in seen:
        assert value not in text_ and rotated not in text_
    assert secrets.get_secret("crm") == rotated  # the value did change
    assert '"secret.rotated"' in seen[-2]

    for role in ("editor", "operator", "viewer"):
        other = api_client(role)
        assert other.get("/api/secrets").status_code == 403
        assert other.post("/api/secrets", json={**body, "name": f"by-{role}"}).status_code == 403
        assert other.put("/api/secrets/crm", json={"value": "x" * 8}).status_code == 403
        assert other.delete("/api/secrets/crm").status_code == 403
    assert secrets.get_secret("crm") == rotated
    assert admin.delete("/api/secrets/crm").status_code == 204
    assert admin.delete("/api/secrets/crm").status_code == 404 and secrets.get_secret("crm") is None


# ---- the Secrets page (Reflex event handlers on a real state) -----------------------------------


def _secrets_tab(user: Any) -> SecretsState:
    token, _ = sessions.issue(str(user.id))
    root = SecretsState.get_root_state()(_reflex_internal_init=True)
    root.router = RouterData.from_router_data(
        {
            RouteVar.HEADERS: {
                "cookie": f"{sessions.COOKIE_NAME}={token}",
                "origin": "http://127.0.0.1:3000",
            },
            RouteVar.ORIGIN: routes.SECRETS,
            RouteVar.PATH: routes.SECRETS,
        }
    )
    return root.get_substate(SecretsState.get_full_name().split(".")[1:])


def test_the_secrets_page_stores_a_value_without_keeping_it_and_refuses_non_admins(make_user) -> None:
    value = "page-" + pysecrets.token_hex(12)
    form = {"name": "from-page", "value": value, "description": "d", "allowed_destinations": "api.example.com\n",
            "allowed_node_types": "tool.http, agent"}  # fmt: skip
    for role in ("editor", "operator", "viewer"):
        SecretsState.create.fn(_secrets_tab(make_user(role)), {**form, "name": f"by-{role}"})
    assert [s.name for s in secrets.list_secrets()] == []

    admin = make_user("admin")
    tab = _secrets_tab(admin)
    SecretsState.create.fn(tab, form)
    assert secrets.get_secret("from-page") == value
    info = secrets.get_info("from-page")
    assert info.allowed_destinations == ["api.example.com"] and info.allowed_node_types == [
        "tool.http",
        "agent",
    ]
    assert info.created_by.startswith(admin.email)
    SecretsState.open_rotate.fn(tab, "from-page")
    SecretsState.rotate.fn(tab, {"value": value + "-2", "allowed_destinations": "api.example.com",
                                 "allowed_node_types": "", "description": "d"})  # fmt: skip
    assert secrets.get_secret("from-page") == value + "-2"
    assert [r.name for r in tab.rows] == ["from-page", "partner", "sneaky", "sneaky-db"]
    root = tab
    while root.parent_state is not None:
        root = root.parent_state
    state = json.dumps(root.dict(), default=str)  # every var of the tab, what the socket could carry
    assert "from-page" in state and value not in state


# ---- the binding rules themselves ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "entry", "allowed"),
    [
        ("https://api.openai.com/v1/chat", "api.openai.com", True),
        ("https://API.OpenAI.com./v1", "api.openai.com", True),
        ("https://api.openai.com.evil.test/v1", "api.openai.com", False),
        ("https://api.openai.com@evil.test/v1", "api.openai.com", False),
        ("https://evil.test/?u=https://api.openai.com", "api.openai.com", False),
        ("https://a.example.com/x", "*.example.com", True),
        ("https://example.com/x", "*.example.com", False),
        ("https://badexample.com/x", "*.example.com", False),
        ("https://api.example.com:8443/x", "api.example.com:443", False),
        ("https://hooks.example.com/in/orders", "https://hooks.example.com/in/", True),
        ("https://hooks.example.com/in", "https://hooks.example.com/in/", True),
        ("https://hooks.example.com/inbox", "https://hooks.example.com/in/", False),
        ("https://hooks.example.com/in/%2e%2e/admin", "https://hooks.example.com/in/", False),
        ("http://hooks.example.com/in/x", "https://hooks.example.com/in/", False),
        ("ftp://api.openai.com/", "api.openai.com", False),
    ],
)
def test_destination_rules_match_hosts_exactly_and_prefixes_on_segments(
    url: str, entry: str, allowed: bool
) -> None:
    assert secret_policy.destination_allowed(url, [entry]) is allowed
    assert secret_policy.destination_allowed(url, []) is False  # no binding: no destination at all

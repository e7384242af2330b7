"""Inbound webhook triggers over real HTTP: POST /api/hooks/{trigger_id} served by granian (two web
processes) on loopback, signed with the official `standardwebhooks` package as a sender would,
runs on real PostgreSQL, Redis and Celery workers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook

from app.api.main import api
from engine import rate_limit, secrets, triggers, workflows
from engine.ops.services import find_free_port
from engine.settings import get_settings
from models.db import get_engine, session_scope
from models.tables import Run
from models.triggers import TriggerDelivery
from tests.integration.conftest import ENGINE_WORKER_ENV, TEST_SECRET_KEY
from tests.integration.engine_helpers import node, wait_for_run, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "auth_env", "engine_worker")

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"inbound-webhook-test-key-32bytes").decode()
GH_SECRET = "github-style plain secret"


@pytest.fixture(scope="module")
def served(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API app served by granian with two worker processes on a loopback port; its base URL."""
    port = find_free_port()
    log_path = tmp_path_factory.mktemp("hooks-granian") / "server.log"
    env = {
        **os.environ, **ENGINE_WORKER_ENV, "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": redis_url,
        "FLOWLOOM_SECRET_KEY": TEST_SECRET_KEY, "FLOWLOOM_DATA_DIR": str(log_path.parent / "data"),
    }  # fmt: skip
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "2", "--no-ws", "app.api.main:api"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"{base}/api/health", timeout=2)
                break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"granian did not come up:\n{log_path.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def http(served: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served, timeout=60) as client:
        yield client


@pytest.fixture
def signing_secret(pg_url: str) -> str:
    secrets.create_secret("hook-secret", SECRET, allowed_node_types=["trigger.webhook"], actor="test")
    secrets.create_secret("gh-secret", GH_SECRET, actor="test")
    return "hook-secret"


def definition(hooks: list[dict], *, slow: bool = False) -> dict:
    middle = [node("wait", "delay", seconds=3)] if slow else []
    names = ["start", *(n["id"] for n in middle), "end"]
    defn = workflow(
        [node("start", "start"), *middle, node("end", "end")], list(zip(names, names[1:], strict=False))
    ).to_dict()
    defn["inputs"] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    defn["triggers"] = hooks
    return defn


def hook(key: str = "hook", **config) -> dict:
    return {"id": key, "kind": "webhook", "config": {"secret": "hook-secret", **config}}


def save(defn: dict, workflow_id: str | None = None) -> str:
    with session_scope(get_settings().database_url) as session:
        if workflow_id is None:
            workflow_id = str(workflows.create_workflow(session, f"hooked {uuid.uuid4().hex[:6]}").id)
        workflows.save_version(session, workflow_id, defn)
    return workflow_id


def db():
    return get_engine(get_settings().database_url)


def trigger_ids(workflow_id: str) -> dict[str, str]:
    with db().connect() as conn:
        return {t.key: t.id for t in triggers.list_for_workflow(conn, workflow_id)}


def new_hook(*, slow: bool = False, **config) -> str:
    return trigger_ids(save(definition([hook(**config)], slow=slow)))["hook"]


def signed(body: bytes, msg_id: str, *, at: datetime | None = None, secret: str = SECRET) -> dict[str, str]:
    """The headers a Standard Webhooks sender sends, made with the official package."""
    at = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def counts() -> tuple[int, int]:
    with db().connect() as conn:
        runs = conn.execute(select(func.count()).select_from(Run)).scalar()
        deliveries = conn.execute(select(func.count()).select_from(TriggerDelivery)).scalar()
    return runs, deliveries


def problem(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text
    return response.json()["detail"]


def test_a_signed_delivery_starts_one_run_and_a_replayed_webhook_id_starts_no_second(http, signing_secret):
    tid = new_hook()
    body = b'{"n": 7}'
    # Whatever else a sender puts in: no API key, another site's Origin. The signature decides.
    extra = {"authorization": "Bearer not-a-flowloom-key", "origin": "https://sender.example"}
    first = http.post(f"/api/hooks/{tid}", content=body, headers={**signed(body, "msg_1"), **extra})
    assert first.status_code == 202, first.text
    answer = first.json()
    assert answer["duplicate"] is False and answer["status"] in ("queued", "running", "succeeded")
    run_id = answer["run_id"]

    same = http.post(
        f"/api/hooks/{tid}", content=body, headers=signed(body, "msg_1")
    )  # a retry, new timestamp
    assert same.status_code == 200, same.text
    assert same.json()["run_id"] == run_id and same.json()["duplicate"] is True
    assert same.headers["webhook-duplicate"] == "true"

    view = wait_for_run(run_id)
    assert view.status == "succeeded" and view.inputs == {"n": 7} and view.outputs == {"n": 7}
    with db().connect() as conn:
        run = conn.execute(select(Run.trigger_id, Run.started_via).where(Run.id == run_id)).one()
    assert (str(run.trigger_id), run.started_via) == (tid, "trigger")
    assert counts() == (1, 1)


def test_bad_signature_old_timestamp_and_oversized_body_are_refused_and_start_nothing(http, signing_secret):
    tid = new_hook(max_body_bytes=1000)
    url, body = f"/api/hooks/{tid}", b'{"n": 1}'
    wrong_key = "whsec_" + base64.b64encode(b"another key entirely, 32 bytes!!").decode()

    detail = problem(
        http.post(url, content=body, headers=signed(body, "m1", secret=wrong_key)), 401, "signature_invalid"
    )
    assert "does not match" in detail
    tampered = signed(body, "m1")
    problem(http.post(url, content=b'{"n": 2}', headers=tampered), 401, "signature_invalid")
    detail = problem(
        http.post(url, content=body, headers={"content-type": "application/json"}), 401, "signature_invalid"
    )
    assert "webhook-id" in detail and "webhook-signature" in detail
    old = signed(body, "m1", at=datetime.now(UTC) - timedelta(minutes=6))
    assert "old" in problem(http.post(url, content=body, headers=old), 401, "timestamp_out_of_range")
    ahead = signed(body, "m1", at=datetime.now(UTC) + timedelta(minutes=6))
    assert "future" in problem(http.post(url, content=body, headers=ahead), 401, "timestamp_out_of_range")
    big = json.dumps({"n": 1, "pad": "x" * 2000}).encode()
    too_big = http.post(url, content=big, headers=signed(big, "m1"))
    assert "1,000 bytes" in problem(too_big, 413, "body_too_large")

    for bad, needle in [(b"not json", "not JSON"), (b"[1, 2]", "an array"), (b"", "empty")]:
        assert needle in problem(
            http.post(url, content=bad, headers=signed(bad, "m1")), 422, "request_invalid"
        )
    wrong_input = b'{"n": "seven"}'
    refused = http.post(url, content=wrong_input, headers=signed(wrong_input, "m1"))
    problem(refused, 422, "validation_failed")
    assert [i["field"] for i in refused.json()["issues"]] == ["input.n"]
    assert SECRET not in refused.text

    assert counts() == (0, 0)  # nothing refused started a run or recorded a delivery
    # So the id of a refused delivery is still free: the sender's corrected retry starts the run.
    assert http.post(url, content=body, headers=signed(body, "m1")).status_code == 202
    assert counts() == (1, 1)


def test_a_streamed_body_is_cut_off_at_the_triggers_cap_before_more_is_read(signing_secret):
    """Straight into the ASGI app: count what the route pulls of an endless chunked body."""
    tid = new_hook(max_body_bytes=100_000)
    chunk, pulled = b"x" * 65_536, 0

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": f"/api/hooks/{tid}", "raw_path": f"/api/hooks/{tid}".encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    asyncio.run(api(scope, receive, send))
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["code"] == "body_too_large"
    assert pulled * len(chunk) <= 100_000 + len(chunk)  # never more than the cap and one chunk
    assert counts() == (0, 0)


def test_a_webhook_body_may_exceed_the_anonymous_cap_up_to_the_triggers_own(http, signing_secret):
    tid = new_hook(max_body_bytes=300_000)
    body = json.dumps({"n": 3, "note": "y" * 150_000}).encode()  # over FLOWLOOM_MAX_ANONYMOUS_BODY_BYTES
    response = http.post(f"/api/hooks/{tid}", content=body, headers=signed(body, "big-1"))
    assert response.status_code == 202, response.text
    assert wait_for_run(response.json()["run_id"]).inputs["note"] == "y" * 150_000


def gh_headers(body: bytes, delivery: str | None = None) -> dict[str, str]:
    digest = hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}
    return {**headers, "X-GitHub-Delivery": delivery} if delivery else headers


def test_hmac_mode_verifies_the_header_and_replays_by_the_id_header_or_the_body(http, signing_secret):
    wid = save(definition([
        hook("github", secret="gh-secret", signature="hmac", hmac_header="X-Hub-Signature-256",
             id_header="X-GitHub-Delivery"),
        hook("plain", secret="gh-secret", signature="hmac", hmac_header="X-Hub-Signature-256"),
    ]))  # fmt: skip
    ids = trigger_ids(wid)
    body = b'{"n": 11}'
    first = http.post(f"/api/hooks/{ids['github']}", content=body, headers=gh_headers(body, "d-1"))
    assert first.status_code == 202, first.text
    again = http.post(f"/api/hooks/{ids['github']}", content=body, headers=gh_headers(body, "d-1"))
    assert again.status_code == 200 and again.json()["run_id"] == first.json()["run_id"]
    other = http.post(f"/api/hooks/{ids['github']}", content=body, headers=gh_headers(body, "d-2"))
    assert other.status_code == 202 and other.json()["run_id"] != first.json()["run_id"]
    forged = {**gh_headers(body, "d-3"), "X-Hub-Signature-256": "sha256=" + "0" * 64}
    problem(http.post(f"/api/hooks/{ids['github']}", content=body, headers=forged), 401, "signature_invalid")
    # Without an id header the body's SHA-256 is the delivery id.
    plain = [
        http.post(f"/api/hooks/{ids['plain']}", content=body, headers=gh_headers(body)) for _ in range(2)
    ]
    assert [r.status_code for r in plain] == [202, 200]
    assert counts() == (3, 3)


def test_wrapped_inputs_carry_body_query_and_only_safe_headers(http, signing_secret):
    tid = new_hook(inputs="wrapped")
    body = b'[{"event": "push"}]'  # wrapped takes any JSON, not only an object
    headers = {
        **signed(body, "w-1"),
        "user-agent": "Sender/1.0",
        "authorization": "Bearer abc",
        "cookie": "c=1",
    }
    response = http.post(f"/api/hooks/{tid}?ref=main&tag=a&tag=b", content=body, headers=headers)
    assert response.status_code == 202, response.text
    view = wait_for_run(response.json()["run_id"])
    assert view.inputs == {
        "body": [{"event": "push"}],
        "headers": {"content-type": "application/json", "user-agent": "Sender/1.0", "webhook-id": "w-1"},
        "query": {"ref": "main", "tag": ["a", "b"]},
    }


def test_respond_last_node_answers_with_the_outputs_or_202_when_the_run_takes_longer(http, signing_secret):
    tid = new_hook(respond="last_node", wait_s=30)
    body = b'{"n": 5}'
    response = http.post(f"/api/hooks/{tid}", content=body, headers=signed(body, "r-1"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded" and response.json()["outputs"] == {"n": 5}
    replay = http.post(f"/api/hooks/{tid}", content=body, headers=signed(body, "r-1"))
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    assert replay.json()["outputs"] == {"n": 5}

    slow = new_hook(slow=True, respond="last_node", wait_s=0.5)  # the run waits 3 s in a delay node
    pending = http.post(f"/api/hooks/{slow}", content=body, headers=signed(body, "r-2"))
    assert pending.status_code == 202, pending.text
    assert "outputs" not in pending.json() and pending.json()["status"] not in ("succeeded", "failed")
    assert wait_for_run(pending.json()["run_id"]).outputs == {"n": 5}


def test_the_rate_limit_answers_429_after_n_deliveries_for_every_process(http, signing_secret):
    tid = new_hook(rate_per_minute=2)
    answers = []
    for i in range(3):
        body = json.dumps({"n": i}).encode()
        answers.append(http.post(f"/api/hooks/{tid}", content=body, headers=signed(body, f"rate-{i}")))
    assert [a.status_code for a in answers] == [202, 202, 429], answers[-1].text
    assert "2 deliveries a minute" in problem(answers[2], 429, "rate_limited")
    assert int(answers[2].headers["retry-after"]) >= 1
    # The count lives in Redis: this test process (not one of the server's) is refused as well.
    assert rate_limit.take(f"webhook:{tid}", 2) > 0
    # Another trigger has its own budget.
    other = new_hook(rate_per_minute=2)
    assert http.post(f"/api/hooks/{other}", content=b"{}", headers=signed(b"{}", "o-1")).status_code == 202
    assert counts() == (3, 3)


def test_unknown_inactive_and_paused_triggers(http, signing_secret):
    body = b"{}"
    for target in (str(uuid.uuid4()), "not-a-uuid"):
        problem(
            http.post(f"/api/hooks/{target}", content=body, headers=signed(body, "u")),
            404,
            "trigger_not_found",
        )
    wid = save(definition([hook(), {"id": "tick", "kind": "schedule", "config": {"cron": "0 3 * * *"}}]))
    ids = trigger_ids(wid)
    problem(
        http.post(f"/api/hooks/{ids['tick']}", content=body, headers=signed(body, "u")),
        404,
        "trigger_not_found",
    )

    triggers.set_paused(ids["hook"], True, actor="user:test")
    problem(
        http.post(f"/api/hooks/{ids['hook']}", content=body, headers=signed(body, "p-1")),
        409,
        "trigger_paused",
    )
    # Paused is only told to a caller that signed correctly.
    forged = signed(body, "p-1", secret="whsec_" + base64.b64encode(b"z" * 32).decode())
    problem(http.post(f"/api/hooks/{ids['hook']}", content=body, headers=forged), 401, "signature_invalid")
    triggers.set_paused(ids["hook"], False, actor="user:test")
    assert (
        http.post(f"/api/hooks/{ids['hook']}", content=body, headers=signed(body, "p-1")).status_code == 202
    )

    save(definition([{**hook(), "enabled": False}]), wid)  # disabled in the new version: gone
    problem(
        http.post(f"/api/hooks/{ids['hook']}", content=body, headers=signed(body, "p-2")),
        404,
        "trigger_not_found",
    )
    assert counts() == (1, 1)


def test_the_signing_secret_obeys_its_node_type_binding_and_never_leaks(http, signing_secret):
    secrets.create_secret("bound-elsewhere", SECRET, allowed_node_types=["webhook.send"], actor="test")
    tid = new_hook(secret="bound-elsewhere")
    body = b'{"n": 1}'
    refused = http.post(f"/api/hooks/{tid}", content=body, headers=signed(body, "s-1"))
    detail = problem(refused, 503, "setting_invalid")
    assert "signing secret" in detail and "bound-elsewhere" not in refused.text and SECRET not in refused.text
    secrets.update_secret(
        "bound-elsewhere", allowed_node_types=["webhook.send", "trigger.webhook"], actor="test"
    )
    assert http.post(f"/api/hooks/{tid}", content=body, headers=signed(body, "s-1")).status_code == 202

    missing = new_hook(secret="no-such-secret")
    problem(
        http.post(f"/api/hooks/{missing}", content=body, headers=signed(body, "s-2")), 503, "setting_invalid"
    )
    assert counts() == (1, 1)

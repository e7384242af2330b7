"""The circuit breaker per HTTP destination (engine/circuit_breaker.py) on the suite's Redis: it opens
after failures in a row and then refuses before any connection, lets one probe through when
half-open, closes on the probe's success, is one circuit for every process; and a step's retry
waits for a server's Retry-After."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine import circuit_breaker
from engine.contract.http import retry_after_s
from engine.egress import EgressClient, EgressPolicy
from engine.errors import ErrorCode, StepError
from engine.runs import start_run
from engine.settings import get_settings
from tests.integration.engine_helpers import node, step_events, steps_by_node, wait_for_run, workflow


class Flaky:
    """A loopback server answering each request with the next scripted status (then 200)."""

    def __init__(self) -> None:
        self.statuses: list[tuple[int, dict[str, str]]] = []
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer.hits += 1
                status, headers = outer.statuses.pop(0) if outer.statuses else (200, {})
                body = json.dumps({"hit": outer.hits}).encode()
                self.send_response(status)
                for key, value in {"content-type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.destination = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def flaky() -> Iterator[Flaky]:
    server = Flaky()
    yield server
    server.server.shutdown()


@pytest.fixture
def breaker(settings_env, redis_url: str) -> Iterator[str]:
    """The breaker on the suite's Redis: open after 3 failures, for 1 s."""
    settings_env(redis_url=redis_url, breaker_failures=3, breaker_open_s=1)
    yield redis_url
    circuit_breaker.reset()


def get(server: Flaky) -> int | StepError:
    async def call() -> int:
        async with EgressClient(EgressPolicy(allowed_hosts=[f"127.0.0.1:{server.port}"])) as client:
            return (await client.get(server.url)).status_code

    try:
        return asyncio.run(call())
    except StepError as exc:
        return exc


def test_the_circuit_opens_after_failures_in_a_row_and_then_refuses_before_connecting(
    flaky: Flaky, breaker: str
) -> None:
    flaky.statuses = [(503, {}), (500, {}), (429, {})]
    assert [get(flaky) for _ in range(3)] == [503, 500, 429]
    assert flaky.hits == 3
    refused = get(flaky)
    assert isinstance(refused, StepError) and refused.code == ErrorCode.CIRCUIT_OPEN
    assert refused.retryable and 0 < refused.retry_after_s <= 1
    assert "circuit breaker open" in str(refused) and flaky.destination in str(refused)
    assert flaky.hits == 3  # refused before a connection
    [circuit] = [c for c in circuit_breaker.circuits() if c.destination == flaky.destination]
    assert (circuit.state, circuit.failures) == ("open", 3)


def test_a_success_clears_the_count(flaky: Flaky, breaker: str) -> None:
    flaky.statuses = [(503, {}), (503, {}), (200, {}), (503, {}), (503, {})]
    assert [get(flaky) for _ in range(5)] == [503, 503, 200, 503, 503]
    assert get(flaky) == 200  # four failures, but never three in a row
    assert flaky.hits == 6


def test_half_open_lets_one_probe_through_and_its_success_closes_the_circuit(
    flaky: Flaky, breaker: str
) -> None:
    flaky.statuses = [(503, {})] * 3
    for _ in range(3):
        get(flaky)
    assert not circuit_breaker.allow(flaky.destination).admitted
    deadline = 200
    while not (admission := circuit_breaker.allow(flaky.destination)).admitted and deadline:
        deadline -= 1
        threading.Event().wait(0.05)  # waiting for Redis's clock to pass the open period
    assert admission.admitted and admission.probe
    # While that probe is out, nobody else gets through.
    assert not circuit_breaker.allow(flaky.destination).admitted
    circuit_breaker.record(flaky.destination, ok=True)
    assert get(flaky) == 200
    assert not [c for c in circuit_breaker.circuits() if c.destination == flaky.destination]


def test_a_failed_probe_opens_the_circuit_again(flaky: Flaky, breaker: str) -> None:
    for _ in range(3):
        circuit_breaker.record(flaky.destination, ok=False)
    while not circuit_breaker.allow(flaky.destination).admitted:
        threading.Event().wait(0.05)
    assert circuit_breaker.record(flaky.destination, ok=False) == "open"
    assert not circuit_breaker.allow(flaky.destination).admitted


def test_every_process_sees_one_circuit(flaky: Flaky, breaker: str, settings_env) -> None:
    settings_env(breaker_open_s=30)  # open for longer than the other process takes to start
    for _ in range(3):
        circuit_breaker.record(flaky.destination, ok=False)
    probe = (
        "from engine import circuit_breaker; import sys; "
        f"sys.exit(0 if not circuit_breaker.allow({flaky.destination!r}).admitted else 1)"
    )
    env = {"FLOWLOOM_REDIS_URL": breaker, "FLOWLOOM_BREAKER_FAILURES": "3", "FLOWLOOM_BREAKER_OPEN_S": "30"}
    result = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **env}, timeout=60)
    assert result.returncode == 0, "another process did not see the open circuit"


def test_without_redis_the_breaker_works_in_the_process(flaky: Flaky, settings_env) -> None:
    settings_env(redis_url="", breaker_failures=2, breaker_open_s=30)
    try:
        flaky.statuses = [(503, {}), (503, {})]
        assert [get(flaky) for _ in range(2)] == [503, 503]
        refused = get(flaky)
        assert isinstance(refused, StepError) and refused.code == ErrorCode.CIRCUIT_OPEN
    finally:
        circuit_breaker.reset()


def test_a_redis_that_does_not_answer_lets_requests_through(flaky: Flaky, settings_env) -> None:
    settings_env(redis_url="redis://127.0.0.1:1/0", breaker_failures=1, breaker_open_s=30)
    flaky.statuses = [(503, {}), (503, {})]
    assert [get(flaky) for _ in range(2)] == [503, 503]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("999999", 3600.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date(header: str | None, expected: float | None) -> None:
    from datetime import UTC, datetime

    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert retry_after_s(header, now=now) == expected


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_a_steps_retry_waits_for_the_servers_retry_after(flaky: Flaky, redis_url: str) -> None:
    flaky.statuses = [(429, {"retry-after": "2"})]
    defn = workflow(
        [
            node("start", "start"),
            {**node("get", "tool.http", url=flaky.url), "retry": {"max_attempts": 3, "backoff_s": 0.01}},
            node("end", "end"),
        ],
        [("start", "get"), ("get", "end")],
        id=f"retry-after-{uuid.uuid4().hex[:6]}",
        policy={"egress": {"allowed_hosts": [f"127.0.0.1:{flaky.port}"]}},
    )
    view = wait_for_run(start_run(defn, {}))
    assert view.status == "succeeded", view.error
    assert steps_by_node(view)["get"]["attempt"] == 2 and flaky.hits == 2
    [retrying] = [e for e in step_events(view.id, "get") if e["type"] == "workflow.step.retrying"]
    assert retrying["delay_s"] >= 2  # not the 0.01 s backoff


def test_the_settings_are_validated(settings_env) -> None:
    settings_env(breaker_failures=-1)
    with pytest.raises(ValueError, match="breaker_failures"):
        get_settings()


def test_admins_see_open_circuits_and_can_close_one(flaky: Flaky, breaker: str, api_client) -> None:
    for _ in range(3):
        circuit_breaker.record(flaky.destination, ok=False)
    admin = api_client("admin")
    listed = admin.get("/api/circuits")
    assert listed.status_code == 200, listed.text
    [mine] = [c for c in listed.json()["circuits"] if c["destination"] == flaky.destination]
    assert mine["state"] == "open" and mine["failures"] == 3 and mine["opens_for_s"] > 0
    assert listed.json()["failures_to_open"] == 3
    assert api_client("editor").get("/api/circuits").status_code == 403
    assert (
        api_client("editor")
        .post("/api/circuits/reset", params={"destination": flaky.destination})
        .status_code
        == 403
    )
    reset = admin.post("/api/circuits/reset", params={"destination": flaky.destination})
    assert reset.status_code == 200
    assert flaky.destination not in [c["destination"] for c in reset.json()["circuits"]]
    assert get(flaky) == 200
    bad = admin.post("/api/circuits/reset", params={"destination": "not a url"})
    assert bad.status_code == 422

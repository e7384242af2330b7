"""GET /api/runs/{run_id}/events: a real run on real workers, read as Server-Sent Events from the API
served by granian on a loopback port; resumed mid-run from Last-Event-ID; a finished run replayed.
And the reader under it: an event committed behind a still-open insert waits for it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.db import db_session
from engine import approvals, events, run_stream, run_watch, workflows
from engine.ops.services import find_free_port
from engine.run_events import events_after
from engine.runs import start_run
from engine.settings import get_settings
from models.db import get_engine
from tests.integration.conftest import TEST_SECRET_KEY
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0  # how long a test waits for something before failing (never a measured duration)


@pytest.fixture(scope="module")
def server(pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API (keep-alive every 0.5 s: tests/integration/sse_served.py) under granian; its base URL."""
    port = find_free_port()
    log_path = tmp_path_factory.mktemp("granian-sse") / "server.log"
    env = {
        **os.environ, "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": redis_url,
        "FLOWLOOM_SECRET_KEY": TEST_SECRET_KEY, "FLOWLOOM_DATA_DIR": str(log_path.parent / "data"),
    }  # fmt: skip
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--no-ws", "tests.integration.sse_served:api"]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                httpx.get(f"{base}/api/health", timeout=2)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"granian did not come up:\n{log_path.read_text(errors='replace')[-3000:]}"
                    ) from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class Message:
    """One SSE message (fields) or comment, as a client parses it."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: str | None = None
    comments: list[str] = field(default_factory=list)


def messages(response: httpx.Response) -> Iterator[Message]:
    """Parse a text/event-stream body as it arrives."""
    current, data = Message(), []
    for line in response.iter_lines():
        if line == "":
            if data:
                current.data = "\n".join(data)
            yield current
            current, data = Message(), []
        elif line.startswith(":"):
            current.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name in ("id", "event", "retry"):
                setattr(current, name, value)


class Listener(threading.Thread):
    """Reads a stream in the background until the server ends it."""

    def __init__(self, client: httpx.Client, path: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(daemon=True)
        self.client, self.path, self.headers = client, path, headers or {}
        self.received: list[Message] = []
        self.ended = False
        self.error: BaseException | None = None
        self._changed = threading.Condition()

    def run(self) -> None:
        try:
            with self.client.stream("GET", self.path, headers=self.headers) as response:
                response.raise_for_status()
                for message in messages(response):
                    with self._changed:
                        self.received.append(message)
                        self._changed.notify_all()
            self.ended = True
        except BaseException as exc:  # noqa: BLE001 - reported by wait_until / the test
            self.error = exc
        with self._changed:
            self._changed.notify_all()

    def wait_until(self, check: Callable[[list[Message]], bool], what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: check(self.received) or not self.is_alive(), WAIT_S):
                raise AssertionError(f"stream never showed {what}: {self.received}")
        assert check(self.received), f"stream ended before {what}: {self.error} {self.received}"


def events_only(received: list[Message]) -> list[Message]:
    return [m for m in received if m.event is not None]


def outbox_ids(run_id: str) -> list[str]:
    with get_engine(get_settings().database_url).connect() as conn:
        return [str(e.seq) for e in events_after(conn, run_id, 0, 10_000)]


def approval_workflow() -> str:
    """START -> REVIEW (human.approval, any operator) -> DONE, saved: a run that waits for a person."""
    defn = workflow(
        [node("START", "start"), node("REVIEW", "human.approval", title="Review"), node("DONE", "end")],
        [("START", "REVIEW"), ("REVIEW", "DONE", "approved")],
        mode="state_machine", name="waits",
    ).to_dict()  # fmt: skip
    with db_session() as session:
        return str(workflows.create_workflow(session, "waits", definition=defn).id)


def emit_tokens(run_id: str, *texts: str) -> None:
    """What an agent writes while its model streams: agent.stream events with the text deltas."""
    for delta in texts:
        with get_engine(get_settings().database_url).begin() as conn:
            events.emit(conn, events.AGENT_STREAM, run_id, node_id="REVIEW", agent_id="REVIEW", text=delta)


def approve(run_id: str) -> None:
    with get_engine(get_settings().database_url).connect() as conn:
        approval_id = conn.execute(
            text("SELECT id FROM approvals WHERE run_id = :r"), {"r": run_id}
        ).scalar_one()
    approver = approvals.Approver("", "boss@example.test", "operator", email_verified=True)
    approvals.decide(str(approval_id), approver, action="approved")


def test_a_live_run_streams_resumes_from_last_event_id_and_closes_at_its_end(server, api_client) -> None:
    key = api_client("operator").api_key
    client = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {key}"}, timeout=WAIT_S)
    started = client.post(f"/api/workflows/{approval_workflow()}/runs", json={})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    path = f"/api/runs/{run_id}/events"

    # First connection: read until the run waits for its approval, then drop it.
    first: list[Message] = []
    with client.stream("GET", path) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for message in messages(response):
            first.append(message)
            if message.event == "workflow.step.waiting":
                break
    assert first[0].retry == "2000" and first[0].event is None  # the opening comment sets the retry
    first_events = events_only(first)
    assert first_events[0].event == "workflow.started"

    # While no one listens, the agent streams tokens; a resumed stream must replay exactly those.
    emit_tokens(run_id, "Hel", "lo ", "world")
    resumed = Listener(client, path, headers={"Last-Event-ID": first_events[-1].id})
    resumed.start()
    resumed.wait_until(
        lambda got: (
            [m.event for m in events_only(got)].count("agent.stream") == 3
            and "keep-alive" in got[-1].comments
        ),
        "the three token events, then a keep-alive comment",
    )
    approve(run_id)  # the rest arrives live, and the server ends the stream after the run's end
    resumed.join(WAIT_S)
    assert resumed.ended and resumed.error is None, resumed.error
    assert wait_for_run(run_id).status == "succeeded"

    second_events = events_only(resumed.received)
    streamed = [m.id for m in first_events + second_events]
    assert streamed == outbox_ids(run_id) and len(set(streamed)) == len(
        streamed
    )  # nothing lost, nothing twice
    tokens = [json.loads(m.data)["data"]["text"] for m in second_events if m.event == "agent.stream"]
    assert tokens == ["Hel", "lo ", "world"]
    last = json.loads(second_events[-1].data)
    assert second_events[-1].event == last["event_type"] == "workflow.completed"
    assert last["correlation_id"] == run_id and last["data"]["status"] == "succeeded"

    # A finished run's stream replays everything and closes; ?after= and Last-Event-ID pick the tail.
    with client.stream("GET", path) as response:
        replay = events_only(list(messages(response)))
    assert [m.id for m in replay] == streamed and [m.data for m in replay] == [
        m.data for m in first_events + second_events
    ]
    middle = streamed[len(streamed) // 2]
    with client.stream("GET", path, params={"after": middle}) as response:
        tail = [m.id for m in events_only(list(messages(response)))]
    with client.stream("GET", path, params={"after": 0}, headers={"Last-Event-ID": middle}) as response:
        header_wins = [m.id for m in events_only(list(messages(response)))]
    assert tail == header_wins == streamed[len(streamed) // 2 + 1 :]


def test_unknown_runs_bad_resume_ids_and_anonymous_callers_are_refused(server, api_client) -> None:
    key = api_client("viewer").api_key
    client = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {key}"}, timeout=WAIT_S)
    unknown = client.get(f"/api/runs/{uuid.uuid4()}/events")
    assert unknown.status_code == 404 and unknown.json()["code"] == "run_not_found"
    assert unknown.headers["content-type"].startswith("application/problem+json")
    run_id = start_run(workflow([node("s", "start"), node("e", "end")], [("s", "e")]), {})
    bad = client.get(f"/api/runs/{run_id}/events", headers={"Last-Event-ID": "twelve"})
    assert bad.status_code == 422 and bad.json()["field"] == "Last-Event-ID"
    assert client.get(f"/api/runs/{run_id}/events", params={"after": -1}).status_code == 422
    assert httpx.get(f"{server}/api/runs/{run_id}/events", timeout=WAIT_S).status_code == 401


def test_an_event_committed_behind_an_open_insert_waits_for_it(clean_db) -> None:
    """Ids are taken at insert and seen at commit: 12 may commit before 11. The reader must not
    hand out 12 (a resume after it would skip 11 for good) until 11 has committed."""
    editor_defn = workflow([node("s", "start"), node("w", "human.approval", title="t"), node("e", "end")],
                           [("s", "w"), ("w", "e", "approved")], mode="state_machine")  # fmt: skip
    run_id = start_run(editor_defn, {})
    wait_for_step(run_id, "w", "waiting")
    engine = get_engine(get_settings().database_url)
    reader = run_stream.Reader(run_id)
    with engine.connect() as conn:
        before = reader.read(conn)
    assert before.events and not before.held_back and not before.ended

    slow = engine.connect()
    slow_tx = slow.begin()
    events.emit(slow, events.AGENT_STREAM, run_id, text="first")  # takes the lower id, not committed
    with engine.begin() as fast:
        events.emit(fast, events.AGENT_STREAM, run_id, text="second")  # the higher id, committed
    with engine.connect() as conn:
        held = reader.read(conn)
    assert held.events == [] and held.held_back
    slow_tx.commit()
    slow.close()
    with engine.connect() as conn:
        after = reader.read(conn)
    assert [e.payload["data"]["text"] for e in after.events] == ["first", "second"]
    assert [e.seq for e in after.events] == sorted(e.seq for e in after.events)
    approve(run_id)
    wait_for_run(run_id)


def test_an_armed_wait_wakes_for_an_event_committed_before_it_is_awaited(clean_db) -> None:
    """Pages arm, read, then wait: an event that commits between the read and the wait still wakes
    them (of that run, or of any run with ANY_RUN), by PostgreSQL's notification."""
    watched, other = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario() -> list[bool]:
        # The first wait of a process may be woken by the listener connecting; get that over with.
        warm = await run_watch.arm([watched], WAIT_S)
        emit_tokens(watched, "warm-up")
        await warm.wait()
        woken = []
        for run_ids, writes_to in (([watched], watched), ([run_watch.ANY_RUN], other)):
            armed = await run_watch.arm(run_ids, WAIT_S)
            await asyncio.to_thread(emit_tokens, writes_to, "x")  # committed before the wait below
            woken.append(await armed.wait())
        quiet = await run_watch.arm([watched], 0.2)  # nothing happens: the timeout ends it
        woken.append(await quiet.wait())
        return woken

    assert asyncio.run(scenario()) == [True, True, False]

"""A worker killed with SIGKILL mid-step loses nothing and repeats no side effect."""

from __future__ import annotations

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text

from engine.runs import get_run, start_run
from engine.settings import get_settings
from models.db import get_engine
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, wait_for_step, workflow

FAST_LEASE = {"FLOWLOOM_STEP_LEASE_S": "2", "FLOWLOOM_SWEEP_INTERVAL_S": "0.5"}


class Receiver:
    """A webhook receiver that applies each idempotency key once, like a well-behaved API."""

    def __init__(self, hold_first_s: float = 0.0) -> None:
        self.deliveries: list[dict] = []
        self.effects: list[str] = []
        self.first_arrived = threading.Event()
        self.hold_first_s = hold_first_s
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key", "")
                receiver.deliveries.append({"key": key, "body": json.loads(body or b"null")})
                if key not in receiver.effects:
                    receiver.effects.append(key)
                first = len(receiver.deliveries) == 1
                receiver.first_arrived.set()
                if first and receiver.hold_first_s:
                    threading.Event().wait(receiver.hold_first_s)  # the sender is killed while it waits
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _webhook_flow(port: int, before_webhook_s: float):
    return workflow(
        [
            node("start", "start"),
            node("work", "tool.python", tool="sleep", args={"seconds": before_webhook_s}),
            node("notify", "webhook.send", url=f"http://127.0.0.1:{port}/hook", timeout_s=30),
            node("end", "end"),
        ],
        [("start", "work"), ("work", "notify"), ("notify", "end")],
        policy={"egress": {"allowed_hosts": [f"127.0.0.1:{port}"]}},
    )


def _owner(workers, step: dict):
    pid = int(step["worker"].rsplit(":", 1)[1])
    return next(w for w in workers if pid == w.pid or pid in w.child_pids())


@pytest.fixture
def two_workers(engine_env, isolated_broker, worker_factory):
    workers = [
        worker_factory(concurrency=1, env={**FAST_LEASE, "FLOWLOOM_REDIS_URL": isolated_broker})
        for _ in range(2)
    ]
    yield workers
    for w in workers:
        w.stop()


def _running_step(run_id: str, node_id: str) -> dict:
    wait_for_step(run_id, node_id, "running")
    return next(s for s in get_run_steps(run_id) if s["node_id"] == node_id)


def get_run_steps(run_id: str) -> list[dict]:
    with get_engine(get_settings().database_url).connect() as conn:
        rows = (
            conn.execute(
                text("SELECT node_id, status, worker, attempt FROM step_runs WHERE run_id = :r"),
                {"r": run_id},
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def test_killed_worker_mid_step_run_completes_and_webhook_fires_once(two_workers):
    receiver = Receiver()
    try:
        run_id = start_run(_webhook_flow(receiver.port, before_webhook_s=4), {"order": 7})
        victim = _owner(two_workers, _running_step(run_id, "work"))
        victim.kill(signal.SIGKILL)
        view = wait_for_run(run_id, timeout=90)
        assert view.status == "succeeded", view.error
        steps = steps_by_node(view)
        assert steps["work"]["attempt"] == 2  # the step ran again on the surviving worker
        assert len(receiver.deliveries) == 1 and len(receiver.effects) == 1
    finally:
        receiver.close()


def test_killed_worker_while_webhook_in_flight_receiver_applies_it_once(two_workers):
    receiver = Receiver(hold_first_s=6)
    try:
        run_id = start_run(_webhook_flow(receiver.port, before_webhook_s=0), {"order": 8})
        assert receiver.first_arrived.wait(60)
        victim = _owner(two_workers, _running_step(run_id, "notify"))
        victim.kill(signal.SIGKILL)
        view = wait_for_run(run_id, timeout=90)
        assert view.status == "succeeded", view.error
        # The step was sent again after the kill with the same idempotency key; the effect happened once.
        assert len(receiver.deliveries) >= 2
        assert {d["key"] for d in receiver.deliveries} == {f"{run_id}:notify:1"}
        assert receiver.effects == [f"{run_id}:notify:1"]
        assert len({json.dumps(d["body"], sort_keys=True) for d in receiver.deliveries}) == 1
    finally:
        receiver.close()
    assert get_run(run_id).status == "succeeded"


def _event_count(run_id: str) -> int:
    with get_engine(get_settings().database_url).connect() as conn:
        return conn.execute(text("SELECT count(*) FROM events WHERE run_id = :r"), {"r": run_id}).scalar_one()


@pytest.mark.usefixtures("engine_worker")
def test_redelivered_message_for_a_finished_step_does_nothing(engine_env):
    from engine.tasks import execute_step

    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")])
    run_id = start_run(defn, {})
    view = wait_for_run(run_id)
    before = _event_count(run_id)
    for step in view.steps:
        assert execute_step(str(step["id"])) == "skipped"
    assert _event_count(run_id) == before
    assert [s["attempt"] for s in wait_for_run(run_id).steps] == [1, 1]


@pytest.mark.usefixtures("engine_worker")
def test_step_recorded_but_never_sent_is_sent_by_the_sweeper(engine_env):
    from engine import executor

    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")])
    with get_engine(get_settings().database_url).begin() as conn:
        run_id, unsent = executor.create_run(conn, defn, {})  # committed, but no Celery message leaves
    assert unsent
    view = wait_for_run(run_id, timeout=60)
    assert view.status == "succeeded"


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_send_the_broker_refuses_marks_the_step_unsent_for_the_next_sweep(engine_env, scheme):
    """With the broker down, dispatch.send gives up (no result backend, one retry) and marks the
    steps unsent (sent_at NULL), which the next sweep resends however recent the step is."""
    from engine import dispatch, executor, leases, metrics
    from engine.celery_app import celery_for
    from engine.ops.services import find_free_port

    closed = find_free_port()  # nothing listens there
    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")])
    db = get_engine(get_settings().database_url)
    with db.begin() as conn:
        _, sent = executor.create_run(conn, defn, {})
    step_id = sent[0].step_id
    deferred = metrics.REGISTRY.get_sample_value("flowloom_step_sends_deferred_total") or 0.0
    with db.connect() as holder:
        # A key-share lock: our UPDATE of sent_at may pass, session workers' sweepers skip the row.
        holder.execute(text("SELECT 1 FROM step_runs WHERE id = :s FOR KEY SHARE"), {"s": step_id})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FLOWLOOM_REDIS_URL", f"redis://127.0.0.1:{closed}/0")
            if scheme == "amqp":
                mp.setenv("FLOWLOOM_BROKER_URL", f"amqp://guest:guest@127.0.0.1:{closed}//")
            else:
                mp.delenv("FLOWLOOM_BROKER_URL", raising=False)
            get_settings.cache_clear()
            try:
                assert dispatch.send(sent) == [step_id]
            finally:
                mp.undo()
                get_settings.cache_clear()
                celery_for.cache_clear()
        assert metrics.REGISTRY.get_sample_value("flowloom_step_sends_deferred_total") == deferred + 1
        row = holder.execute(
            text("SELECT status, sent_at FROM step_runs WHERE id = :s"), {"s": step_id}
        ).one()
        assert (row.status, row.sent_at) == ("queued", None)
        # The sweep takes it at once (the lease time has not passed since the step was recorded).
        resent = leases.lost_steps(holder, resend_after_s=3600)
        assert step_id in {d.step_id for d in resent}
        holder.rollback()  # the session workers' sweepers send it now; it runs like any other


@pytest.mark.usefixtures("engine_worker")
def test_a_lone_ready_successor_runs_in_the_same_worker_without_a_broker_hop(engine_env):
    defn = workflow(
        [
            node("start", "start"),
            node("a", "tool.python", tool="echo", args={"value": 1}),
            node("b", "tool.python", tool="echo", args={"value": 2}),
            node("end", "end"),
        ],
        [("start", "a"), ("a", "b"), ("b", "end")],
    )
    run_id = start_run(defn, {})
    assert wait_for_run(run_id).status == "succeeded"
    workers = {s["worker"] for s in get_run_steps(run_id)}
    assert len(workers) == 1, workers  # one process ran the whole chain


@pytest.mark.usefixtures("engine_worker")
def test_a_successor_claimed_inline_by_a_process_that_then_dies_runs_once_its_lease_expires(
    engine_env, monkeypatch
):
    """The inline path claims the lone ready successor in the transaction that records the step
    before it, so no message is sent for it. A process that dies right after that commit leaves the
    successor running under its lease: when the lease expires a sweeper sends it and it runs."""
    from engine import executor, tasks

    defn = workflow(
        [
            node("start", "start"),
            node("a", "tool.python", tool="echo", args={"value": 1}),
            node("end", "end"),
        ],
        [("start", "a"), ("a", "end")],
    )
    with get_engine(get_settings().database_url).begin() as conn:
        run_id, unsent = executor.create_run(conn, defn, {})  # committed, no Celery message sent
    with monkeypatch.context() as patched:
        patched.setenv("FLOWLOOM_STEP_LEASE_S", "1")
        get_settings.cache_clear()
        # This process runs the start step and claims "a" to run next, then "dies" (never runs it).
        result, sent, claimed = tasks._execute_once(unsent[0].step_id, None, inline=True)
    get_settings.cache_clear()
    assert (result, sent) == ("succeeded", []) and claimed is not None and claimed.node_id == "a"
    a = next(s for s in get_run_steps(run_id) if s["node_id"] == "a")
    assert a["status"] == "running" and a["worker"].endswith(f":{os.getpid()}")  # claimed by this process

    view = wait_for_run(run_id, timeout=60)
    assert view.status == "succeeded", view.error
    steps = steps_by_node(view)
    assert steps["a"]["attempt"] == 2 and steps["a"]["outputs"] == {"out": 1}  # its lease ran out once
    assert steps["end"]["status"] == "succeeded"

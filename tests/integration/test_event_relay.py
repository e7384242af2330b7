"""The outbox relay (`flowloom relay`) against a real Kafka-protocol broker (Tansu), real workers and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import insert, select, text

from engine import events
from engine.event_schema import json_schema
from engine.parse import parse_file
from engine.runs import start_run
from models.db import get_engine
from models.tables import Event
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow
from tests.integration.kafka_broker import Record, TansuBroker, first_occurrences, read_topic

REPO_ROOT = Path(__file__).resolve().parents[2]
HELLO = parse_file(REPO_ROOT / "examples" / "hello.yaml")
SCHEMAS = {
    family: Draft202012Validator(json_schema(family)) for family in ("workflow", "agent", "dead-letter")
}

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "clean_db")


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """One Tansu broker for the session on a free loopback port."""
    broker = TansuBroker(tmp_path_factory.mktemp("tansu") / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


class RelayProcess:
    """A `flowloom relay` process with a topic prefix of its own."""

    def __init__(self, env: dict[str, str], log_path: Path, prefix: str) -> None:
        self.prefix = prefix
        self.bootstrap = env["FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS"]
        self.log_path = log_path
        with open(log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine.ops.cli", "relay"], cwd=REPO_ROOT, env=env,
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def topic(self, family: str) -> str:
        return f"{self.prefix}.{family}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_connected(self, timeout: float = 30.0) -> None:
        """Wait until the relay has made its topics and connected its producer."""
        deadline = time.monotonic() + timeout
        while "relay: connected to" not in self.log():
            assert self.process.poll() is None and time.monotonic() < deadline, self.log()[-3000:]
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM, as `flowloom up` stops it; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


@pytest.fixture
def relay(pg_url: str, tansu: TansuBroker, tmp_path: Path) -> Iterator[Callable[..., RelayProcess]]:
    """relay(**FLOWLOOM_settings) -> a running `flowloom relay` publishing to fresh topics."""
    started: list[RelayProcess] = []

    def start(**settings: object) -> RelayProcess:
        prefix = f"t{uuid.uuid4().hex[:10]}"
        env = {
            **os.environ,
            "FLOWLOOM_DATABASE_URL": pg_url,
            "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
            "FLOWLOOM_KAFKA_TOPIC_PREFIX": prefix,
            **{f"FLOWLOOM_{k.upper()}": str(v) for k, v in settings.items()},
        }
        process = RelayProcess(env, tmp_path / f"relay-{len(started)}.log", prefix)
        started.append(process)
        process.wait_connected()
        return process

    yield start
    for process in started:
        assert process.stop() == 0, process.log()[-3000:]


def outbox(pg_url: str) -> list:
    """Every outbox row in id order."""
    with get_engine(pg_url).connect() as conn:
        return list(conn.execute(select(Event.__table__).order_by(Event.__table__.c.id)))


def wait_all_published(pg_url: str, relay: RelayProcess, timeout: float = 60.0) -> list:
    """Wait until no outbox row is unpublished; fail with the relay's log if some stay."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = outbox(pg_url)
        if rows and all(r.published_at is not None for r in rows):
            return rows
        assert relay.process.poll() is None, f"relay exited:\n{relay.log()[-3000:]}"
        time.sleep(0.2)
    waiting = [r.id for r in outbox(pg_url) if r.published_at is None]
    raise AssertionError(f"events {waiting} were never published:\n{relay.log()[-3000:]}")


def wait_for_log(process: RelayProcess, text: str, timeout: float = 60.0) -> None:
    """Wait until the relay's log says `text`."""
    deadline = time.monotonic() + timeout
    while text not in process.log():
        assert time.monotonic() < deadline, f"relay never logged {text!r}:\n{process.log()[-3000:]}"
        time.sleep(0.2)


def by_run(records: list[Record]) -> dict[str, list[Record]]:
    """Records per key (run id) in the order read (offset order per partition; `records` may span two
    broker incarnations), after asserting a run uses one partition."""
    runs: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        runs[record.key].append(record)
    for key, recs in runs.items():
        assert len({r.partition for r in recs}) == 1, f"run {key} spread over partitions"
    return runs


def assert_run_order(rows: list, records: list[Record]) -> None:
    """Per run, the de-duplicated records are the run's outbox rows in id order."""
    expected: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        expected[str(row.run_id)].append(str(row.event_id))
    for run_id, recs in by_run(records).items():
        kept = first_occurrences(recs)
        assert [r.value["event_id"] for r in kept] == expected[run_id]
        assert [r.value["sequence"] for r in kept] == sorted(r.value["sequence"] for r in kept)


def test_a_runs_events_arrive_in_order_keyed_by_run_match_their_schema_and_are_marked_published(
    relay, pg_url
):
    process = relay()
    run_ids = [start_run(HELLO, {"x": x}) for x in (20, 1)]
    views = [wait_for_run(r) for r in run_ids]
    assert [v.status for v in views] == ["succeeded", "succeeded"]
    rows = wait_all_published(pg_url, process)
    assert {str(r.run_id) for r in rows} == set(run_ids)

    records = read_topic(process.bootstrap, process.topic("workflow"), expect=len(rows))
    assert len(records) == len(rows)
    for record in records:
        SCHEMAS["workflow"].validate(record.value)
        assert record.key == record.value["run_id"]
        assert record.headers["event_type"] == record.value["event_type"].encode()
    assert_run_order(rows, records)

    first = {
        r.value["event_type"]: r.value
        for r in by_run(records)[run_ids[0]]
        if r.value["step_id"] in (None, "add")
    }
    assert first["workflow.started"]["input_data"] == {"x": 20}
    assert first["workflow.started"]["workflow_id"] == "hello"
    assert first["workflow.started"]["workflow_name"] == "Hello Flowloom"
    add = first["workflow.step.completed"]
    assert (add["step_type"], add["status"], add["next_steps"]) == ("tool.python", "succeeded", ["big"])
    assert add["output_data"] == {"out": 22} and add["execution_time_ms"] > 0
    assert first["workflow.completed"]["output_data"] == views[0].outputs
    skipped = [r.value["step_id"] for r in by_run(records)[run_ids[0]] if r.value["status"] == "skipped"]
    assert sorted(skipped) == ["done_small", "whisper"]


def test_events_published_again_after_a_lost_commit_are_removed_by_de_duplicating_on_event_id(relay, pg_url):
    process = relay()
    run_id = start_run(HELLO, {"x": 20})
    wait_for_run(run_id)
    rows = wait_all_published(pg_url, process)
    # What a relay killed after the broker's acks but before its commit leaves behind.
    with get_engine(pg_url).begin() as conn:
        conn.execute(text("UPDATE events SET published_at = NULL WHERE id <= 3"))
    rows = wait_all_published(pg_url, process)

    records = read_topic(process.bootstrap, process.topic("workflow"), expect=len(rows) + 3)
    assert len(records) == len(rows) + 3  # three duplicates...
    kept = first_occurrences(sorted(records, key=lambda r: r.offset))
    assert [r.value["event_id"] for r in kept] == [str(r.event_id) for r in rows]  # ...gone, order kept


def test_broker_outage_leaves_events_in_the_outbox_and_all_arrive_after_the_broker_restarts(
    relay, pg_url, tansu
):
    process = relay()
    slow = workflow(
        [
            node("start", "start"),
            node("nap", "tool.python", tool="sleep", args={"seconds": 5}),
            node("end", "end"),
        ],
        [("start", "nap"), ("nap", "end")],
    )
    first_run = start_run(slow, {})
    wait_for_step(first_run, "nap", "running")
    before_rows = wait_all_published(pg_url, process)
    before = read_topic(tansu.bootstrap, process.topic("workflow"), expect=len(before_rows))
    assert len(before) == len(before_rows)

    tansu.stop()  # mid-run: the rest of the first run and two more runs happen while the broker is away
    try:
        more = [start_run(HELLO, {"x": x}) for x in (20, 3)]
        for run_id in [first_run, *more]:
            assert wait_for_run(run_id).status == "succeeded"
        # Until the relay gives up on what it sent: Tansu's memory storage comes back empty, and
        # records a producer re-sends to it before it has its topics again are acknowledged and lost.
        wait_for_log(process, "events wait for the broker")
        waiting = [r for r in outbox(pg_url) if r.published_at is None]
        assert {str(r.run_id) for r in waiting} == {first_run, *more}
        assert len(waiting) == len(outbox(pg_url)) - len(before_rows)
        assert process.process.poll() is None, "the relay gave up while the broker was away"
    finally:
        tansu.start()  # same port, empty (memory storage): the relay creates its topics again

    rows = wait_all_published(pg_url, process, timeout=90)
    after = read_topic(tansu.bootstrap, process.topic("workflow"), expect=len(waiting))
    assert {r.value["event_id"] for r in before + after} == {str(r.event_id) for r in rows}  # none lost
    # Order per run is checked without an outage (above): Tansu keeps topics in memory, so a restart can
    # drop records it had acknowledged and their resend may land after a later event (README).


def test_oversized_and_unknown_events_go_to_the_dead_letter_topic_without_blocking_the_run(relay, pg_url):
    process = relay(kafka_max_message_bytes=50_000)
    big_output = workflow(
        [node("start", "start"), node("fill", "tool.python", tool="echo", args={"value": "y" * 60_000}),
         node("end", "end")],
        [("start", "fill"), ("fill", "end")],
    )  # fmt: skip
    run_id = start_run(big_output, {})
    assert wait_for_run(run_id).status == "succeeded"
    with get_engine(pg_url).begin() as conn:
        # An error text too large for any record: input and output data are all a record can drop.
        events.emit(conn, events.AGENT_FAILED, run_id, node_id="fill", agent_id="a1", error="z" * 80_000)
        conn.execute(
            insert(Event.__table__).values(
                event_id=uuid.uuid4(), event_type="workflow.step.teleported", run_id=run_id,
                payload={"event_type": "workflow.step.teleported", "data": {"node_id": "fill"}},
            )
        )  # fmt: skip
        events.emit(conn, events.AGENT_COMPLETED, run_id, node_id="fill", agent_id="a1", outcome="answered")
    rows = wait_all_published(pg_url, process)

    dead = read_topic(process.bootstrap, process.topic("dead-letter"), expect=2)
    assert len(dead) == 2
    for record in dead:
        SCHEMAS["dead-letter"].validate(record.value)
        assert record.key == run_id
    too_big, unknown = sorted(dead, key=lambda r: r.value["sequence"])
    assert "FLOWLOOM_KAFKA_MAX_MESSAGE_BYTES" in too_big.value["error"]
    assert too_big.value["original_payload"] is None and too_big.value["original_payload_bytes"] > 80_000
    assert "zzz" in too_big.value["original_payload_excerpt"]
    assert "teleported" in unknown.value["error"] and unknown.value["original_payload"]["data"] == {
        "node_id": "fill"
    }
    marks = {r.id: r.payload.get("dead_letter") for r in rows}
    assert marks[too_big.value["sequence"]]["error"] == too_big.value["error"]

    agent = read_topic(process.bootstrap, process.topic("agent"), expect=1)
    assert [r.value["event_type"] for r in agent] == ["agent.completed"]  # the event after them went out
    SCHEMAS["agent"].validate(agent[0].value)
    workflow_records = read_topic(process.bootstrap, process.topic("workflow"), expect=len(rows) - 3)
    fill = [r.value for r in workflow_records if r.value["event_type"] == "workflow.step.completed"
            and r.value["step_id"] == "fill"]  # fmt: skip
    assert fill[0]["output_data"] is None and "output_data" in fill[0]["truncated"]


def test_relay_publishes_thousands_of_outbox_events_per_second(relay, pg_url, record_property):
    run_id = start_run(HELLO, {"x": 20})
    wait_for_run(run_id)
    with get_engine(pg_url).begin() as conn:
        step_ids = [
            str(s)
            for s in conn.execute(text("SELECT id FROM step_runs WHERE run_id = :r"), {"r": run_id}).scalars()
        ]
        for i in range(5000):
            events.emit(
                conn,
                events.STEP_STARTED,
                run_id,
                step_id=step_ids[i % len(step_ids)],
                node_id="add",
                attempt=1,
            )
    process = relay()
    rows = wait_all_published(pg_url, process, timeout=120)
    with get_engine(pg_url).connect() as conn:
        first, last = conn.execute(text("SELECT min(published_at), max(published_at) FROM events")).one()
    rate = len(rows) / max((last - first).total_seconds(), 1e-3)
    record_property("relay_events_per_s", round(rate))
    print(f"\nrelay published {len(rows)} events at {rate:.0f} events/s")
    records = read_topic(process.bootstrap, process.topic("workflow"), expect=len(rows), timeout=60)
    assert len({r.value["event_id"] for r in records}) == len(rows)


def test_relay_without_bootstrap_servers_refuses_to_start_and_names_the_setting(pg_url):
    env = {**os.environ, "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": ""}
    done = subprocess.run(
        [sys.executable, "-m", "engine.ops.cli", "relay"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 3
    assert "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS is empty" in done.stderr

"""Re-run from a step and fork with new inputs, on real workers: the steps before the chosen one are
copied (their side effects do not happen again), the chosen one and what follows run anew."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlmodel import Session

from engine import audit
from engine.errors import ErrorCode, FlowloomError, ValidationError
from engine.rerun import fork, rerun_from
from engine.runs import start_run
from models.db import get_engine
from tests.conftest import SUITE_SQL_CONNECTION
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow


@pytest.fixture
def ledger(pg_url: str) -> Iterator[str]:
    """A table each side-effecting node appends its id to: how often a node really ran."""
    name = f"rerun_ledger_{uuid.uuid4().hex[:8]}"
    with get_engine(pg_url).begin() as conn:
        conn.execute(text(f"CREATE TABLE {name} (node text NOT NULL, n int)"))
    yield name
    with get_engine(pg_url).begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def runs_of(pg_url: str, table: str) -> dict[str, int]:
    with get_engine(pg_url).connect() as conn:
        rows = conn.execute(text(f"SELECT node, count(*) FROM {table} GROUP BY node")).all()
    return {r[0]: r[1] for r in rows}


def write(node_id: str, table: str, value: str = "0") -> dict:
    """A tool.sql node that appends (node_id, value) to the ledger: a side effect that counts."""
    return node(
        node_id, "tool.sql", connection=SUITE_SQL_CONNECTION, allow_writes=True,
        query=f"INSERT INTO {table} (node, n) VALUES (:node, CAST(:n AS int))",
        params={"node": node_id, "n": value},
    )  # fmt: skip


def diamond(table: str):
    """start -> a -> b -> end and start -> p -> end: p is a branch parallel to a and b."""
    return workflow(
        [node("start", "start"), write("a", table), write("b", table), write("p", table), node("end", "end")],
        [("start", "a"), ("a", "b"), ("b", "end"), ("start", "p"), ("p", "end")],
        inputs={"type": "object", "properties": {"n": {"type": "integer"}}},
    )


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_rerun_from_a_step_reuses_earlier_outputs_and_runs_the_rest_again(pg_url: str, ledger: str) -> None:
    first = wait_for_run(start_run(diamond(ledger), {"n": 1}))
    assert first.status == "succeeded", first.error
    assert runs_of(pg_url, ledger) == {"a": 1, "b": 1, "p": 1}

    again = wait_for_run(rerun_from(first.id, "b", started_by="user:test", actor="tester@example.com"))
    assert again.status == "succeeded", again.error
    # a and p (not downstream of b) did not run again; b did.
    assert runs_of(pg_url, ledger) == {"a": 1, "b": 2, "p": 1}
    old, new = steps_by_node(first), steps_by_node(again)
    for reused in ("start", "a", "p"):
        assert new[reused]["reused_from"] == old[reused]["id"], reused
        assert new[reused]["outputs"] == old[reused]["outputs"]
        assert new[reused]["finished_at"] == old[reused]["finished_at"]  # its recorded timing, not a new one
    for ran in ("b", "end"):
        assert new[ran]["reused_from"] is None and new[ran]["attempt"] == 1
        assert new[ran]["started_at"] > old["p"]["finished_at"]
    assert again.inputs == {"n": 1} and again.source_run_id == first.id and again.source_kind == "rerun"
    assert again.source_node_id == "b"
    with Session(get_engine(pg_url)) as session:
        entries = {e.action: e for e in audit.entries(session, limit=50) if e.target_id == again.id}
    assert entries["run.rerun"].details == {"source_run_id": first.id, "from_node": "b", "visit": 1}
    assert "run.started" in entries


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_rerun_from_the_start_runs_everything_again(pg_url: str, ledger: str) -> None:
    first = wait_for_run(start_run(diamond(ledger), {}))
    again = wait_for_run(rerun_from(first.id, "start"))
    assert again.status == "succeeded", again.error
    assert runs_of(pg_url, ledger) == {"a": 2, "b": 2, "p": 2}
    assert all(s["reused_from"] is None for s in again.steps)


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_rerun_from_a_failed_step_runs_it_again_with_the_inputs_it_had(pg_url: str, ledger: str) -> None:
    # b writes to a table that does not exist yet: it fails until the cause is fixed.
    later = f"{ledger}_later"
    defn = workflow(
        [node("start", "start"), write("a", ledger), write("b", later), node("end", "end")],
        [("start", "a"), ("a", "b"), ("b", "end")],
    )
    first = wait_for_run(start_run(defn, {}))
    assert first.status == "failed" and steps_by_node(first)["b"]["status"] == "failed"
    with get_engine(pg_url).begin() as conn:  # the cause is fixed outside the workflow
        conn.execute(text(f"CREATE TABLE {later} (node text NOT NULL, n int)"))
    try:
        again = wait_for_run(rerun_from(first.id, "b"))
        assert again.status == "succeeded", again.error
        assert runs_of(pg_url, ledger) == {"a": 1} and runs_of(pg_url, later) == {"b": 1}
        assert steps_by_node(again)["b"]["inputs"] == steps_by_node(first)["b"]["inputs"]
    finally:
        with get_engine(pg_url).begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {later}"))


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_rerun_refuses_a_step_that_did_not_run(pg_url: str, ledger: str) -> None:
    first = wait_for_run(start_run(diamond(ledger), {}))
    with pytest.raises(FlowloomError) as unknown:
        rerun_from(first.id, "nope")
    assert unknown.value.code == ErrorCode.RERUN_STEP_INVALID and unknown.value.node_id == "nope"
    with pytest.raises(FlowloomError) as second_visit:
        rerun_from(first.id, "a", visit=2)
    assert second_visit.value.code == ErrorCode.RERUN_STEP_INVALID
    with pytest.raises(FlowloomError) as missing:
        rerun_from(str(uuid.uuid4()), "a")
    assert missing.value.code == ErrorCode.RUN_NOT_FOUND
    assert runs_of(pg_url, ledger) == {"a": 1, "b": 1, "p": 1}  # nothing started


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_fork_runs_the_same_version_with_new_inputs(pg_url: str, ledger: str) -> None:
    defn = workflow(
        [node("start", "start"), write("a", ledger, "{{ input.n }}"), node("end", "end")],
        [("start", "a"), ("a", "end")],
        inputs={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    )
    first = wait_for_run(start_run(defn, {"n": 1}))
    forked = wait_for_run(fork(first.id, {"n": 7}, started_by="user:test"))
    assert forked.status == "succeeded", forked.error
    assert forked.inputs == {"n": 7} and forked.source_run_id == first.id and forked.source_kind == "fork"
    with get_engine(pg_url).connect() as conn:
        assert sorted(conn.execute(text(f"SELECT n FROM {ledger}")).scalars()) == [1, 7]
    with pytest.raises(ValidationError) as refused:
        fork(first.id, {"n": "seven"})
    assert [i.field for i in refused.value.issues] == ["input.n"]


@pytest.mark.usefixtures("engine_env", "isolated_broker")
def test_rerun_refuses_a_run_that_is_still_going(ledger: str) -> None:
    # No worker listens on the isolated broker: the run stays running with its start step queued.
    run_id = start_run(diamond(ledger), {})
    with pytest.raises(FlowloomError) as going:
        rerun_from(run_id, "a")
    assert going.value.code == ErrorCode.RUN_NOT_ENDED


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_rerun_of_a_state_machine_copies_the_steps_queued_before_the_chosen_visit(
    pg_url: str, ledger: str
) -> None:
    defn = workflow(
        [node("start", "start"), write("a", ledger), write("b", ledger), node("end", "end")],
        [("start", "a"), ("a", "b"), ("b", "end")],
        mode="state_machine",
    )
    first = wait_for_run(start_run(defn, {}))
    assert first.status == "succeeded", first.error
    again = wait_for_run(rerun_from(first.id, "b"))
    assert again.status == "succeeded", again.error
    assert runs_of(pg_url, ledger) == {"a": 1, "b": 2}
    reused = [s["node_id"] for s in again.steps if s["reused_from"] is not None]
    assert reused == ["start", "a"]

"""Sub-workflows on real workers: a `subworkflow` step runs a saved workflow's pinned version as a
child run linked both ways, waits for it without holding a worker and resumes with its outputs or
its error; cancelling the parent cancels the child; recursion is refused when validating and the
nesting depth is capped when running; a step's timeout_s bounds its child run; a worker killed while
the parent waits loses nothing."""

from __future__ import annotations

import signal
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from app.pages.run_detail_view import header, step_cards
from engine import workflows
from engine.errors import ErrorCode, ValidationError
from engine.parse import parse_dict
from engine.run_detail import get_run_detail
from engine.runs import RunView, cancel_run, get_run, start_run
from engine.settings import get_settings
from engine.validate import validate
from models.db import get_engine, session_scope
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, wait_for_step, workflow

FAST_LEASE = {"FLOWLOOM_STEP_LEASE_S": "2", "FLOWLOOM_SWEEP_INTERVAL_S": "0.5"}
NUMBER_IN = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}


def save(defn, name: str) -> str:
    """A new saved workflow whose version 1 is `defn`; its id."""
    with session_scope(get_settings().database_url) as session:
        return str(workflows.create_workflow(session, name, definition=defn.to_dict()).id)


def save_next(workflow_id: str, defn) -> int:
    with session_scope(get_settings().database_url) as session:
        number, _ = workflows.save_version(session, workflow_id, defn.to_dict())
    return number


def doubler(middle: list[dict] | None = None, edges: list[tuple] | None = None):
    """start -> calc (x + x) -> end, with the run output `doubled`; `middle` replaces calc."""
    nodes = middle or [
        node("calc", "tool.python", tool="add", args={"a": "{{ input.x }}", "b": "{{ input.x }}"})
    ]
    return workflow(
        [node("start", "start"), *nodes, node("end", "end")],
        edges or [("start", "calc"), ("calc", "end")],
        name="Doubler",
        inputs=NUMBER_IN,
        outputs={"doubled": "{{ steps.calc.output }}"},
    )


def caller(
    workflow_id: str,
    version: int = 1,
    *,
    inputs: dict | None = None,
    out: str = "doubled",
    timeout_s: float | None = None,
    **extra: Any,
):
    """start -> call (subworkflow, x = input.n) -`out`-> end; the run output `result` is that output."""
    inputs = {"x": "{{ input.n }}"} if inputs is None else inputs
    limit = {} if timeout_s is None else {"timeout_s": timeout_s}
    return workflow(
        [
            node("start", "start"),
            node("call", "subworkflow", workflow_id=workflow_id, version=version, inputs=inputs, **limit),
            node("end", "end"),
        ],
        [("start", "call"), ("call", "end", out)],
        name=extra.pop("name", "Caller"),
        outputs={"result": f"{{{{ steps.call.outputs.{out} }}}}"},
        **extra,
    )


def child_of(view: RunView, node_id: str = "call") -> RunView:
    step = steps_by_node(view)[node_id]
    assert step["child_run_id"], step
    child = get_run(str(step["child_run_id"]))
    assert child is not None
    return child


def events_of(run_id: str, event_type: str) -> list[dict]:
    query = text("SELECT payload FROM events WHERE run_id = :r AND event_type = :t ORDER BY id")
    with get_engine(get_settings().database_url).connect() as conn:
        return [row.payload["data"] for row in conn.execute(query, {"r": run_id, "t": event_type})]


@pytest.mark.usefixtures("engine_env", "engine_worker")
class TestOnTheSessionWorker:
    def test_parent_runs_the_pinned_child_and_gets_its_outputs(self):
        child_id = save(doubler(), "Doubler")
        # A later version of the child must not be what runs: the call pins version 1.
        tripler = doubler([node("calc", "tool.python", tool="echo", args={"value": "not this version"})])
        assert save_next(child_id, tripler) == 2
        parent_id = save(caller(child_id), "Caller")
        saved = workflows.saved_version(parent_id)
        assert saved is not None
        run_id = start_run(saved.definition, {"n": 21}, workflow_id=parent_id, version_id=saved.version_id)

        view = wait_for_run(run_id)
        assert view.status == "succeeded", (view.error, view.steps)
        assert view.outputs == {"result": 42}
        assert steps_by_node(view)["call"]["outputs"] == {"doubled": 42}
        child = child_of(view)
        assert child.status == "succeeded" and child.outputs == {"doubled": 42}
        assert child.inputs == {"x": 21}
        # Linked both ways: the child names the parent run and the very step that waited for it.
        assert child.parent_run_id == run_id
        assert child.parent_step_id == str(steps_by_node(view)["call"]["id"])
        assert child.workflow_id == child_id and child.version == 1
        assert view.parent_run_id is None
        # The parent step waited (no worker held) for that child run.
        waiting = events_of(run_id, "workflow.step.waiting")
        assert [(w["node_id"], w["kind"], w["child_run_id"]) for w in waiting] == [
            ("call", "child_run", child.id)
        ]

    def test_the_run_page_and_the_rest_api_link_parent_step_and_child_run(self, api_client):
        viewer = api_client("viewer")
        child_id = save(doubler(), "Doubler")
        run_id = start_run(caller(child_id), {"n": 4})
        view = wait_for_run(run_id)
        child = child_of(view)
        step_id = str(steps_by_node(view)["call"]["id"])

        parent_card = next(c for c in step_cards(get_run_detail(run_id)) if c.node_id == "call")
        assert (parent_card.child, parent_card.child_href) == (
            f"child run {child.id[:8]}",
            f"/runs/{child.id}",
        )
        assert all(c.child_href == "" for c in step_cards(get_run_detail(run_id)) if c.node_id != "call")
        child_header = header(get_run_detail(child.id))
        assert (child_header.parent, child_header.parent_href) == (
            f"Child run of {run_id[:8]} (step call)",
            f"/runs/{run_id}",
        )
        assert header(get_run_detail(run_id)).parent == ""

        parent_json = viewer.get(f"/api/runs/{run_id}").json()
        call = next(s for s in parent_json["steps"] if s["node_id"] == "call")
        assert call["child_run_id"] == child.id and parent_json["parent_run_id"] is None
        child_json = viewer.get(f"/api/runs/{child.id}").json()
        assert (child_json["parent_run_id"], child_json["parent_step_id"]) == (run_id, step_id)
        described = viewer.get("/api/node-types/subworkflow").json()
        assert described["dynamic_inputs"] is True and described["calls_workflow"] is True
        assert described["config_schema"]["properties"]["workflow_id"]["x-fixed"] is True

    def test_a_failed_child_fails_the_parent_step_with_the_childs_error(self):
        broken = doubler(
            [node("calc", "tool.python", tool="fail", args={"message": "ledger is down", "retryable": False})]
        )
        child_id = save(broken, "Broken doubler")
        run_id = start_run(caller(child_id), {"n": 1})

        view = wait_for_run(run_id)
        assert view.status == "failed"
        step = steps_by_node(view)["call"]
        child = child_of(view)
        assert child.status == "failed" and "ledger is down" in (child.error or "")
        assert step["status"] == "failed"
        assert f"child run {child.id} failed" in step["error"] and "ledger is down" in step["error"]
        assert step["outputs"]["error"]["code"] == ErrorCode.CHILD_RUN_FAILED.value
        assert step["outputs"]["error"]["child_run_id"] == child.id
        assert "ledger is down" in (view.error or "")

    def test_a_failed_child_takes_the_parent_steps_error_branch(self):
        broken = doubler([node("calc", "tool.python", tool="fail", args={"retryable": False})])
        child_id = save(broken, "Broken doubler")
        defn = workflow(
            [
                node("start", "start"),
                node("call", "subworkflow", workflow_id=child_id, inputs={"x": 1}),
                node("handled", "tool.python", tool="echo", args={"value": "{{ ports.in.code }}"}),
                node("end", "end"),
            ],
            [("start", "call"), ("call", "handled", "error"), ("handled", "end")],
        )
        view = wait_for_run(start_run(defn))
        assert view.status == "succeeded", view.error
        assert steps_by_node(view)["handled"]["outputs"] == {"out": "child_run_failed"}

    def test_cancelling_the_parent_cancels_the_child(self):
        waits = workflow(
            [node("start", "start"), node("REVIEW", "human.approval", title="Hold on"), node("end", "end")],
            [("start", "REVIEW"), ("REVIEW", "end", "approved")],
            name="Waits for a person",
        )
        child_id = save(waits, "Waits for a person")
        run_id = start_run(
            workflow(
                [
                    node("start", "start"),
                    node("call", "subworkflow", workflow_id=child_id),
                    node("end", "end"),
                ],
                [("start", "call"), ("call", "end")],
            )
        )
        wait_for_step(run_id, "call", "waiting")
        child_run = str(next(s for s in get_run(run_id).steps if s["node_id"] == "call")["child_run_id"])
        wait_for_step(child_run, "REVIEW", "waiting")

        assert cancel_run(run_id) is True
        view, child = get_run(run_id), get_run(child_run)
        assert view.status == "cancelled" and steps_by_node(view)["call"]["status"] == "cancelled"
        assert child.status == "cancelled" and "parent run ended" in (child.error or "")
        assert steps_by_node(child)["REVIEW"]["status"] == "cancelled"
        with get_engine(get_settings().database_url).connect() as conn:
            status = conn.execute(text("SELECT status FROM approvals WHERE run_id = :r"), {"r": child_run})
            assert status.scalar_one() == "cancelled"

    def test_cancelling_the_child_fails_the_waiting_parent_step(self):
        waits = workflow(
            [node("start", "start"), node("REVIEW", "human.approval"), node("end", "end")],
            [("start", "REVIEW"), ("REVIEW", "end", "approved")],
        )
        child_id = save(waits, "Waits")
        run_id = start_run(
            workflow(
                [
                    node("start", "start"),
                    node("call", "subworkflow", workflow_id=child_id),
                    node("end", "end"),
                ],
                [("start", "call"), ("call", "end")],
            )
        )
        wait_for_step(run_id, "call", "waiting")
        child_run = str(next(s for s in get_run(run_id).steps if s["node_id"] == "call")["child_run_id"])
        assert cancel_run(child_run) is True
        view = wait_for_run(run_id)
        assert view.status == "failed"
        assert f"child run {child_run} cancelled" in steps_by_node(view)["call"]["error"]

    def test_a_timed_out_step_cancels_its_child_and_grandchild_then_retries_and_branches(self):
        waits = workflow(
            [node("start", "start"), node("REVIEW", "human.approval"), node("end", "end")],
            [("start", "REVIEW"), ("REVIEW", "end", "approved")],
        )
        middle = save(caller(save(waits, "Waits"), inputs={}, out="out", name="Middle"), "Middle")
        defn = workflow(
            [
                node("start", "start"),
                node("call", "subworkflow", workflow_id=middle, timeout_s=1,
                     retry={"max_attempts": 2, "backoff_s": 0}),
                node("handled", "tool.python", tool="echo", args={"value": "{{ ports.in.code }}"}),
                node("end", "end"),
            ],
            [("start", "call"), ("call", "handled", "error"), ("handled", "end")],
        )  # fmt: skip
        view = wait_for_run(start_run(defn))

        # Both attempts timed out (each its own child run); the second took the error edge.
        assert view.status == "succeeded", (view.error, view.steps)
        assert steps_by_node(view)["handled"]["outputs"] == {"out": ErrorCode.STEP_TIMEOUT.value}
        call = steps_by_node(view)["call"]
        assert call["status"] == "failed" and call["attempt"] == 2
        assert 'node "call" (subworkflow) timed out after 1s (timeout_s)' in call["error"]
        assert call["outputs"]["error"]["field"] == "timeout_s"
        children = [w["child_run_id"] for w in events_of(view.id, "workflow.step.waiting")]
        assert len(children) == 2 and children[-1] == str(call["child_run_id"])
        for child_id in children:  # each child, and the grandchild it waited for, was cancelled
            child = get_run(child_id)
            assert child.status == "cancelled", child.error
            assert 'the step "call" of its parent run timed out' in (child.error or "")
            grandchild = child_of(child)
            assert grandchild.status == "cancelled" and "parent run ended" in (grandchild.error or "")
            assert steps_by_node(grandchild)["REVIEW"]["status"] == "cancelled"

    def test_a_timeout_releases_a_step_whose_child_run_was_deleted_with_its_workflow(self):
        waits = workflow(
            [node("start", "start"), node("REVIEW", "human.approval"), node("end", "end")],
            [("start", "REVIEW"), ("REVIEW", "end", "approved")],
        )
        child_id = save(waits, "Waits, then goes")
        run_id = start_run(caller(child_id, inputs={}, out="out", timeout_s=1))
        wait_for_step(run_id, "call", "waiting")
        with session_scope(get_settings().database_url) as session:
            assert workflows.delete_workflow(session, uuid.UUID(child_id))  # its runs go with it

        view = wait_for_run(run_id)
        assert view.status == "failed"
        error = steps_by_node(view)["call"]["error"]
        assert "timed out after 1s (timeout_s)" in error and "the child run no longer exists" in error

    def test_recursion_across_workflows_is_refused_with_the_node_and_field(self):
        a_id = save(doubler(), "A")
        b_id = save(caller(a_id, name="B"), "B")  # B v1 calls A v1
        a_calls_b = caller(b_id, out="result", name="A")  # A v2 would call B v1, which calls A: a loop
        report = validate(a_calls_b, workflow_id=a_id)
        found = [i for i in report.errors if i.code == ErrorCode.SUBWORKFLOW_RECURSION]
        assert [(i.node_id, i.field) for i in found] == [("call", "config.workflow_id")]
        assert '"A" -> "B v1" -> "A v1"' in found[0].message
        with pytest.raises(ValidationError) as refused:
            start_run(a_calls_b, {"n": 1}, workflow_id=a_id)
        assert refused.value.node_id == "call" and refused.value.field == "config.workflow_id"
        # Calling itself directly is recursion too; the same definition in another workflow is not.
        assert [i.code for i in validate(caller(a_id), workflow_id=a_id).errors] == [
            ErrorCode.SUBWORKFLOW_RECURSION
        ]
        assert validate(a_calls_b, workflow_id=save(doubler(), "C")).ok

    def test_a_missing_version_and_unknown_ports_are_named(self):
        child_id = save(doubler(), "Doubler")
        report = validate(caller(child_id, version=9))
        assert [(i.code, i.node_id, i.field) for i in report.errors] == [
            (ErrorCode.VERSION_NOT_FOUND, "call", "config.version")
        ]
        # The ports are the child's: its input "x" (a number) and its output "doubled".
        wrong = validate(caller(child_id, out="tripled"))
        assert [(i.code, i.field) for i in wrong.errors] == [(ErrorCode.UNKNOWN_PORT, "source_port")]
        assert "its outputs: doubled, error" in wrong.errors[0].message
        # Its input "x" is typed from the child's schema (a number): a number feeds it, an object does not.
        fed = workflow(
            [
                node("start", "start"),
                node("sum", "tool.python", tool="add", args={"a": 1, "b": 2}),
                node("call", "subworkflow", workflow_id=child_id),
                node("end", "end"),
            ],
            [("start", "sum"), ("sum", "call"), ("call", "end", "doubled")],
        ).to_dict()
        fed["edges"][1]["target_port"] = "x"
        assert validate(parse_dict(fed)).ok
        fed["edges"][1]["target_port"] = "y"
        assert "its inputs: in, x" in validate(parse_dict(fed)).errors[0].message
        # An object (an HTTP call's answer) into the number: refused.
        fed["nodes"].append({"id": "fetch", "type": "tool.http", "config": {"url": "https://example.com/"}})
        fed["edges"].append({"id": "to-fetch", "source": "start", "target": "fetch"})
        fed["edges"][1].update(source="fetch", target_port="x")
        mismatch = validate(parse_dict(fed)).errors
        assert [(i.code, i.node_id) for i in mismatch] == [(ErrorCode.PORT_TYPE_MISMATCH, "call")]
        assert 'input "x" of "call" takes number' in mismatch[0].message
        # x is required by the child's schema: unfed (no port, no config value) it is flagged.
        unfed = validate(caller(child_id, inputs={}))
        assert [(i.code, i.field) for i in unfed.warnings] == [(ErrorCode.UNCONNECTED_INPUT, "ports.x")]

    def test_nesting_deeper_than_the_cap_fails_at_run_time(self):
        cap = get_settings().max_subworkflow_depth
        leaf = save(doubler(), "Level leaf")
        target = leaf
        for level in range(cap, 0, -1):  # levels cap .. 1 each call the next: the leaf would be cap + 1 deep
            calls = caller(target, out="doubled" if target == leaf else "result", name=f"Level {level}")
            target = save(calls, f"Level {level}")
        run_id = start_run(caller(target, out="result", name="Root"), {"n": 2})

        view = wait_for_run(run_id, timeout=120)
        assert view.status == "failed"
        chain, current = [], view
        while True:
            step = steps_by_node(current)["call"]
            if not step["child_run_id"]:
                break
            current = get_run(str(step["child_run_id"]))
            chain.append(current)
        assert len(chain) == cap  # every level ran as a child, the leaf never started
        deepest = steps_by_node(chain[-1])["call"]
        assert deepest["outputs"]["error"]["code"] == ErrorCode.SUBWORKFLOW_DEPTH.value
        assert (
            f"nested {cap + 1} deep; the limit is {cap} (FLOWLOOM_MAX_SUBWORKFLOW_DEPTH)" in deepest["error"]
        )
        assert all(c.status == "failed" for c in chain)
        assert "FLOWLOOM_MAX_SUBWORKFLOW_DEPTH" in (view.error or "")


@pytest.fixture
def two_workers(engine_env, isolated_broker, worker_factory):
    workers = [
        worker_factory(concurrency=1, env={**FAST_LEASE, "FLOWLOOM_REDIS_URL": isolated_broker})
        for _ in range(2)
    ]
    yield workers
    for w in workers:
        w.stop()


def test_a_worker_killed_while_the_parent_waits_loses_nothing(two_workers):
    slow = doubler(
        [
            node("nap", "tool.python", tool="sleep", args={"seconds": 4}),
            node("calc", "tool.python", tool="add", args={"a": "{{ input.x }}", "b": "{{ input.x }}"}),
        ],
        [("start", "nap"), ("nap", "calc"), ("calc", "end")],
    )
    child_id = save(slow, "Slow doubler")
    run_id = start_run(caller(child_id), {"n": 5})
    wait_for_step(run_id, "call", "waiting")
    child_run = str(next(s for s in get_run(run_id).steps if s["node_id"] == "call")["child_run_id"])
    running = wait_for_step(child_run, "nap", "running")
    with get_engine(get_settings().database_url).connect() as conn:
        worker = conn.execute(
            text("SELECT worker FROM step_runs WHERE id = :s"), {"s": running["id"]}
        ).scalar_one()
    pid = int(worker.rsplit(":", 1)[1])
    victim = next(w for w in two_workers if pid == w.pid or pid in w.child_pids())
    victim.kill(signal.SIGKILL)

    view = wait_for_run(run_id, timeout=90)
    assert view.status == "succeeded", (view.error, view.steps)
    assert view.outputs == {"result": 10}
    child = get_run(child_run)
    assert steps_by_node(child)["nap"]["attempt"] == 2  # the child's step ran again on the other worker
    assert steps_by_node(view)["call"]["attempt"] == 1  # the parent step was never re-run


NAP_S = 10.0


@pytest.fixture
def one_worker(engine_env, isolated_broker, worker_factory):
    """A worker of its own with one process: its sleeping child step holds no session worker, and
    a run started after it can only run once that process is free again."""
    worker = worker_factory(concurrency=1, env={"FLOWLOOM_SWEEP_INTERVAL_S": "0.5"})
    yield worker
    worker.stop()


def test_a_steps_timeout_cancels_its_sleeping_child_and_fails_the_parent(one_worker):
    slow = doubler(
        [
            node("nap", "tool.python", tool="sleep", args={"seconds": NAP_S}),
            node("calc", "tool.python", tool="add", args={"a": "{{ input.x }}", "b": "{{ input.x }}"}),
        ],
        [("start", "nap"), ("nap", "calc"), ("calc", "end")],
    )
    child_id = save(slow, "Slow doubler")
    started = time.monotonic()
    run_id = start_run(caller(child_id, timeout_s=1), {"n": 5})

    view = wait_for_run(run_id, timeout=NAP_S)  # it ends while the child's step still sleeps
    assert time.monotonic() - started < NAP_S
    assert view.status == "failed"
    step = steps_by_node(view)["call"]
    assert step["status"] == "failed" and step["attempt"] == 1
    assert (
        f'node "call" (subworkflow) timed out after 1s (timeout_s) waiting for child run {step["child_run_id"]}'
        in step["error"]
    )
    assert step["outputs"]["error"]["code"] == ErrorCode.STEP_TIMEOUT.value
    assert 'node "call" failed' in (view.error or "") and "timed out" in (view.error or "")
    child = child_of(view)
    assert child.status == "cancelled" and "timed out after 1s" in (child.error or "")
    assert steps_by_node(child)["nap"]["status"] == "cancelled"

    # Once the sleeping step's process is free again (a run after it got to run), nothing of the
    # child ran after the cancel: its nap stayed cancelled, nothing after it started.
    assert wait_for_run(start_run(doubler(), {"x": 1}), timeout=60).status == "succeeded"
    child = get_run(child.id)
    assert child.status == "cancelled"
    assert {n: s["status"] for n, s in steps_by_node(child).items()} == {
        "start": "succeeded",
        "nap": "cancelled",
    }
    assert [e["node_id"] for e in events_of(child.id, "workflow.step.started")] == ["start", "nap"]

"""The engine on real PostgreSQL, Redis and Celery worker processes."""

from __future__ import annotations

import pytest

from engine.definition import RetryPolicy
from engine.runs import cancel_run, start_run
from tests.integration.engine_helpers import (
    node,
    step_events,
    steps_by_node,
    task_running,
    wait_for_run,
    wait_for_step,
    wait_until_task_done,
    workflow,
)

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")


def test_parallel_branches_overlap_in_time_and_merge_waits_for_both():
    defn = workflow(
        [
            node("start", "start"),
            node("a", "tool.python", tool="sleep", args={"seconds": 1.0}),
            node("b", "tool.python", tool="sleep", args={"seconds": 1.0}),
            node("join", "merge", mode="all"),
            node("end", "end"),
        ],
        [("start", "a"), ("start", "b"), ("a", "join"), ("b", "join"), ("join", "end")],
    )
    view = wait_for_run(start_run(defn, {}))
    assert view.status == "succeeded", view.error
    steps = steps_by_node(view)
    a, b, join = steps["a"], steps["b"], steps["join"]
    # Both branches ran at the same time on different worker processes.
    assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]
    # The merge started only after both branches finished, and received both values.
    assert join["started_at"] >= max(a["finished_at"], b["finished_at"])
    assert set(join["inputs"]["in"]) == {"a", "b"}


def test_merge_any_fires_on_first_branch_only_once():
    defn = workflow(
        [
            node("start", "start"),
            node("fast", "tool.python", tool="echo", args={"value": "fast"}),
            node("slow", "tool.python", tool="sleep", args={"seconds": 0.5}),
            node("join", "merge", mode="any"),
            node("end", "end"),
        ],
        [("start", "fast"), ("start", "slow"), ("fast", "join"), ("slow", "join"), ("join", "end")],
    )
    view = wait_for_run(start_run(defn, {}))
    assert view.status == "succeeded", view.error
    joins = [s for s in view.steps if s["node_id"] == "join"]
    assert len(joins) == 1
    assert joins[0]["inputs"]["in"] == "fast"


def test_condition_routes_to_the_matching_branch_and_skips_the_other():
    defn = workflow(
        [
            node("start", "start"),
            node("check", "condition", expression="value.amount > 100"),
            node("big", "tool.python", tool="echo", args={"value": "needs review"}),
            node("small", "tool.python", tool="echo", args={"value": "auto"}),
            node("end_big", "end"),
            node("end_small", "end"),
        ],
        [
            ("start", "check"),
            ("check", "big", "true"),
            ("check", "small", "false"),
            ("big", "end_big"),
            ("small", "end_small"),
        ],
        inputs={"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]},
    )
    view = wait_for_run(start_run(defn, {"amount": 250}))
    steps = steps_by_node(view)
    assert view.status == "succeeded", view.error
    assert steps["big"]["status"] == "succeeded"
    assert steps["small"]["status"] == "skipped" and steps["end_small"]["status"] == "skipped"
    assert view.outputs == {"out": "needs review"}

    view = wait_for_run(start_run(defn, {"amount": 5}))
    assert steps_by_node(view)["big"]["status"] == "skipped"
    assert view.outputs == {"out": "auto"}


def test_a_wide_fan_in_waits_for_every_branch_and_counts_skipped_ones_as_resolved():
    """12 branches (wider than the scheduler's counted-join threshold) into a merge; a condition in
    front of every third one skips it. The merge runs once, after the last branch, with exactly the
    branches that ran."""
    width = 12
    nodes = [node("start", "start"), node("join", "merge", mode="all"), node("end", "end")]
    edges: list[tuple] = [("join", "end")]
    for i in range(width):
        if i % 3 == 0:
            nodes.append(node(f"c{i}", "condition", expression="value.go"))
            edges += [("start", f"c{i}"), (f"c{i}", f"b{i}", "true")]
        else:
            edges.append(("start", f"b{i}"))
        sleep = 0.2 if i == width - 1 else 0.0  # one branch finishes last, well after the others
        nodes.append(node(f"b{i}", "tool.python", tool="sleep" if sleep else "echo",
                          args={"seconds": sleep} if sleep else {"value": i}))  # fmt: skip
        edges.append((f"b{i}", "join"))
    defn = workflow(nodes, edges, inputs={"type": "object", "properties": {"go": {"type": "boolean"}}})

    view = wait_for_run(start_run(defn, {"go": False}))
    assert view.status == "succeeded", view.error
    steps = steps_by_node(view)
    ran = {f"b{i}" for i in range(width) if i % 3}
    assert {n for n in steps if n.startswith("b") and steps[n]["status"] == "skipped"} == {
        f"b{i}" for i in range(0, width, 3)
    }
    joins = [s for s in view.steps if s["node_id"] == "join"]
    assert len(joins) == 1 and set(joins[0]["inputs"]["in"]) == ran
    assert joins[0]["started_at"] >= steps[f"b{width - 1}"]["finished_at"]

    view = wait_for_run(start_run(defn, {"go": True}))
    assert view.status == "succeeded", view.error
    joins = [s for s in view.steps if s["node_id"] == "join"]
    assert len(joins) == 1 and set(joins[0]["inputs"]["in"]) == {f"b{i}" for i in range(width)}


def test_run_inputs_that_miss_the_schema_are_refused_naming_the_field():
    from engine.errors import ValidationError

    defn = workflow(
        [node("start", "start"), node("end", "end")],
        [("start", "end")],
        inputs={"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]},
    )
    with pytest.raises(ValidationError, match="amount"):
        start_run(defn, {"amount": "lots"})


def test_retries_wait_a_jittered_exponential_backoff_between_attempts_then_succeed():
    policy = {"max_attempts": 4, "backoff_s": 0.2, "backoff_factor": 2, "max_backoff_s": 0.5}
    defn = workflow(
        [
            node("start", "start"),
            node("flaky", "tool.python", tool="fail", args={"fail_times": 3}, retry=policy),
            node("end", "end"),
        ],
        [("start", "flaky"), ("flaky", "end")],
    )
    view = wait_for_run(start_run(defn, {}))
    assert view.status == "succeeded", view.error
    assert steps_by_node(view)["flaky"]["attempt"] == 4

    events = step_events(view.id, "flaky")
    started = {e["attempt"]: e["at"] for e in events if e["type"] == "workflow.step.started"}
    retries = [e for e in events if e["type"] == "workflow.step.retrying"]
    assert sorted(started) == [1, 2, 3, 4] and [e["attempt"] for e in retries] == [1, 2, 3]
    retry = RetryPolicy.model_validate(policy)
    for e in retries:
        low, high = retry.backoff_range(e["attempt"])  # 0.1-0.2, 0.2-0.4, then capped: 0.25-0.5
        # Equal jitter: at least half the exponential backoff, below all of it (never exactly it).
        assert low <= e["delay_s"] < high, (e["attempt"], e["delay_s"], (low, high))
        # The next attempt really waited it out: its claim is not before the recorded delay ended
        # (both timestamps are the engine's own records, nothing is timed by the test).
        gap = (started[e["attempt"] + 1] - started[e["attempt"]]).total_seconds()
        assert gap >= e["delay_s"], (e["attempt"], gap, e["delay_s"])
    assert len({e["delay_s"] for e in retries}) == 3


def test_retries_exhausted_fail_the_run_with_the_node_named():
    defn = workflow(
        [
            node("start", "start"),
            node(
                "flaky",
                "tool.python",
                tool="fail",
                args={"message": "upstream down"},
                retry={"max_attempts": 2, "backoff_s": 0.05},
            ),
            node("end", "end"),
        ],
        [("start", "flaky"), ("flaky", "end")],
    )
    view = wait_for_run(start_run(defn, {}))
    assert view.status == "failed"
    assert 'node "flaky"' in view.error and "upstream down" in view.error
    steps = steps_by_node(view)
    assert steps["flaky"]["attempt"] == 2
    assert "end" not in steps or steps["end"]["status"] != "succeeded"


def test_step_timeout_fails_the_step():
    defn = workflow(
        [
            node("start", "start"),
            node("slow", "tool.python", tool="sleep", args={"seconds": 30}, timeout_s=0.5),
            node("end", "end"),
        ],
        [("start", "slow"), ("slow", "end")],
    )
    view = wait_for_run(start_run(defn, {}))
    assert view.status == "failed"
    assert "timed out after 0.5s" in steps_by_node(view)["slow"]["error"]


def test_error_branch_takes_over_when_a_node_fails():
    defn = workflow(
        [
            node("start", "start"),
            node("risky", "tool.python", tool="fail", args={"message": "boom", "retryable": False}),
            node("ok_path", "tool.python", tool="echo", args={"value": "fine"}),
            node("handler", "tool.python", tool="echo"),
            node("end_ok", "end"),
            node("end_err", "end"),
        ],
        [
            ("start", "risky"),
            ("risky", "ok_path"),
            ("risky", "handler", "error"),
            ("ok_path", "end_ok"),
            ("handler", "end_err"),
        ],
    )
    view = wait_for_run(start_run(defn, {}))
    steps = steps_by_node(view)
    assert view.status == "succeeded", view.error
    assert steps["risky"]["status"] == "failed"
    assert steps["ok_path"]["status"] == "skipped"
    assert "boom" in str(steps["handler"]["outputs"])


def test_cancellation_stops_the_run_and_nothing_after_runs():
    defn = workflow(
        [
            node("start", "start"),
            node("slow", "tool.python", tool="sleep", args={"seconds": 4}),
            node("after", "tool.python", tool="echo", args={"value": 1}),
            node("end", "end"),
        ],
        [("start", "slow"), ("slow", "after"), ("after", "end")],
    )
    run_id = start_run(defn, {})
    slow = wait_for_step(run_id, "slow", "running")
    worker, task = task_running(slow["id"])  # the Celery worker and task running the step
    assert cancel_run(run_id) is True
    assert cancel_run(run_id) is False
    view = wait_for_run(run_id)
    assert view.status == "cancelled"
    # Let the slow step finish: once the worker's task for it is over, its result was discarded.
    wait_until_task_done(worker, task)
    view = wait_for_run(run_id)
    steps = steps_by_node(view)
    assert "after" not in steps
    assert steps["slow"]["status"] == "cancelled"


def test_run_level_outputs_are_rendered_from_steps():
    defn = workflow(
        [
            node("start", "start"),
            node("sum", "tool.python", tool="add", args={"a": "{{ input.x }}", "b": 2}),
            node("end", "end"),
        ],
        [("start", "sum"), ("sum", "end")],
        outputs={"total": "{{ steps.sum.output }}", "greeting": "hello {{ input.who }}"},
    )
    view = wait_for_run(start_run(defn, {"x": 40, "who": "ada"}))
    assert view.status == "succeeded", view.error
    assert view.outputs == {"total": 42, "greeting": "hello ada"}


def test_egress_policy_refuses_loopback_in_a_workflow_with_a_clear_error():
    defn = workflow(
        [
            node("start", "start"),
            node("fetch", "tool.http", url="http://127.0.0.1:9/admin"),
            node("end", "end"),
        ],
        [("start", "fetch"), ("fetch", "end")],
    )
    view = wait_for_run(start_run(defn, {}))
    assert view.status == "failed"
    err = steps_by_node(view)["fetch"]["error"]
    assert "policy violation" in err and "loopback" in err
    assert steps_by_node(view)["fetch"]["attempt"] == 1  # a policy refusal is not retried


def test_events_are_written_with_each_state_change():
    from sqlalchemy import text

    from engine.settings import get_settings
    from models.db import get_engine

    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")])
    run_id = start_run(defn, {})
    wait_for_run(run_id)
    with get_engine(get_settings().database_url).connect() as conn:
        kinds = [
            r[0]
            for r in conn.execute(
                text("SELECT event_type FROM events WHERE run_id = :r ORDER BY id"), {"r": run_id}
            )
        ]
        envelope = conn.execute(
            text("SELECT payload FROM events WHERE run_id = :r ORDER BY id LIMIT 1"), {"r": run_id}
        ).scalar_one()
    assert kinds[0] == "workflow.started" and kinds[-1] == "workflow.completed"
    assert kinds.count("workflow.step.completed") == 2
    assert {"event_id", "event_type", "timestamp", "source", "correlation_id", "data"} <= set(envelope)


def test_step_events_carry_the_envelope_and_exactly_their_data_fields():
    """The claim and the step's end write their events in the same statement as the change: each
    event has the full envelope (its own id, the run as correlation id) and exactly its fields."""
    from sqlalchemy import text

    from engine.settings import get_settings
    from models.db import get_engine

    defn = workflow(
        [
            node("start", "start"),
            node("bad", "tool.python", tool="fail", args={"retryable": False}),
            node("end", "end"),
        ],
        [("start", "bad"), ("bad", "end")],
    )
    run_id = start_run(defn, {})
    view = wait_for_run(run_id)
    assert view.status == "failed"
    steps = steps_by_node(view)
    with get_engine(get_settings().database_url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT event_id, event_type, payload FROM events WHERE run_id = :r AND event_type LIKE "
                "'workflow.step.%' ORDER BY id"
            ),  # fmt: skip
            {"r": run_id},
        ).all()
    by_type = {}
    for event_id, event_type, payload in rows:
        assert payload["event_id"] == str(event_id) and payload["event_type"] == event_type
        assert payload["correlation_id"] == run_id and payload["source"] == "flowloom.engine"
        assert payload["schema_version"] == 1 and payload["timestamp"].endswith("+00:00")
        by_type.setdefault(event_type, []).append(payload["data"])
    assert len({r[0] for r in rows}) == len(rows)  # every event its own id
    start, bad = str(steps["start"]["id"]), str(steps["bad"]["id"])
    assert by_type["workflow.step.started"] == [
        {"step_id": start, "node_id": "start", "attempt": 1},
        {"step_id": bad, "node_id": "bad", "attempt": 1},
    ]
    assert by_type["workflow.step.completed"] == [
        {"step_id": start, "node_id": "start", "fired_edges": ["e0"]}
    ]
    [failed] = by_type["workflow.step.failed"]
    assert failed == {"step_id": bad, "node_id": "bad", "error": failed["error"], "error_code": "step_failed"}
    assert failed["error"].startswith("failed on purpose")  # no error_field: the failure names none

"""Concurrency limits, run quotas and retention on real PostgreSQL, Redis and Celery workers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from app import problems
from engine import retention, run_slots, workflows, workspace_limits
from engine.errors import ErrorCode, FlowloomError
from engine.runs import cancel_run, get_run, start_run
from engine.settings import get_settings
from models.db import get_engine, session_scope
from models.tables import Event, Run, StepRun, Workflow
from models.workspace_column import DEFAULT_WORKSPACE_ID
from models.workspaces import Workspace
from tests.integration.conftest import ENGINE_WORKER_ENV
from tests.integration.engine_helpers import node, wait_for_run, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "more_workers")


@pytest.fixture(scope="module")
def more_workers(worker_factory):
    """Three more worker slots beside the session's two: capacity well above the limits tested."""
    return worker_factory(concurrency=3, env=ENGINE_WORKER_ENV)


def _sleepy(seconds: float = 0.5):
    return workflow(
        [node("start", "start"), node("nap", "tool.python", tool="sleep", args={"seconds": seconds}),
         node("end", "end")],
        [("start", "nap"), ("nap", "end")],
    )  # fmt: skip


def _saved(pg_url: str, name: str, max_concurrent_runs: int | None = None) -> str:
    with session_scope(pg_url) as session:
        workflow_id = workflows.create_workflow(session, name).id
    with get_engine(pg_url).begin() as conn:
        workspace_limits.set_workflow_limit(conn, workflow_id, max_concurrent_runs, actor="test")
    return str(workflow_id)


def _set_workspace(pg_url: str, **values: int | None) -> None:
    with get_engine(pg_url).begin() as conn:
        workspace_limits.set_limits(conn, DEFAULT_WORKSPACE_ID, workspace_limits.WorkspaceLimits(**values),
                                    actor="test")  # fmt: skip


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals [start, end) covering one instant (ends sort before starts at a tie)."""
    points = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1])
    )
    most = now = 0
    for _, delta in points:
        now += delta
        most = max(most, now)
    return most


def _nap_intervals(run_ids: list[str]) -> list[tuple[datetime, datetime]]:
    """Each run's sleeping step as recorded: claimed after its run was admitted, finished before
    the transaction that frees its slot."""
    found = []
    for run_id in run_ids:
        nap = next(s for s in get_run(run_id).steps if s["node_id"] == "nap")
        found.append((nap["started_at"], nap["finished_at"]))
    return found


def test_ten_runs_against_a_limit_of_two_never_overlap_more_than_two_and_all_finish(clean_db):
    workflow_id = _saved(clean_db, "limited", max_concurrent_runs=2)
    defn = _sleepy()
    run_ids, seen = [], []
    for _ in range(10):
        run_ids.append(start_run(defn, {}, workflow_id=workflow_id))
        seen.append(get_run(run_ids[-1]).status)
    assert "queued" in seen[2:]  # the third run started while two were napping: it waits, visibly
    views = [wait_for_run(run_id, timeout=120) for run_id in run_ids]
    assert [v.status for v in views] == ["succeeded"] * 10, [v.error for v in views]
    assert _max_overlap(_nap_intervals(run_ids)) == 2  # never more, and the limit was reached
    # Admitted in the order they were started (created_at, id): FIFO. Admissions happen under the
    # workspace's lock, so the ids of their workflow.started events are in admission order.
    with get_engine(clean_db).connect() as conn:
        admitted = conn.execute(
            select(Event.run_id).where(Event.event_type == "workflow.started").order_by(Event.id)
        ).scalars()
        assert [str(r) for r in admitted] == run_ids


def test_runs_without_a_limit_overlap_beyond_two(clean_db):
    """The control for the test above: the same ten runs, no limit, more than two run at once."""
    workflow_id = _saved(clean_db, "unlimited")
    run_ids = [start_run(_sleepy(1.0), {}, workflow_id=workflow_id) for _ in range(10)]
    assert all(wait_for_run(r, timeout=120).status == "succeeded" for r in run_ids)
    assert _max_overlap(_nap_intervals(run_ids)) > 2


def test_a_cancelled_waiting_run_never_starts_and_the_next_one_does(clean_db):
    workflow_id = _saved(clean_db, "one at a time", max_concurrent_runs=1)
    first = start_run(_sleepy(1.0), {}, workflow_id=workflow_id)
    second = start_run(_sleepy(0.1), {}, workflow_id=workflow_id)
    third = start_run(_sleepy(0.1), {}, workflow_id=workflow_id)
    assert get_run(second).status == "queued"
    with get_engine(clean_db).connect() as conn:
        assert run_slots.waiting_ahead(conn, third) == 1
    assert cancel_run(second, cancelled_by="test")
    assert wait_for_run(first).status == "succeeded"
    assert wait_for_run(third).status == "succeeded"
    cancelled = get_run(second)
    assert cancelled.status == "cancelled" and cancelled.started_at is None
    assert all(s["status"] == "cancelled" and s["attempt"] == 0 for s in cancelled.steps)
    with get_engine(clean_db).connect() as conn:
        kinds = set(conn.execute(select(Event.event_type).where(Event.run_id == uuid.UUID(second))).scalars())
    assert "workflow.started" not in kinds and "workflow.step.started" not in kinds
    assert "workflow.cancelled" in kinds


def test_the_workspace_limit_spans_its_workflows(clean_db):
    _set_workspace(clean_db, max_concurrent_runs=2)
    one, two = _saved(clean_db, "one"), _saved(clean_db, "two")
    run_ids = [start_run(_sleepy(), {}, workflow_id=wid) for wid in (one, two) * 3]
    views = [wait_for_run(r, timeout=120) for r in run_ids]
    assert [v.status for v in views] == ["succeeded"] * 6
    assert _max_overlap(_nap_intervals(run_ids)) == 2


def test_a_start_past_the_hourly_quota_is_refused_with_a_429_problem(clean_db):
    _set_workspace(clean_db, runs_per_hour=3)
    workflow_id = _saved(clean_db, "quota")
    quick = workflow([node("start", "start"), node("end", "end")], [("start", "end")])
    started = [start_run(quick, {}, workflow_id=workflow_id) for _ in range(3)]
    with pytest.raises(FlowloomError) as refused:
        start_run(quick, {}, workflow_id=workflow_id)
    assert refused.value.code == ErrorCode.RUN_QUOTA_EXCEEDED
    assert "3 runs per hour" in str(refused.value)
    assert problems.STATUS[ErrorCode.RUN_QUOTA_EXCEEDED] == 429
    with get_engine(clean_db).connect() as conn:
        assert conn.execute(select(func.count()).select_from(Run)).scalar() == 3  # nothing recorded
        # An hour later the quota has room again.
        conn.execute(update(Run).values(created_at=func.now() - timedelta(hours=2)))
        conn.commit()
    assert all(wait_for_run(r).status == "succeeded" for r in started)
    assert wait_for_run(start_run(quick, {}, workflow_id=workflow_id)).status == "succeeded"


def _aged_runs(pg_url: str, workflow_id: str, ages_days: list[float]) -> list[str]:
    """Finished runs of `workflow_id`, oldest first, moved back so each ended `age` days ago."""
    defn = workflow([node("start", "start"), node("echo", "tool.python", tool="echo", args={"value": "x"}),
                     node("end", "end")], [("start", "echo"), ("echo", "end")])  # fmt: skip
    run_ids = [start_run(defn, {}, workflow_id=workflow_id) for _ in ages_days]
    assert all(wait_for_run(r).status == "succeeded" for r in run_ids)
    now = datetime.now(UTC)
    with get_engine(pg_url).begin() as conn:
        for run_id, age in zip(run_ids, ages_days, strict=True):
            at = now - timedelta(days=age)
            conn.execute(update(Run).where(Run.id == uuid.UUID(run_id)).values(created_at=at, finished_at=at))
    return run_ids


def test_prune_removes_exactly_what_the_policy_says_and_the_preview_showed(clean_db):
    kept_workflow = _saved(clean_db, "kept")
    workflow_id = _saved(clean_db, "pruned")
    r40, r35, r10, r9, r8, r1 = _aged_runs(clean_db, workflow_id, [40, 35, 10, 9, 8, 1])
    (other,) = _aged_runs(clean_db, kept_workflow, [20])
    _set_workspace(clean_db, retention_days=30, retention_keep_last=3, step_data_retention_days=7)
    with get_engine(clean_db).connect() as conn:
        shown = retention.preview(conn, DEFAULT_WORKSPACE_ID)
    assert shown.run_ids == {r40, r35, r10}  # older than 30 days (r40, r35) or past the newest 3 (r10)
    assert (shown.runs_by_age, shown.runs_by_count) == (2, 3)
    with get_engine(clean_db).connect() as conn:
        stepped = {str(s) for s in conn.execute(
            select(StepRun.id).where(StepRun.run_id.in_([uuid.UUID(r) for r in (r9, r8, other)]))
        ).scalars()}  # fmt: skip
    assert shown.step_ids == stepped  # ended more than 7 days ago and kept: their data goes

    done = retention.prune(DEFAULT_WORKSPACE_ID, batch=2)  # several batches
    assert done.run_ids == shown.run_ids and done.step_ids == shown.step_ids
    assert all(get_run(r) is None for r in (r40, r35, r10))
    for kept in (r9, r8, r1, other):
        view = get_run(kept)
        assert view is not None and view.status == "succeeded" and view.outputs is not None  # summary stays
    assert all(s["inputs"] is None and s["outputs"] is None for s in get_run(r9).steps)
    assert any(s["outputs"] is not None for s in get_run(r1).steps)  # one day old: untouched
    with get_engine(clean_db).connect() as conn:
        orphans = conn.execute(select(func.count()).select_from(Event).where(
            Event.run_id.in_([uuid.UUID(r) for r in (r40, r35, r10)]))).scalar()  # fmt: skip
        assert orphans == 0
        again = retention.preview(conn, DEFAULT_WORKSPACE_ID)
    assert again.runs == 0 and again.steps_cleared == 0  # nothing left to prune


def test_prune_never_touches_runs_that_have_not_ended(clean_db):
    workflow_id = _saved(clean_db, "busy", max_concurrent_runs=1)
    running = start_run(_sleepy(1.5), {}, workflow_id=workflow_id)
    waiting = start_run(_sleepy(0.1), {}, workflow_id=workflow_id)
    old = datetime.now(UTC) - timedelta(days=100)
    with get_engine(clean_db).begin() as conn:
        conn.execute(update(Run).values(created_at=old))
    _set_workspace(clean_db, retention_days=1, retention_keep_last=1, step_data_retention_days=1)
    assert retention.prune(DEFAULT_WORKSPACE_ID).runs == 0
    assert wait_for_run(running).status == "succeeded" and wait_for_run(waiting).status == "succeeded"


def test_the_compliance_blocks_retention_days_is_the_default_and_a_workflow_shortens_it(
    clean_db, monkeypatch
):
    monkeypatch.setenv("FLOWLOOM_GUARDRAILS", '{"compliance": {"data_retention_days": 30}}')
    get_settings.cache_clear()
    with get_engine(clean_db).connect() as conn:
        assert retention.Policy.of(conn, DEFAULT_WORKSPACE_ID).retention_days == 30
    _set_workspace(clean_db, retention_days=60)  # the workspace's own setting wins over the default
    with get_engine(clean_db).connect() as conn:
        assert retention.Policy.of(conn, DEFAULT_WORKSPACE_ID).retention_days == 60
    workflow_id = _saved(clean_db, "strict")
    strict = workflow([node("start", "start"), node("end", "end")], [("start", "end")],
                      policy={"guardrails": {"compliance": {"data_retention_days": 5}}})  # fmt: skip
    run_id = start_run(strict, {}, workflow_id=workflow_id)
    assert wait_for_run(run_id).status == "succeeded"
    with get_engine(clean_db).begin() as conn:
        at = datetime.now(UTC) - timedelta(days=10)
        conn.execute(update(Run).values(created_at=at, finished_at=at))
    assert retention.prune(DEFAULT_WORKSPACE_ID).run_ids == {run_id}  # 10 days > the workflow's 5


def test_limits_refuse_nonsense_and_are_stored(clean_db):
    with pytest.raises(FlowloomError) as bad:
        _set_workspace(clean_db, max_concurrent_runs=0)
    assert bad.value.code == ErrorCode.REQUEST_INVALID and bad.value.field == "max_concurrent_runs"
    _set_workspace(clean_db, max_concurrent_runs=4)
    with get_engine(clean_db).connect() as conn:
        stored = conn.execute(
            select(Workspace.max_concurrent_runs).where(Workspace.id == DEFAULT_WORKSPACE_ID)
        )
        assert stored.scalar() == 4
        assert conn.execute(select(func.count()).select_from(Workflow)).scalar() == 0

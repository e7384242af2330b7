"""The dashboard's numbers (engine/run_stats.py) from runs that really ran on the workers."""

from __future__ import annotations

import pytest

from app.db import db_session
from engine import workflows
from engine.approvals import count_pending
from engine.run_stats import PERIODS, dashboard_stats
from engine.runs import cancel_run, start_run
from engine.settings import get_settings
from models.db import get_engine
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "clean_db")


def _saved(name: str) -> str:
    with db_session() as session:
        workflow_id = str(workflows.create_workflow(session, name).id)
        session.commit()
    return workflow_id


def test_stats_count_runs_by_status_durations_by_node_type_and_what_waits():
    fast_id, slow_id = _saved("fast one"), _saved("slow one")
    fast = workflow([node("start", "start"), node("end", "end")], [("start", "end")], name="fast one")
    slow = workflow(
        [
            node("start", "start"),
            node("nap", "tool.python", tool="sleep", args={"seconds": 0.3}),
            node("end", "end"),
        ],
        [("start", "nap"), ("nap", "end")],
        name="slow one",
    )
    failing = workflow(
        [node("start", "start"), node("boom", "tool.python", tool="fail"), node("end", "end")],
        [("start", "boom"), ("boom", "end")],
        name="fast one",
    )
    approval = workflow(
        [node("start", "start"), node("review", "human.approval", title="Check"), node("end", "end")],
        [("start", "review"), ("review", "end", "approved")],
        mode="state_machine",
    )
    runs = [start_run(fast, {}, workflow_id=fast_id) for _ in range(3)]
    runs += [start_run(slow, {}, workflow_id=slow_id) for _ in range(2)]
    runs.append(start_run(failing, {}, workflow_id=fast_id))
    views = [wait_for_run(r) for r in runs]
    waiting = start_run(approval, {})
    wait_for_step(waiting, "review", "waiting")

    stats = dashboard_stats(get_engine(get_settings().database_url), "1h")

    assert len(stats.buckets) == PERIODS["1h"][0] / PERIODS["1h"][1]
    assert stats.totals == {"succeeded": 5, "failed": 1, "running": 1}
    assert sum(b.runs.get("succeeded", 0) for b in stats.buckets[-2:]) == 5  # they all started just now
    assert stats.success_rate == pytest.approx(5 / 6)
    by_type = {d.node_type: d for d in stats.durations}
    assert by_type["tool.python"].steps == 3  # two naps and the failure (retries are one step row)
    nap_s = [
        (s["finished_at"] - s["started_at"]).total_seconds()
        for v in views
        for s in v.steps
        if s["node_id"] == "nap"
    ]
    assert by_type["tool.python"].p95_s >= min(nap_s) * 0.5
    assert by_type["tool.python"].p50_s <= by_type["tool.python"].p95_s
    assert by_type["start"].steps == 7
    assert [w.name for w in stats.slowest][:1] == ["slow one"]  # the naps make it the slowest
    assert {w.workflow_id: w.runs for w in stats.slowest}[fast_id] == 4
    assert stats.pending_approvals == count_pending() == 1 and stats.oldest_approval_s > 0
    assert stats.buckets[-1].pending_approvals == 1  # still waiting at the end of the last bucket
    assert all(b.pending_approvals == 0 for b in stats.buckets[:-2])
    assert stats.queue_depth == 0
    cancel_run(waiting)
    assert dashboard_stats(get_engine(get_settings().database_url), "1h").pending_approvals == 0

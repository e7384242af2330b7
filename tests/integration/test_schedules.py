"""Schedule triggers: two scheduler processes fire each tick once; missed-tick policies; pause and
resume; a tick that cannot start its run is recorded and does not block the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from engine import dead_letters, triggers, workflows
from engine.run_state import Dispatch
from engine.schedule_loop import SchedulerLoop
from engine.schedule_ticks import tick_key
from engine.settings import get_settings
from models.db import get_engine, session_scope
from models.tables import Run
from models.triggers import DeadLetter, Trigger, TriggerDelivery
from tests.integration.engine_helpers import node, wait_for_run, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "clean_db")

REPO_ROOT = Path(__file__).resolve().parents[2]


def _definition(schedules: list[dict], inputs_schema: dict | None = None) -> dict:
    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")]).to_dict()
    defn["inputs"] = inputs_schema or {"type": "object", "properties": {"n": {"type": "integer"}}}
    defn["triggers"] = schedules
    return defn


def _schedule(key: str, **config) -> dict:
    return {"id": key, "kind": "schedule", "config": {"cron": "* * * * *", **config}}


def _save(defn: dict, name: str = "scheduled") -> str:
    with session_scope(get_settings().database_url) as session:
        workflow_id = workflows.create_workflow(session, name).id
        workflows.save_version(session, workflow_id, defn)
    return str(workflow_id)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _set_next_fire(pg_url: str, when: datetime, workflow_id: str | None = None) -> None:
    query = update(Trigger).values(next_fire_at=when)
    if workflow_id:
        query = query.where(Trigger.workflow_id == workflow_id)
    with get_engine(pg_url).begin() as conn:
        conn.execute(query)


def _deliveries(pg_url: str) -> list:
    with get_engine(pg_url).connect() as conn:
        return conn.execute(
            select(TriggerDelivery.trigger_id, TriggerDelivery.delivery_key, TriggerDelivery.run_id,
                   TriggerDelivery.status, TriggerDelivery.error).order_by(TriggerDelivery.delivery_key)
        ).all()  # fmt: skip


def _run_count(pg_url: str) -> int:
    with get_engine(pg_url).connect() as conn:
        return conn.execute(select(func.count()).select_from(Run)).scalar()


def _trigger(workflow_id: str, key: str) -> triggers.TriggerRow:
    with get_engine(get_settings().database_url).connect() as conn:
        return next(t for t in triggers.list_for_workflow(conn, workflow_id) if t.key == key)


class Sent(list):
    """A `send` for the loop that keeps the steps (and sends them, so the runs finish)."""

    def __call__(self, dispatches: list[Dispatch]) -> None:
        self.extend(dispatches)


def _loop(pg_url: str, clock: datetime) -> SchedulerLoop:
    return SchedulerLoop(pg_url, clock=lambda: clock, send=Sent())


# ---- exactly once with two schedulers ------------------------------------------------------------


def _start_scheduler(pg_url: str, redis_url: str, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "FLOWLOOM_DATABASE_URL": pg_url,
        "FLOWLOOM_REDIS_URL": redis_url,
        "PYTHONUNBUFFERED": "1",
    }
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "engine.ops.cli", "scheduler", "--interval", "0.05"], cwd=REPO_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _wait_for_line(log_path: Path, text: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_path.read_text(errors="replace"):
        assert process.poll() is None, log_path.read_text(errors="replace")
        assert time.monotonic() < deadline, f"no {text!r} in {log_path}"
        time.sleep(0.1)


def test_two_scheduler_processes_start_exactly_one_run_per_tick(pg_url, redis_url, tmp_path):
    # 12 workflows, each with an every-minute schedule that catches up 4 missed ticks: 5 ticks each.
    workflow_ids = [
        _save(_definition([_schedule("every_minute", missed="catch_up", catch_up_max=4, inputs={"n": i})]), f"w{i}")
        for i in range(12)
    ]  # fmt: skip
    logs = [tmp_path / "scheduler-a.log", tmp_path / "scheduler-b.log"]
    schedulers = [_start_scheduler(pg_url, redis_url, path) for path in logs]
    try:
        for process, path in zip(schedulers, logs, strict=True):
            _wait_for_line(path, "scheduler: firing schedule triggers", process)
        # Both are polling: make every trigger due at once (the current minute and the 4 before it).
        first = _minute(datetime.now(UTC)) - timedelta(minutes=4)
        _set_next_fire(pg_url, first)
        deadline = time.monotonic() + 60
        while len(_deliveries(pg_url)) < 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # time for a second, wrong, run of some tick to show up
    finally:
        for process in schedulers:
            os.killpg(process.pid, signal.SIGTERM)
        for process in schedulers:
            process.wait(30)
    assert [p.returncode for p in schedulers] == [0, 0]
    rows = _deliveries(pg_url)
    # Every trigger fired the ticks first..first+4 (the clock may have passed one more minute
    # meanwhile: then that later tick fired too, once), each with a run of its own.
    ticks_by_trigger: dict = {}
    for row in rows:
        ticks_by_trigger.setdefault(row.trigger_id, []).append(
            row.delivery_key[: len("2024-01-01T00:00:00Z")]
        )
    assert len(ticks_by_trigger) == 12
    expected = [tick_key(first + timedelta(minutes=m)) for m in range(5)]
    for ticks in ticks_by_trigger.values():
        assert ticks[:5] == expected, "a tick fired twice or not at all"
        assert len(ticks) == len(set(ticks)) <= 6, "a tick fired twice"
    assert all(row.status == "started" and row.run_id for row in rows)
    assert _run_count(pg_url) == len(rows) == len({row.run_id for row in rows})
    with get_engine(pg_url).connect() as conn:
        started_by = set(conn.execute(select(Run.started_via, Run.trigger_id)).all())
    assert {via for via, _ in started_by} == {"trigger"} and len({t for _, t in started_by}) == 12
    # The runs ran: the schedulers sent their first steps to the workers.
    assert wait_for_run(str(rows[0].run_id)).status == "succeeded"
    for wid in workflow_ids:
        row = _trigger(wid, "every_minute")
        assert row.next_fire_at > first + timedelta(minutes=4) and row.last_fire_at >= first + timedelta(
            minutes=4
        )


# ---- the missed-tick policies (a test clock: no waiting for minutes) -----------------------------


def test_skip_fires_only_the_latest_due_tick_and_catch_up_at_most_n_oldest_first(pg_url):
    skip_id = _save(_definition([_schedule("skip", inputs={"n": 1})]), "skip")
    catch_id = _save(
        _definition([_schedule("catch", missed="catch_up", catch_up_max=3, inputs={"n": 2})]), "catch"
    )
    start = _minute(datetime.now(UTC)) - timedelta(hours=1)
    _set_next_fire(pg_url, start)
    clock = start + timedelta(minutes=10, seconds=30)
    loop = _loop(pg_url, clock)
    totals = loop.run_once()
    assert (totals.triggers, totals.fired, totals.failed) == (2, 1 + 4, 0)
    assert totals.skipped == 10 + 7
    keys = {(str(r.trigger_id), r.delivery_key) for r in _deliveries(pg_url)}
    skip, catch = _trigger(skip_id, "skip"), _trigger(catch_id, "catch")
    assert {k for t, k in keys if t == skip.id} == {tick_key(start + timedelta(minutes=10))}
    assert {k for t, k in keys if t == catch.id} == {
        tick_key(start + timedelta(minutes=m)) for m in (7, 8, 9, 10)
    }
    # Oldest first: the catch-up runs were created in tick order.
    with get_engine(pg_url).connect() as conn:
        created = conn.execute(
            select(TriggerDelivery.delivery_key).where(TriggerDelivery.trigger_id == catch.id)
            .order_by(TriggerDelivery.id)
        ).scalars().all()  # fmt: skip
    assert created == sorted(created)
    for row in (skip, catch):
        assert row.next_fire_at == start + timedelta(minutes=11)
        assert row.last_fire_at == start + timedelta(minutes=10)
    # The same moment again fires nothing; the next minute fires its tick.
    assert loop.run_once().triggers == 0
    later = _loop(pg_url, start + timedelta(minutes=11, seconds=1)).run_once()
    assert (later.triggers, later.fired) == (2, 2)
    assert len(loop.send) == 5  # each started run's first step went to the broker


def test_a_paused_schedule_fires_nothing_and_resuming_does_not_catch_up_the_pause(pg_url):
    wid = _save(_definition([_schedule("tick", missed="catch_up", catch_up_max=10, inputs={"n": 1})]))
    tick = _trigger(wid, "tick")
    now = datetime.now(UTC)
    triggers.set_paused(tick.id, True, actor="user:test")
    _set_next_fire(pg_url, _minute(now) - timedelta(minutes=10))
    assert _loop(pg_url, now).run_once().triggers == 0
    assert _deliveries(pg_url) == []

    resumed = triggers.set_paused(tick.id, False, actor="user:test")
    assert resumed.live and resumed.next_fire_at > now  # from the next tick on
    assert _loop(pg_url, now).run_once().fired == 0
    first_after = _loop(pg_url, resumed.next_fire_at).run_once()
    assert first_after.fired == 1
    assert [r.delivery_key for r in _deliveries(pg_url)] == [tick_key(resumed.next_fire_at)]


def test_a_tick_that_cannot_start_its_run_is_a_dead_letter_and_does_not_block_the_next(pg_url):
    # Odd minutes are refused by the inputs schema: those ticks fail, the even ones run.
    schema = {
        "type": "object",
        "properties": {"scheduled_at": {"type": "string", "pattern": "[02468]:00Z$"}},
        "required": ["scheduled_at"],
    }
    wid = _save(_definition([_schedule("tick", missed="catch_up", catch_up_max=3)], schema))
    tick = _trigger(wid, "tick")
    start = _minute(datetime.now(UTC)) - timedelta(hours=2)
    start -= timedelta(minutes=start.minute % 2)  # an even minute
    _set_next_fire(pg_url, start)
    totals = _loop(pg_url, start + timedelta(minutes=3)).run_once()
    assert (totals.fired, totals.failed) == (2, 2)
    assert [r.delivery_key for r in _deliveries(pg_url)] == [
        tick_key(start),
        tick_key(start + timedelta(minutes=2)),
    ]
    with get_engine(pg_url).connect() as conn:
        letters = conn.execute(select(DeadLetter).order_by(DeadLetter.id)).all()
        run = conn.execute(select(Run.inputs).where(Run.id == _deliveries(pg_url)[0].run_id)).one()
    odd = [tick_key(start + timedelta(minutes=m)) for m in (1, 3)]
    assert [(d.source, str(d.trigger_id), d.message_key) for d in letters] == [
        ("schedule", tick.id, k) for k in odd
    ]
    assert all("scheduled_at" in d.error for d in letters)
    assert (
        letters[0].payload["inputs"] == {"scheduled_at": odd[0]}
        and letters[0].payload["delivery_key"] == odd[0]
    )
    assert run.inputs == {"scheduled_at": tick_key(start)}  # the run learns its tick's time
    # The trigger moved on: the next (even) tick runs.
    after = _loop(pg_url, start + timedelta(minutes=4)).run_once()
    assert (after.fired, after.failed) == (1, 0)
    assert _trigger(wid, "tick").next_fire_at == start + timedelta(minutes=5)
    # Once the workflow accepts it, replaying the dead letter runs the tick, once.
    with session_scope(pg_url) as session:
        workflows.save_version(session, wid, _definition([_schedule("tick", missed="catch_up", catch_up_max=3)],
                                                         {"type": "object"}))  # fmt: skip
    replayed = dead_letters.replay(letters[0].id, actor="user:test")
    assert replayed.run_id and wait_for_run(replayed.run_id).status == "succeeded"
    assert odd[0] in {r.delivery_key for r in _deliveries(pg_url)}


def test_removing_or_disabling_a_schedule_stops_its_ticks(pg_url):
    wid = _save(_definition([_schedule("tick", inputs={"n": 1})]))
    with session_scope(get_settings().database_url) as session:
        workflows.save_version(
            session, wid, _definition([{**_schedule("tick", inputs={"n": 1}), "enabled": False}])
        )
    _set_next_fire(pg_url, _minute(datetime.now(UTC)) - timedelta(minutes=5))
    assert _loop(pg_url, datetime.now(UTC)).run_once().triggers == 0
    assert _run_count(pg_url) == 0

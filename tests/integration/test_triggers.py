"""Triggers declared in a definition: mirrored into PostgreSQL on save, fired once per delivery."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from engine import trigger_fire, triggers, workflows
from engine.errors import ErrorCode, FlowloomError, ValidationError
from engine.parse import parse_dict
from engine.validate import validate
from models.db import get_engine, session_scope
from models.tables import Run
from models.triggers import TriggerDelivery
from tests.integration.engine_helpers import node, wait_for_run, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "clean_db")


def _definition(trigger_list: list[dict]) -> dict:
    defn = workflow(
        [node("start", "start"), node("end", "end")], [("start", "end")],
    ).to_dict()  # fmt: skip
    defn["inputs"] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    defn["triggers"] = trigger_list
    return defn


def _save(pg_url: str, defn: dict, workflow_id=None) -> str:
    with session_scope(pg_url) as session:
        if workflow_id is None:
            workflow_id = workflows.create_workflow(session, "triggered").id
        workflows.save_version(session, workflow_id, defn)
    return str(workflow_id)


HOOK = {"id": "hook", "kind": "webhook", "config": {"secret": "hook-secret"}}
TICK = {"id": "nightly", "kind": "schedule", "config": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}}


def test_saving_a_version_mirrors_its_triggers_and_keeps_their_ids_across_versions(pg_url):
    wid = _save(pg_url, _definition([HOOK, TICK]))
    with get_engine(pg_url).connect() as conn:
        rows = {t.key: t for t in triggers.list_for_workflow(conn, wid)}
    assert set(rows) == {"hook", "nightly"} and all(t.live for t in rows.values())
    # 03:00 in Berlin is 01:00 or 02:00 UTC, the next one after now.
    tick = rows["nightly"].next_fire_at
    assert tick > datetime.now(UTC) and tick.hour in (1, 2) and tick.minute == 0

    _save(pg_url, _definition([HOOK]), wid)  # the schedule is gone from the new version
    with get_engine(pg_url).connect() as conn:
        again = {t.key: t for t in triggers.list_for_workflow(conn, wid)}
    assert again["hook"].id == rows["hook"].id  # the webhook keeps its URL
    assert not again["nightly"].active and again["hook"].live


def test_a_delivery_starts_one_run_however_often_and_however_concurrently_it_arrives(pg_url):
    wid = _save(pg_url, _definition([HOOK]))
    with get_engine(pg_url).connect() as conn:
        (hook,) = triggers.list_for_workflow(conn, wid)
    results: list[trigger_fire.Fired] = []

    def deliver() -> None:
        results.append(trigger_fire.fire(hook, "msg-1", {"n": 1}))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run_ids = {r.run_id for r in results}
    assert len(run_ids) == 1 and sum(not r.duplicate for r in results) == 1
    (run_id,) = run_ids
    assert wait_for_run(run_id).status == "succeeded"
    with get_engine(pg_url).connect() as conn:
        run = conn.execute(
            select(Run.trigger_id, Run.started_via, Run.started_by).where(Run.id == run_id)
        ).one()
        deliveries = conn.execute(select(func.count()).select_from(TriggerDelivery)).scalar()
    assert (str(run.trigger_id), run.started_via, run.started_by) == (
        hook.id,
        "trigger",
        f"trigger:{hook.id}",
    )
    assert deliveries == 1


def test_bad_inputs_start_nothing_and_record_no_delivery(pg_url):
    wid = _save(pg_url, _definition([HOOK]))
    with get_engine(pg_url).connect() as conn:
        (hook,) = triggers.list_for_workflow(conn, wid)
    with pytest.raises(ValidationError) as caught:
        trigger_fire.fire(hook, "msg-bad", {"n": "not a number"})
    assert caught.value.issues[0].field == "input.n"
    with get_engine(pg_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(TriggerDelivery)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(Run)).scalar() == 0
    # The same delivery with good inputs is not a duplicate of the refused one.
    assert not trigger_fire.fire(hook, "msg-bad", {"n": 2}).duplicate


def test_a_paused_trigger_refuses_deliveries_until_resumed(pg_url):
    wid = _save(pg_url, _definition([HOOK]))
    with get_engine(pg_url).connect() as conn:
        (hook,) = triggers.list_for_workflow(conn, wid)
    paused = triggers.set_paused(hook.id, True, actor="user:test")
    with pytest.raises(FlowloomError) as caught:
        trigger_fire.fire(paused, "msg-2", {})
    assert caught.value.code == ErrorCode.TRIGGER_PAUSED
    resumed = triggers.set_paused(hook.id, False, actor="user:test")
    assert trigger_fire.fire(resumed, "msg-2", {}).run_id


def test_the_validator_names_the_trigger_and_field_of_each_problem():
    defn = _definition([
        {"id": "tick", "kind": "schedule", "config": {"cron": "61 * * * *"}},
        {"id": "zone", "kind": "schedule", "config": {"cron": "0 * * * *", "timezone": "Mars/Olympus"}},
        {"id": "topic", "kind": "kafka", "config": {"topic": "orders", "filter": "message.total >"}},
        {"id": "talk", "kind": "chat", "config": {"message_input": "question"}},
        {"id": "hook", "kind": "webhook", "config": {}},
    ])  # fmt: skip
    issues = {i.field: i for i in validate(parse_dict(defn)).errors}
    assert set(issues) == {
        "triggers.tick.config.cron", "triggers.zone.config.timezone", "triggers.topic.config.filter",
        "triggers.talk.config.message_input", "triggers.hook.config.secret",
    }  # fmt: skip
    assert "cron" in issues["triggers.tick.config.cron"].message
    assert "Mars/Olympus" in issues["triggers.zone.config.timezone"].message

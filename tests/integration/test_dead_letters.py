"""Dead letters: the relay's rows, replay through the admin API (an event goes out again once the limit
allows it; a webhook delivery starts its run once), and the page and API refuse everyone but admins."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.api.main import api
from app.auth import sessions
from engine import dead_letters, events, trigger_fire
from engine.event_relay import EventRelay
from models.auth import AuditLog
from models.db import get_engine
from models.tables import Event
from tests.integration.engine_helpers import wait_for_run
from tests.integration.kafka_broker import TansuBroker, read_topic
from tests.integration.kafka_trigger_helpers import (
    fresh_name,
    kafka_definition,
    only_trigger,
    publisher_config,
    relay_all,
    running_broker,
    save_workflow,
)

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "clean_db")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    yield from running_broker(tmp_path_factory)


def session_client(make_user, role: str) -> TestClient:
    token, _ = sessions.issue(str(make_user(role).id))
    client = TestClient(api)
    client.cookies.set(sessions.COOKIE_NAME, token)
    return client


def test_an_event_too_large_to_publish_is_listed_and_replayed_by_an_admin_once_the_limit_allows_it(
    api_client, pg_url, kafka_broker
):
    prefix, run_id = fresh_name("t"), str(uuid.uuid4())
    with get_engine(pg_url).begin() as conn:
        events.emit(conn, events.AGENT_FAILED, run_id, node_id="a", agent_id="a1", error="z" * 80_000)
    small = EventRelay(pg_url, publisher_config(kafka_broker.bootstrap, prefix, max_message_bytes=50_000))
    relay_all(small)
    assert small.totals.dead_lettered == 1

    admin = api_client("admin")
    listed = admin.get("/api/dead-letters", params={"source": "event", "replayed": "false"})
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["items"]
    assert listed.json()["total"] == 1 and item["source"] == "event" and item["message_key"] == run_id
    assert "FLOWLOOM_KAFKA_MAX_MESSAGE_BYTES" in item["error"] and item["topic"] == f"{prefix}.agent"
    assert (
        item["payload"] is None
        and item["payload_preview"].startswith("{")
        and len(item["payload_preview"]) <= 300
    )
    full = admin.get(f"/api/dead-letters/{item['id']}").json()
    assert full["payload"]["data"]["error"] == "z" * 80_000

    replayed = admin.post(f"/api/dead-letters/{item['id']}/replay")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["run_id"] is None and "queued in the outbox" in replayed.json()["note"]
    assert admin.user.email in replayed.json()["dead_letter"]["replayed_by"]
    again = admin.post(f"/api/dead-letters/{item['id']}/replay")
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    with get_engine(pg_url).connect() as conn:
        (row,) = conn.execute(select(Event.published_at, Event.payload)).all()
        audit = conn.execute(select(AuditLog.action, AuditLog.target_id)).all()
    assert row.published_at is None and "dead_letter" not in row.payload  # waits for the relay again
    assert ("dead_letter.replayed", str(item["id"])) in audit

    relay_all(EventRelay(pg_url, publisher_config(kafka_broker.bootstrap, prefix)))  # the limit raised
    records = read_topic(kafka_broker.bootstrap, f"{prefix}.agent", expect=1)
    assert [r.value["event_id"] for r in records] == [str(full["event_id"])]
    assert records[0].value["error"] == "z" * 80_000
    assert dead_letters.list_dead_letters().total == 1  # published this time: no new dead letter


def test_a_webhook_dead_letter_replays_with_its_stored_inputs_and_delivery_key(api_client, pg_url):
    wid = save_workflow(pg_url, {**kafka_definition("unused"), "triggers": [
        {"id": "hook", "kind": "webhook", "config": {"secret": "hook-secret"}},
    ]})  # fmt: skip
    hook = only_trigger(pg_url, wid)
    with get_engine(pg_url).begin() as conn:
        letter_id = dead_letters.record(
            conn, source="webhook", error="the worker pool was full", trigger_id=hook.id, message_key="wh-1",
            payload={"inputs": {"n": 5}, "delivery_key": "wh-1"},
        )  # fmt: skip
    done = api_client("admin").post(f"/api/dead-letters/{letter_id}/replay")
    assert done.status_code == 200, done.text
    run_id = done.json()["run_id"]
    assert wait_for_run(run_id).status == "succeeded"
    assert trigger_fire.fire(hook, "wh-1", {"n": 5}).run_id == run_id  # the same delivery: no second run


@pytest.mark.parametrize("role", ["viewer", "operator", "editor"])
def test_the_dead_letter_api_and_page_refuse_everyone_but_admins(api_client, make_user, pg_url, role):
    with get_engine(pg_url).begin() as conn:
        letter_id = dead_letters.record(conn, source="kafka", error="not JSON", payload={"value": "x"})
    client = api_client(role)
    assert client.get("/api/dead-letters").status_code == 403
    assert client.get(f"/api/dead-letters/{letter_id}").status_code == 403
    assert client.post(f"/api/dead-letters/{letter_id}/replay").status_code == 403
    assert session_client(make_user, role).get("/dead-letters", follow_redirects=False).status_code == 403
    assert session_client(make_user, "admin").get("/dead-letters", follow_redirects=False).status_code not in (
        303, 401, 403,
    )  # fmt: skip
    assert TestClient(api).get("/api/dead-letters").status_code == 401
    assert dead_letters.get(letter_id).replayed_at is None  # nothing was replayed


def test_the_webhook_and_dead_letter_routes_are_typed_in_the_openapi_schema(api_client):
    schema = api_client("viewer").get("/api/openapi.json").json()
    paths, models = schema["paths"], schema["components"]["schemas"]
    hook = paths["/api/hooks/{trigger_id}"]["post"]
    assert {"202", "200", "401", "404", "409", "413", "422", "429"} <= set(hook["responses"])
    assert hook["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HookAnswer"
    }
    assert set(models["HookAnswer"]["properties"]) >= {"run_id", "status", "duplicate", "outputs"}
    assert "get" in paths["/api/dead-letters"] and "get" in paths["/api/dead-letters/{dead_letter_id}"]
    replay = paths["/api/dead-letters/{dead_letter_id}/replay"]["post"]
    assert {"200", "404", "409"} <= set(replay["responses"])
    assert replay["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReplayPublic"
    }

"""The run API: Idempotency-Key on both start routes (one run per key, however concurrent), running
a saved workflow by id, and listing runs with filters and keyset pages."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.db import db_session
from engine import idempotency, runs, trigger_fire, triggers, workflows
from engine.errors import ErrorCode, FlowloomError
from engine.settings import get_settings
from models.db import get_engine
from models.tables import Run
from models.triggers import IdempotencyKey
from tests.integration.engine_helpers import node, wait_for_run, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")

REPLAYED = "Idempotent-Replayed"


def definition(name: str = "echoer", triggers_: list | None = None) -> dict:
    defn = workflow(
        [node("start", "start"), node("echo", "tool.python", tool="echo", args={"value": "{{ input.n }}"}),
         node("end", "end")],
        [("start", "echo"), ("echo", "end")], name=name,
    ).to_dict()  # fmt: skip
    defn["inputs"] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    if triggers_:
        defn["triggers"] = triggers_
    return defn


def saved(name: str = "echoer", **kwargs) -> str:
    """A new workflow with version 1 saved (its triggers mirrored)."""
    with db_session() as session:
        workflow_id = workflows.create_workflow(session, name).id
        workflows.save_version(session, workflow_id, definition(name, **kwargs))
    return str(workflow_id)


def count(table) -> int:
    with get_engine(get_settings().database_url).connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


# ---------------------------------------------------------------------------------------------
# Idempotency-Key


def test_the_same_key_and_body_return_the_same_run_with_the_replay_header(api_client) -> None:
    operator = api_client("operator")
    wid = saved()
    body = {"workflow_id": wid, "inputs": {"n": 1}}
    first = operator.post("/api/runs", json=body, headers={"Idempotency-Key": "order-1"})
    again = operator.post("/api/runs", json=body, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert REPLAYED not in first.headers and again.headers[REPLAYED] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert count(Run) == 1 and count(IdempotencyKey) == 1
    assert wait_for_run(first.json()["id"]).status == "succeeded"
    # Without a key every request starts a run, as before.
    assert operator.post("/api/runs", json=body).json()["id"] != first.json()["id"]


def test_the_same_key_with_another_body_is_a_422_and_starts_nothing(api_client) -> None:
    operator = api_client("operator")
    wid = saved()
    first = operator.post(
        "/api/runs", json={"workflow_id": wid, "inputs": {"n": 1}}, headers={"Idempotency-Key": "k"}
    )
    other = operator.post(
        "/api/runs", json={"workflow_id": wid, "inputs": {"n": 2}}, headers={"Idempotency-Key": "k"}
    )
    assert first.status_code == 201
    assert other.status_code == 422 and other.headers["content-type"].startswith("application/problem+json")
    problem = other.json()
    assert problem["code"] == "idempotency_mismatch" and problem["field"] == "Idempotency-Key"
    assert first.json()["id"] in problem["detail"]
    # The same key on the other start route is another request too.
    on_workflow = operator.post(
        f"/api/workflows/{wid}/runs", json={"inputs": {"n": 1}}, headers={"Idempotency-Key": "k"}
    )
    assert on_workflow.status_code == 422 and on_workflow.json()["code"] == "idempotency_mismatch"
    assert count(Run) == 1


def test_keys_belong_to_their_caller(api_client) -> None:
    alice, bob = api_client("operator"), api_client("operator")
    wid = saved()
    body = {"workflow_id": wid, "inputs": {}}
    a = alice.post("/api/runs", json=body, headers={"Idempotency-Key": "shared"})
    b = bob.post("/api/runs", json=body, headers={"Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"] and REPLAYED not in b.headers
    with get_engine(get_settings().database_url).connect() as conn:
        principals = set(conn.execute(select(IdempotencyKey.principal)).scalars())
    assert principals == {a.json()["started_by"], b.json()["started_by"]}
    assert all(p.startswith("api_key:") for p in principals)


@pytest.mark.parametrize(
    ("key", "message"),
    [("x" * 256, "at most 255"), (b"caf\xe9", "printable ASCII"), ("", "empty")],
)
def test_a_bad_key_is_a_422_naming_the_header(api_client, key, message: str) -> None:
    response = api_client("operator").post(
        "/api/runs", json={"workflow_id": saved(), "inputs": {}}, headers={"Idempotency-Key": key}
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "Idempotency-Key" and message in response.json()["detail"]
    assert count(Run) == 0


def test_a_key_older_than_24_hours_is_forgotten(api_client) -> None:
    operator = api_client("operator")
    wid = saved()
    first = operator.post(
        "/api/runs", json={"workflow_id": wid, "inputs": {"n": 1}}, headers={"Idempotency-Key": "old"}
    )
    with get_engine(get_settings().database_url).begin() as conn:
        conn.execute(
            update(IdempotencyKey).values(created_at=IdempotencyKey.created_at - timedelta(hours=25))
        )
    # Another body is no longer a conflict: the key starts a new run, and is stored anew.
    second = operator.post(
        "/api/runs", json={"workflow_id": wid, "inputs": {"n": 2}}, headers={"Idempotency-Key": "old"}
    )
    assert second.status_code == 201 and REPLAYED not in second.headers
    assert second.json()["id"] != first.json()["id"] and count(IdempotencyKey) == 1
    with get_engine(get_settings().database_url).begin() as conn:
        conn.execute(
            update(IdempotencyKey).values(created_at=IdempotencyKey.created_at - timedelta(hours=25))
        )
    assert idempotency.purge_expired() == 1 and count(IdempotencyKey) == 0


def test_concurrent_requests_with_one_key_start_one_run(clean_db) -> None:
    defn = workflows.saved_version(uuid.UUID(saved()), None)
    racers = 5
    barrier = threading.Barrier(racers, timeout=60)
    results: list[idempotency.Started] = []
    errors: list[BaseException] = []

    def start(conn):
        run = runs.start_run_in(conn, defn.definition, {"n": 3}, workflow_id=defn.workflow_id,
                                version_id=defn.version_id, started_by="user:racer", started_via="api")  # fmt: skip
        barrier.wait()  # every racer has its own run, uncommitted, before any inserts the key
        return run

    def race() -> None:
        try:
            results.append(idempotency.start_once("user:racer", "race-1", "POST /api/runs", {"n": 3}, start))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({r.run_id for r in results}) == 1 and [r.replayed for r in results].count(False) == 1
    assert count(Run) == 1 and count(IdempotencyKey) == 1  # the losers' runs were rolled back
    assert wait_for_run(results[0].run_id).status == "succeeded"


def test_posting_to_a_workflow_runs_its_latest_or_a_given_version(api_client) -> None:
    operator = api_client("operator")
    wid = saved()
    with db_session() as session:
        workflows.save_version(session, uuid.UUID(wid), definition("echoer v2"))
    latest = operator.post(f"/api/workflows/{wid}/runs", json={"inputs": {"n": 5}})
    first = operator.post(f"/api/workflows/{wid}/runs?version=1")  # no body: no inputs
    assert latest.status_code == first.status_code == 201, (latest.text, first.text)
    listed = {r["id"]: r for r in operator.get("/api/runs", params={"workflow_id": wid}).json()["runs"]}
    assert listed[latest.json()["id"]]["version"] == 2 and listed[first.json()["id"]]["version"] == 1
    assert wait_for_run(latest.json()["id"]).status == "succeeded"
    missing = operator.post(f"/api/workflows/{wid}/runs?version=9", json={})
    unknown = operator.post(f"/api/workflows/{uuid.uuid4()}/runs", json={})
    bad_inputs = operator.post(f"/api/workflows/{wid}/runs", json={"inputs": {"n": "five"}})
    extra = operator.post(f"/api/workflows/{wid}/runs", json={"inputs": {}, "definition": {}})
    assert missing.status_code == unknown.status_code == 404
    assert bad_inputs.status_code == 422 and bad_inputs.json()["issues"][0]["field"] == "input.n"
    assert extra.status_code == 422
    replay = [operator.post(f"/api/workflows/{wid}/runs", json={"inputs": {"n": 7}}, headers={"Idempotency-Key": "w"})
              for _ in range(2)]  # fmt: skip
    assert replay[0].json()["id"] == replay[1].json()["id"] and replay[1].headers[REPLAYED] == "true"
    assert api_client("viewer").post(f"/api/workflows/{wid}/runs", json={}).status_code == 403


# ---------------------------------------------------------------------------------------------
# GET /api/runs


def test_runs_are_listed_with_filters(api_client) -> None:
    operator, viewer = api_client("operator"), api_client("viewer")
    hook = {"id": "hook", "kind": "webhook", "config": {"secret": "hook-secret"}}
    wid, other = saved("listed", triggers_=[hook]), saved("other")
    by_api = operator.post("/api/runs", json={"workflow_id": wid, "inputs": {"n": 1}}).json()
    defn = workflows.saved_version(uuid.UUID(other), None)
    by_cli = runs.start_run(defn.definition, {"n": 2}, workflow_id=defn.workflow_id, version_id=defn.version_id,
                            started_by="cli:tester", started_via="cli")  # fmt: skip
    with get_engine(get_settings().database_url).connect() as conn:
        (trigger,) = triggers.list_for_workflow(conn, wid)
    by_hook = trigger_fire.fire(trigger, "delivery-1", {"n": 3}).run_id
    failing = operator.post("/api/runs", json={"workflow_id": wid, "inputs": {"n": "x"}})
    assert failing.status_code == 422  # starts nothing, lists nothing
    for run_id in (by_api["id"], by_cli, by_hook):
        wait_for_run(run_id)

    def ids(**params) -> list[str]:
        response = viewer.get("/api/runs", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["runs"]]

    assert ids() == [by_hook, by_cli, by_api["id"]]  # newest first
    assert ids(workflow_id=wid) == [by_hook, by_api["id"]]
    assert ids(started_via="cli") == [by_cli]
    assert ids(trigger_id=trigger.id) == [by_hook]
    assert ids(started_by=by_api["started_by"]) == [by_api["id"]]
    assert ids(created_by=str(operator.user.id)) == [by_api["id"]]
    assert ids(status=["succeeded", "failed"]) == [by_hook, by_cli, by_api["id"]]
    assert ids(status="running") == []
    page = viewer.get("/api/runs", params={"trigger_id": trigger.id}).json()
    (row,) = page["runs"]
    assert page["next_cursor"] is None
    assert row["workflow_name"] == "listed" and row["version"] == 1 and row["status"] == "succeeded"
    assert row["started_via"] == "trigger" and row["started_by"] == f"trigger:{trigger.id}"
    assert row["started_at"] and row["finished_at"] and row["error"] is None
    middle = next(r for r in viewer.get("/api/runs").json()["runs"] if r["id"] == by_cli)["created_at"]
    assert ids(created_after=middle) == [by_hook, by_cli]
    assert ids(created_before=middle) == [by_api["id"]]


def test_pages_follow_the_cursor_and_stay_put_while_new_runs_start(api_client) -> None:
    viewer = api_client("viewer")
    defn = workflows.saved_version(uuid.UUID(saved()), None)

    def start() -> str:
        return runs.start_run(defn.definition, {}, workflow_id=defn.workflow_id, version_id=defn.version_id)

    started = [start() for _ in range(7)]
    first = viewer.get("/api/runs", params={"limit": 3}).json()
    assert [r["id"] for r in first["runs"]] == started[::-1][:3] and first["next_cursor"]
    start()  # a new run does not shift the next pages
    second = viewer.get("/api/runs", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    third = viewer.get("/api/runs", params={"limit": 3, "cursor": second["next_cursor"]}).json()
    assert [r["id"] for r in second["runs"] + third["runs"]] == started[::-1][3:]
    assert third["next_cursor"] is None
    bad = viewer.get("/api/runs", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"
    assert viewer.get("/api/runs", params={"limit": 201}).status_code == 422
    assert viewer.get("/api/runs", params={"status": "sleeping"}).status_code == 422


def test_a_malformed_cursor_is_refused_by_the_door_too() -> None:
    with pytest.raises(FlowloomError) as caught:
        runs.list_runs(cursor="eyJ4IjoxfQ")  # valid base64 of another JSON shape
    assert caught.value.code == ErrorCode.REQUEST_INVALID and caught.value.field == "cursor"


def test_the_openapi_schema_types_the_run_routes(api_client) -> None:
    schema = api_client("viewer").get("/api/openapi.json").json()
    paths, models = schema["paths"], schema["components"]["schemas"]
    listing = paths["/api/runs"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listing == {"$ref": "#/components/schemas/RunPage"}
    assert set(models["RunSummary"]["properties"]) >= {
        "id", "workflow_id", "workflow_name", "version", "status", "started_by", "started_via", "trigger_id",
        "created_at", "started_at", "finished_at", "error",
    }  # fmt: skip
    stream = paths["/api/runs/{run_id}/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
    assert stream["itemSchema"]["properties"]["data"]["contentSchema"] == {
        "$ref": "#/components/schemas/RunEventEnvelope"
    }
    for path in ("/api/runs", "/api/workflows/{workflow_id}/runs"):
        post = paths[path]["post"]
        assert "Idempotency-Key" in {p["name"] for p in post["parameters"] if p["in"] == "header"}
        assert "Idempotent-Replayed" in post["responses"]["201"]["headers"]
        assert post["responses"]["201"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/RunPublic"
        }

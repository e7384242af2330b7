"""/api/workflows/{id}/triggers and /api/triggers/{id}: list, read, pause/resume, token; roles and 404s."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.api.main import api
from engine import triggers, workflows
from engine.settings import get_settings
from models.auth import AuditLog
from models.db import get_engine, session_scope
from tests.integration.engine_helpers import node, workflow

HOOK = {"id": "hook", "kind": "webhook", "config": {"secret": "hook-signing-secret"}}
NIGHTLY = {"id": "nightly", "kind": "schedule", "config": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}}
FORM = {"id": "ask", "kind": "form", "config": {"public": True, "title": "Ask us"}}


def _saved(trigger_list: list[dict]) -> str:
    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")]).to_dict()
    defn["triggers"] = trigger_list
    with session_scope(get_settings().database_url) as session:
        workflow_id = workflows.create_workflow(session, "triggered").id
        workflows.save_version(session, workflow_id, defn)
    return str(workflow_id)


@pytest.fixture
def wid(auth_env) -> str:
    return _saved([HOOK, NIGHTLY, FORM])


def _by_key(client: TestClient, workflow_id: str) -> dict[str, dict]:
    response = client.get(f"/api/workflows/{workflow_id}/triggers")
    assert response.status_code == 200, response.text
    return {t["key"]: t for t in response.json()}


def test_a_viewer_lists_the_triggers_with_state_paths_and_next_fire_times(api_client, wid):
    listed = _by_key(api_client("viewer"), wid)
    assert set(listed) == {"hook", "nightly", "ask"}
    hook, nightly, ask = listed["hook"], listed["nightly"], listed["ask"]
    assert all(
        t["live"] and t["active"] and not t["paused"] and t["workflow_id"] == wid for t in listed.values()
    )
    assert hook["kind"] == "webhook" and hook["webhook_path"] == f"/api/hooks/{hook['id']}"
    # The signing secret's name stays on the server; the rest of the config is shown.
    assert "secret" not in hook["config"] and hook["config"]["signature"] == "standard"
    assert "hook-signing-secret" not in str(listed)
    assert ask["page_path"] == f"/forms/{ask['id']}" and ask["webhook_path"] is None and not ask["has_token"]
    assert ask["config"]["title"] == "Ask us" and ask["next_fires"] == []
    # 03:00 in Berlin: 01:00 or 02:00 UTC, five days in a row, the first being the stored next tick.
    fires = [datetime.fromisoformat(t) for t in nightly["next_fires"]]
    assert len(fires) == 5 and fires == sorted(fires) and fires[0] > datetime.now(UTC)
    assert all(f.hour in (1, 2) and f.minute == 0 for f in fires)
    assert fires[0] == datetime.fromisoformat(nightly["next_fire_at"])
    assert nightly["config"]["timezone"] == "Europe/Berlin" and nightly["config"]["missed"] == "skip"


def test_one_trigger_reads_by_id_and_unknown_ids_are_404(api_client, wid):
    viewer = api_client("viewer")
    hook = _by_key(viewer, wid)["hook"]
    got = viewer.get(f"/api/triggers/{hook['id']}")
    assert got.status_code == 200 and got.json() == hook
    unknown = uuid.uuid4()
    for response in (
        viewer.get(f"/api/triggers/{unknown}"),
        viewer.get(f"/api/workflows/{unknown}/triggers"),
        api_client("operator").post(f"/api/triggers/{unknown}/pause"),
        api_client("editor").post(f"/api/triggers/{unknown}/token"),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert str(unknown) in response.json()["detail"]
    assert viewer.get("/api/workflows/not-a-uuid/triggers").status_code == 422
    assert viewer.get("/api/triggers/not-a-uuid").status_code == 422


def test_operators_pause_and_resume_viewers_cannot_and_each_change_is_audited(api_client, wid):
    viewer, operator = api_client("viewer"), api_client("operator")
    nightly = _by_key(viewer, wid)["nightly"]
    refused = viewer.post(f"/api/triggers/{nightly['id']}/pause")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert viewer.get(f"/api/triggers/{nightly['id']}").json()["live"]

    paused = operator.post(f"/api/triggers/{nightly['id']}/pause")
    assert paused.status_code == 200, paused.text
    body = paused.json()
    assert body["paused"] and not body["live"] and body["next_fires"] == [] and body["next_fire_at"] is None
    assert not triggers.get_now(nightly["id"]).live
    assert viewer.post(f"/api/triggers/{nightly['id']}/resume").status_code == 403

    resumed = operator.post(f"/api/triggers/{nightly['id']}/resume").json()
    assert resumed["live"] and len(resumed["next_fires"]) == 5
    with get_engine(get_settings().database_url).connect() as conn:
        entries = conn.execute(
            select(AuditLog.action, AuditLog.actor)
            .where(AuditLog.target_id == nightly["id"])
            .order_by(AuditLog.id)
        ).all()
    assert [e.action for e in entries] == ["trigger.paused", "trigger.resumed"]
    assert all(operator.user.email in e.actor for e in entries)


def test_editors_rotate_a_forms_token_shown_once_and_operators_cannot(api_client, wid):
    listed = _by_key(api_client("viewer"), wid)
    ask, hook = listed["ask"], listed["hook"]
    assert api_client("operator").post(f"/api/triggers/{ask['id']}/token").status_code == 403
    editor = api_client("editor")
    first = editor.post(f"/api/triggers/{ask['id']}/token")
    assert first.status_code == 200, first.text
    token = first.json()["token"]
    assert first.json()["page_path"] == f"/forms/{ask['id']}" and len(token) >= 24
    with get_engine(get_settings().database_url).connect() as conn:
        assert triggers.token_matches(conn, ask["id"], token)
    shown = editor.get(f"/api/triggers/{ask['id']}").json()
    assert shown["has_token"] and token not in str(shown)
    second = editor.post(f"/api/triggers/{ask['id']}/token").json()["token"]
    with get_engine(get_settings().database_url).connect() as conn:
        assert triggers.token_matches(conn, ask["id"], second) and not triggers.token_matches(
            conn, ask["id"], token
        )
    # A webhook has no token (its deliveries are signed): 404, as for any id that is not a form or chat.
    assert editor.post(f"/api/triggers/{hook['id']}/token").status_code == 404


def test_the_routes_need_a_signed_in_caller_and_are_in_the_openapi_schema(auth_env, wid):
    anonymous = TestClient(api)
    assert anonymous.get(f"/api/workflows/{wid}/triggers").status_code == 401
    assert anonymous.get(f"/api/triggers/{uuid.uuid4()}").status_code == 401
    schema = anonymous.get("/api/openapi.json").json()
    paths = schema["paths"]
    for path, method in (
        ("/api/workflows/{workflow_id}/triggers", "get"), ("/api/triggers/{trigger_id}", "get"),
        ("/api/triggers/{trigger_id}/pause", "post"), ("/api/triggers/{trigger_id}/resume", "post"),
        ("/api/triggers/{trigger_id}/token", "post"),
    ):  # fmt: skip
        operation = paths[path][method]
        assert "200" in operation["responses"] and "401" in operation["responses"]
    assert "404" in paths["/api/triggers/{trigger_id}"]["get"]["responses"]
    assert "403" in paths["/api/triggers/{trigger_id}/pause"]["post"]["responses"]
    assert set(schema["components"]["schemas"]["TriggerPublic"]["properties"]) >= {
        "kind", "key", "live", "paused", "config", "next_fires", "webhook_path", "page_path",
    }  # fmt: skip

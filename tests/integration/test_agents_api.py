"""/api/agents on the real database: viewers read, editors create, edit, validate and terminate."""

from __future__ import annotations

import re

from engine import secrets
from engine.agent_lifecycle import ID_PATTERN

BASE_URL = "http://127.0.0.1:9/v1"  # nothing is called: validation reads the config and the secret's bindings


def _body(**config) -> dict:
    return {
        "name": "Triage",
        "capabilities": ["TRIAGE"],
        "config": {"model": "scripted", "base_url": BASE_URL, "api_key_secret": "triage-key", **config},
        "memory": {"max_turns": 4, "policy": "truncate"},
    }


def test_an_editor_creates_an_agent_that_goes_ready_and_a_viewer_reads_it_but_cannot_change_it(api_client):
    secrets.set_secret("triage-key", "sk-t", allowed_destinations=["127.0.0.1:9"])
    editor, viewer = api_client("editor"), api_client("viewer")
    created = editor.post("/api/agents", json=_body())
    assert created.status_code == 201, created.text
    agent = created.json()
    assert re.match(ID_PATTERN, agent["id"]) and agent["state"] == "READY", agent["state_reason"]
    assert agent["capabilities"] == ["TEXT_PROCESSING", "TRIAGE"]
    assert agent["memory"]["max_turns"] == 4 and agent["memory_size"] == {
        "sessions": 0,
        "messages": 0,
        "chars": 0,
    }

    listed = viewer.get("/api/agents")
    assert listed.status_code == 200 and [a["id"] for a in listed.json()] == [agent["id"]]
    assert viewer.get(f"/api/agents/{agent['id']}").json()["state"] == "READY"
    registry = {c["name"]: c for c in viewer.get("/api/agents/capabilities").json()}
    assert registry["TRIAGE"]["agents"] == [{"id": agent["id"], "name": "Triage", "state": "READY"}]
    assert "TEXT_PROCESSING" in registry and "WORKFLOW_CONTROL" in registry
    schema = viewer.get("/api/agents/schema").json()
    assert "model" in schema["properties"] and "prompt" not in schema["properties"]

    for method, path, body in [
        ("post", "/api/agents", _body()),
        ("patch", f"/api/agents/{agent['id']}", {"name": "x"}),
        ("post", f"/api/agents/{agent['id']}/validate", None),
        ("post", f"/api/agents/{agent['id']}/terminate", None),
    ]:
        refused = getattr(viewer, method)(path, json=body)
        assert refused.status_code == 403, (method, path, refused.text)
    assert viewer.get(f"/api/agents/{agent['id']}").json()["name"] == "Triage"


def test_an_edit_is_validated_again_and_a_failed_check_says_which_field(api_client):
    secrets.set_secret("triage-key", "sk-t", allowed_destinations=["127.0.0.1:9"])
    editor = api_client("editor")
    agent = editor.post("/api/agents", json=_body()).json()
    changed = editor.patch(  # validate=false cannot leave a READY agent with unchecked changes
        f"/api/agents/{agent['id']}?validate=false", json={"config": {**agent["config"], "tools": ["nope"]}}
    )
    assert changed.status_code == 200, changed.text
    failed = changed.json()
    assert failed["state"] == "FAILED" and "config.tools" in failed["state_reason"]
    assert [c["field"] for c in failed["checks"] if not c["ok"]] == ["config.tools"]
    fixed = editor.patch(f"/api/agents/{agent['id']}", json={"config": {**agent["config"], "tools": ["add"]}})
    assert fixed.json()["state"] == "READY" and "API_INTEGRATION" in fixed.json()["capabilities"]

    ended = editor.post(f"/api/agents/{agent['id']}/terminate", json={"reason": "replaced"})
    assert ended.status_code == 200 and ended.json()["state"] == "TERMINATED"
    again = editor.post(f"/api/agents/{agent['id']}/validate")
    assert again.status_code == 409 and again.json()["code"] == "agent_transition_invalid"
    assert "cannot go from TERMINATED" in again.json()["detail"]
    edit = editor.patch(f"/api/agents/{agent['id']}", json={"name": "again"})
    assert edit.status_code == 409 and edit.json()["code"] == "agent_not_ready"


def test_unknown_agents_are_404_and_bad_bodies_422(api_client):
    editor = api_client("editor")
    missing = editor.get("/api/agents/AGENT-20250101-000000-0001-ABCD")
    assert missing.status_code == 404 and missing.json()["code"] == "agent_not_found"
    assert editor.post("/api/agents", json={"name": "", "config": {}}).status_code == 422
    assert editor.post("/api/agents", json={**_body(), "memory": {"max_turns": 0}}).status_code == 422
    unvalidated = editor.post("/api/agents?validate=false", json=_body())
    assert unvalidated.status_code == 201 and unvalidated.json()["state"] == "CREATED"

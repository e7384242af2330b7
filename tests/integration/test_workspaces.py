"""Workspaces: who may enter which, with which role; switching; instance admins vs workspace admins.

Real PostgreSQL (the migration's triggers), the REST API through its auth gate, sessions and keys.
"""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from app.api.main import api
from app.auth import api_keys, sessions
from app.auth.principal import WORKSPACE_COOKIE, from_session_token, session_cache
from app.db import db_session
from engine import workspaces
from engine.workflows import create_workflow
from models.auth import ApiKey, AuditLog, User
from models.tables import Run
from models.workspace_column import DEFAULT_WORKSPACE_ID
from models.workspaces import WorkspaceMember

pytestmark = pytest.mark.usefixtures("auth_env")


def session_client(user: User, workspace: str = "") -> TestClient:
    token, _ = sessions.issue(str(user.id))
    client = TestClient(api)
    client.cookies.set(sessions.COOKIE_NAME, token)
    if workspace:
        client.cookies.set(WORKSPACE_COOKIE, workspace)
    return client


def new_workspace(slug: str) -> str:
    with db_session() as session:
        ws = workspaces.create_workspace(session, slug=slug, name=slug.title(), actor="test")
        session.commit()
        return str(ws.id)


def add(workspace_id: str, user: User, role: str | None) -> None:
    with db_session() as session:
        workspaces.set_member(session, workspace_id, user.id, role, actor="test")
        session.commit()
    session_cache.clear()


def test_every_new_user_joins_the_default_workspace_with_their_instance_role(make_user) -> None:
    user = make_user("editor")
    with db_session() as session:
        member = session.get(WorkspaceMember, (DEFAULT_WORKSPACE_ID, user.id))
        assert member is not None and member.role is None
        found = workspaces.memberships(session, user)
    assert [(m.slug, m.role) for m in found] == [("default", "editor")]
    body = session_client(user).get("/api/workspaces").json()
    assert body["current"]["slug"] == "default" and body["current"]["role"] == "editor"


def test_a_role_in_another_workspace_applies_only_while_acting_there(make_user) -> None:
    user = make_user("viewer")
    team = new_workspace("team-a")
    add(team, user, "editor")
    token, _ = sessions.issue(str(user.id))
    assert from_session_token(token).role == "viewer"  # the default workspace comes first
    there = from_session_token(token, team)
    assert (there.workspace_id, there.role) == (team, "editor")
    assert from_session_token(token, "team-a").workspace_id == team  # by short name too
    # A workspace the user is not in cannot be chosen: they stay in their first one.
    other = new_workspace("team-b")
    assert from_session_token(token, other).workspace_id == str(DEFAULT_WORKSPACE_ID)

    listed = session_client(user, team).get("/api/workspaces").json()
    assert listed["current"]["id"] == team
    assert {w["slug"]: w["role"] for w in listed["workspaces"]} == {"default": "viewer", "team-a": "editor"}
    # The header wins over the cookie (API clients with a session).
    client = session_client(user, team)
    assert client.get("/api/me", headers={"X-Flowloom-Workspace": "default"}).json()["role"] == "viewer"
    assert client.get("/api/me").json()["role"] == "editor"


def test_a_user_taken_out_of_every_workspace_can_do_nothing(make_user) -> None:
    user = make_user("editor")
    with db_session() as session:
        assert workspaces.remove_member(session, DEFAULT_WORKSPACE_ID, user.id, actor="test")
        session.commit()
    session_cache.clear()
    client = session_client(user)
    for path in ("/api/workspaces", "/api/workflows", "/api/runs"):
        refused = client.get(path)
        assert refused.status_code == 403 and refused.json()["code"] == "no_workspace", refused.text


def test_only_instance_admins_create_workspaces_and_workspace_admins_manage_their_own_members(
    make_user,
) -> None:
    instance_admin = session_client(make_user("admin"))
    created = instance_admin.post("/api/workspaces", json={"slug": "ops", "name": "Operations"})
    assert created.status_code == 201, created.text
    ops = created.json()["id"]
    assert instance_admin.post("/api/workspaces", json={"slug": "ops", "name": "Again"}).status_code == 409
    bad = instance_admin.post("/api/workspaces", json={"slug": "Not A Slug", "name": "x"})
    assert bad.status_code == 422 and bad.json()["field"] == "slug"

    lead, worker, outsider = make_user("viewer"), make_user("viewer"), make_user("viewer")
    add(ops, lead, "admin")
    lead_client = session_client(lead, ops)
    # An admin of a workspace is not an instance admin: no new workspaces, no instance roles.
    assert lead_client.post("/api/workspaces", json={"slug": "mine", "name": "Mine"}).status_code == 403
    assert lead_client.patch(f"/api/users/{worker.id}", json={"role": "admin"}).status_code == 403

    put = lead_client.put(f"/api/workspaces/{ops}/members/{worker.id}", json={"role": "operator"})
    assert put.status_code == 204, put.text
    members = {m["email"]: m for m in lead_client.get(f"/api/workspaces/{ops}/members").json()}
    assert members[worker.email]["role"] == "operator" and members[lead.email]["role"] == "admin"
    assert session_client(worker, ops).get("/api/me").json()["role"] == "operator"

    # Someone outside the workspace: it does not exist for them (404, like an unknown id).
    for method, path in [
        ("GET", f"/api/workspaces/{ops}/members"),
        ("PUT", f"/api/workspaces/{ops}/members/{outsider.id}"),
        ("DELETE", f"/api/workspaces/{ops}/members/{lead.id}"),
        ("PATCH", f"/api/workspaces/{ops}"),
    ]:
        body = {"role": "admin"} if method == "PUT" else {"name": "taken"} if method == "PATCH" else None
        answer = session_client(outsider).request(method, path, json=body)
        unknown = session_client(outsider).request(method, path.replace(ops, str(uuid.uuid4())), json=body)
        assert answer.status_code == unknown.status_code == 404, (path, answer.text)
        assert answer.json()["code"] == unknown.json()["code"] == "workspace_not_found"
    # A member without the admin role there may not manage it.
    assert session_client(worker, ops).get(f"/api/workspaces/{ops}/members").status_code == 403

    assert lead_client.delete(f"/api/workspaces/{ops}/members/{worker.id}").status_code == 204
    assert session_client(worker, ops).get("/api/workspaces").json()["current"]["slug"] == "default"
    with db_session() as session:
        actions = [a.action for a in session.exec(select(AuditLog).where(AuditLog.target_id == ops))]
    assert {"workspace.create", "workspace.member.set", "workspace.member.remove"} <= set(actions)


def test_an_api_key_acts_in_its_own_workspace_only_and_never_above_its_owners_role_there(make_user) -> None:
    user = make_user("editor")
    team = new_workspace("keys-team")
    add(team, user, "operator")
    with db_session() as session:
        row, key = api_keys.create(session, user, name="k", role="editor", rate_limit_per_min=600)
        session.get(ApiKey, row.id).workspace_id = uuid.UUID(team)
        session.commit()
    client = TestClient(api, headers={"Authorization": f"Bearer {key}"})
    me = client.get("/api/workspaces").json()
    assert me["current"]["id"] == team and [w["id"] for w in me["workspaces"]] == [team]
    # The header cannot move a key elsewhere.
    assert client.get("/api/me", headers={"X-Flowloom-Workspace": "default"}).json()["role"] == "operator"
    with db_session() as session:
        workspaces.remove_member(session, team, user.id, actor="test")
        session.commit()
    assert client.get("/api/me").status_code == 401  # its owner left the workspace: the key is dead


def test_a_workspace_admin_who_is_an_instance_editor_cannot_create_a_key_above_editor(make_user) -> None:
    user = make_user("editor")
    team = new_workspace("key-ceiling")
    add(team, user, "admin")
    client = session_client(user, team)
    assert client.get("/api/me").json()["role"] == "admin"  # a session acts as the workspace admin
    refused = client.post("/api/keys", json={"name": "too high", "role": "admin"})
    body = refused.json()
    assert (refused.status_code, body["code"], body.get("field")) == (422, "api_key_invalid", "role")
    assert "at most" in body["detail"] and "editor" in body["detail"]
    assert client.get("/api/keys").json() == []
    made = client.post("/api/keys", json={"name": "editor key", "role": "editor"})
    assert made.status_code == 201, made.text
    keyed = TestClient(api, headers={"Authorization": f"Bearer {made.json()['key']}"})
    assert keyed.get("/api/me").json()["role"] == "editor"  # what it was made with is what it does


def test_a_run_is_always_in_its_workflows_workspace(make_user) -> None:
    team = new_workspace("runs-team")
    with db_session() as session:
        wf = create_workflow(session, "In team", definition=None)
        wf.workspace_id = uuid.UUID(team)
        session.add(wf)
        session.flush()
        run = Run(workflow_id=wf.id, definition={}, status="queued")  # no workspace given
        session.add(run)
        session.commit()
        assert str(session.exec(select(Run.workspace_id).where(Run.id == run.id)).one()) == team

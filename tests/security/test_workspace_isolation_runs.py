"""Runs and approvals of a workspace do not exist for members of another one.

Two workspaces, A and B, each with a member; a run waiting at a human approval in A (real workers).
B's member walks every REST route of runs and approvals (with a session and with B's API key),
guessing A's ids: each answers exactly like an unknown id. Lists, counts, the dashboard, the run
pages' Reflex handlers, /v1 and MCP see nothing of A; the Inbox of a member of both shows both.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.api import mcp_server
from app.auth.guard import caller_of
from app.auth.policy import API_POLICY
from app.auth.principal import WORKSPACE_COOKIE
from app.db import db_session
from app.pages.dashboard_state import DashboardState
from app.pages.inbox_state import InboxState
from app.pages.run_detail_state import RunDetailState
from app.pages.runs_state import RunsState
from app.pages.settings_state import SettingsState
from engine import workflows, workspaces
from engine.runs import get_run, start_run
from engine.settings import get_settings
from models.auth import User
from models.db import get_engine
from tests.security.test_authorization import (
    cookie_of,
    key_client,
    pending_approval,
    reflex_tab,
    session_client,
    simple_definition,
    waiting_definition,
)

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")

# What B's member sends to each route of runs and approvals (the id in the path is A's or unknown).
BODIES: dict[tuple[str, str], dict[str, Any] | None] = {
    ("GET", "/api/runs/{run_id}"): None,
    ("GET", "/api/runs/{run_id}/events"): None,
    ("POST", "/api/runs/{run_id}/cancel"): None,
    ("POST", "/api/runs/{run_id}/rerun"): {"node_id": "START"},
    ("POST", "/api/runs/{run_id}/fork"): {"inputs": {}},
    ("POST", "/api/approvals/{approval_id}/decision"): {"action": "approved", "form": {}},
    ("POST", "/api/workflows/{workflow_id}/runs"): {"inputs": {}},
}


class World:
    """Workspace A with a waiting run, workspace B with one, and their members."""

    def __init__(self, make_user) -> None:
        with db_session() as session:
            self.a = str(workspaces.create_workspace(session, slug="alpha", name="Alpha", actor="test").id)
            self.b = str(workspaces.create_workspace(session, slug="beta", name="Beta", actor="test").id)
        self.member_a = self._member(make_user("operator"), [self.a])
        self.member_b = self._member(make_user("operator"), [self.b])
        self.member_both = self._member(make_user("operator"), [self.a, self.b])
        self.workflow_a = self._workflow(self.a, waiting_definition(), "waits in A")
        self.workflow_b = self._workflow(self.b, waiting_definition(), "waits in B")
        self.run_a = self._start(self.workflow_a)
        self.run_b = self._start(self.workflow_b)
        self.approval_a = pending_approval(self.run_a)
        self.approval_b = pending_approval(self.run_b)

    @staticmethod
    def _member(user: User, into: list[str]) -> User:
        with db_session() as session:
            for workspace_id in into:
                workspaces.set_member(session, workspace_id, user.id, None, actor="test")
            # Out of the default workspace, so their first (current) workspace is the one above.
            workspaces.remove_member(session, workspaces.DEFAULT_WORKSPACE_ID, user.id, actor="test")
        return user

    @staticmethod
    def _workflow(workspace_id: str, definition: dict[str, Any], name: str) -> str:
        with db_session() as session:
            return str(
                workflows.create_workflow(session, name, definition=definition, workspace_id=workspace_id).id
            )

    @staticmethod
    def _start(workflow_id: str) -> str:
        saved = workflows.saved_version(workflow_id)
        assert saved is not None
        return start_run(saved.definition, {}, workflow_id=saved.workflow_id, version_id=saved.version_id)


def key_in(user: User, workspace_id: str, role: str = "operator") -> TestClient:
    """An API key of `user` acting in `workspace_id`."""
    client = key_client(user, role)
    with get_engine(get_settings().database_url).begin() as conn:
        conn.execute(
            text("UPDATE api_keys SET workspace_id = :w WHERE id = :k"),
            {"w": workspace_id, "k": client.key_id},
        )
    return client


@pytest.fixture
def world(make_user) -> World:
    return World(make_user)


def _path(template: str, value: str) -> str:
    return re.sub(r"\{[a-z_]+\}", value, template)


def _shape(response, value: str) -> tuple[int, str, str, str]:
    """What tells one answer from another: status, content type, code and the detail with the id masked."""
    body = response.json()
    return (
        response.status_code,
        response.headers["content-type"],
        body.get("code"),
        body.get("detail", "").replace(value, "<id>"),
    )


def _walked_routes() -> list[tuple[str, str]]:
    """Every route of runs and approvals that names one by id (so a new one is walked too)."""
    return [
        (method, path)
        for method, path in API_POLICY
        if "{run_id}" in path or "{approval_id}" in path or path == "/api/workflows/{workflow_id}/runs"
    ]


def test_every_by_id_route_of_runs_and_approvals_answers_a_guessed_id_of_another_workspace_like_an_unknown_one(
    world: World,
) -> None:
    routes = _walked_routes()
    assert set(routes) <= set(BODIES), f"give the new route a body here: {set(routes) - set(BODIES)}"
    assert len(routes) == len(BODIES)
    guessed = {"{run_id}": world.run_a, "{approval_id}": world.approval_a, "{workflow_id}": world.workflow_a}
    for client in (session_client(world.member_b), key_in(world.member_b, world.b)):
        for method, template in routes:
            mark = next(m for m in guessed if m in template)
            theirs, unknown = guessed[mark], str(uuid.uuid4())
            body = BODIES[(method, template)]
            foreign = client.request(method, _path(template, theirs), json=body)
            missing = client.request(method, _path(template, unknown), json=body)
            assert foreign.status_code == 404, (method, template, foreign.status_code, foreign.text)
            assert _shape(foreign, theirs) == _shape(missing, unknown), (method, template)
    # POST /api/runs with A's workflow: as a workflow with no saved version.
    for client in (session_client(world.member_b), key_in(world.member_b, world.b)):
        foreign = client.post("/api/runs", json={"workflow_id": world.workflow_a})
        unknown = str(uuid.uuid4())
        missing = client.post("/api/runs", json={"workflow_id": unknown})
        assert foreign.status_code == 404 and _shape(foreign, world.workflow_a) == _shape(missing, unknown)
    # Nothing happened to A's run: still waiting, no re-run, fork or cancel, the approval pending.
    assert get_run(world.run_a).status == "running"
    with get_engine(get_settings().database_url).connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM runs WHERE source_run_id = :r"), {"r": world.run_a}
            ).scalar()
            == 0
        )
        assert (
            conn.execute(text("SELECT status FROM approvals WHERE id = :a"), {"a": world.approval_a}).scalar()
            == "pending"
        )


def test_run_lists_and_approval_lists_of_a_member_of_b_never_include_as_runs(world: World) -> None:
    for client in (session_client(world.member_b), key_in(world.member_b, world.b)):
        listed = [r["id"] for r in client.get("/api/runs", params={"limit": 200}).json()["runs"]]
        assert world.run_b in listed and world.run_a not in listed
        by_workflow = client.get("/api/runs", params={"workflow_id": world.workflow_a}).json()["runs"]
        assert by_workflow == []
        approvals = [a["id"] for a in client.get("/api/approvals").json()]
        assert approvals == [world.approval_b]


def test_the_inbox_and_the_api_of_a_member_of_both_workspaces_show_approvals_of_both_with_their_workspace(
    world: World,
) -> None:
    both = session_client(world.member_both)
    listed = {a["id"]: a["workspace_id"] for a in both.get("/api/approvals").json()}
    assert listed == {world.approval_a: world.a, world.approval_b: world.b}
    # An API key acts in its own workspace only, also for approvals.
    keyed = [a["id"] for a in key_in(world.member_both, world.b).get("/api/approvals").json()]
    assert keyed == [world.approval_b]
    tab = reflex_tab(InboxState, cookie_of(world.member_both), "/inbox", "/inbox")
    InboxState.load.fn(tab)
    assert {(r.id, r.workspace) for r in tab.rows} == {
        (world.approval_a, "Alpha"),
        (world.approval_b, "Beta"),
    }
    only_b = reflex_tab(InboxState, cookie_of(world.member_b), "/inbox", "/inbox")
    InboxState.load.fn(only_b)
    assert [r.id for r in only_b.rows] == [world.approval_b]
    InboxState.open.fn(only_b, world.approval_a)
    assert only_b.detail.id == ""  # A's approval does not open for B's member
    # The member of both decides A's approval from the Inbox: their role in A applies.
    InboxState.open.fn(tab, world.approval_a)
    assert tab.detail.id == world.approval_a
    InboxState.decide.fn(tab, "approved")
    with get_engine(get_settings().database_url).connect() as conn:
        assert (
            conn.execute(text("SELECT status FROM approvals WHERE id = :a"), {"a": world.approval_a}).scalar()
            == "approved"
        )


def test_the_run_pages_and_dashboard_of_a_member_of_b_show_a_run_of_a_as_not_found(world: World) -> None:
    cookie = cookie_of(world.member_b)
    detail = reflex_tab(RunDetailState, cookie, f"/runs/{world.run_a}", "/runs/[run_id]")
    RunDetailState.load.fn(detail)
    assert detail.not_found and detail.loaded
    RunDetailState.cancel.fn(detail)
    assert get_run(world.run_a).status == "running"
    own = reflex_tab(RunDetailState, cookie, f"/runs/{world.run_b}", "/runs/[run_id]")
    RunDetailState.load.fn(own)
    assert not own.not_found and own.run_id == world.run_b
    listing = reflex_tab(RunsState, cookie, "/runs", "/runs")
    RunsState.load.fn(listing)
    shown = [r.id for r in listing.rows]
    assert world.run_b in shown and world.run_a not in shown
    assert world.workflow_a not in [o.value for o in listing.workflow_options]
    dashboard = reflex_tab(DashboardState, cookie, "/dashboard", "/dashboard")
    DashboardState.load.fn(dashboard)
    assert dashboard.runs == 1 and dashboard.pending_approvals == 1  # B's run and approval only
    assert dashboard.workflows == 1


def test_v1_models_and_mcp_tools_of_bs_key_never_reach_as_workflows(world: World) -> None:
    chat = simple_definition("chatty")
    chat["inputs"] = {
        "type": "object",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
    }
    chat["triggers"] = [{"id": "chat", "kind": "chat", "config": {"title": "Chatty"}}]
    chat_a = World._workflow(world.a, chat, "chatty")
    key_a, key_b = key_in(world.member_a, world.a), key_in(world.member_b, world.b)
    assert "chatty" in [m["id"] for m in key_a.get("/v1/models").json()["data"]]
    assert "chatty" not in [m["id"] for m in key_b.get("/v1/models").json()["data"]]
    for model in ("chatty", chat_a):
        assert key_b.get(f"/v1/models/{model}").status_code == 404
        asked = key_b.post(
            "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
        )
        assert asked.status_code == 404 and asked.json()["error"]["code"] == "model_not_found"
    with get_engine(get_settings().database_url).connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM runs WHERE workflow_id = :w"), {"w": chat_a}).scalar()
            == 0
        )
    tools_b = {t.workflow_id for t in mcp_server.workflow_tools(world.b)}
    tools_a = {t.workflow_id for t in mcp_server.workflow_tools(world.a)}
    assert world.workflow_b in tools_b and not tools_b & {world.workflow_a, chat_a}
    assert {world.workflow_a, chat_a} <= tools_a


def test_a_workspace_admin_cannot_change_an_instance_role_nor_use_the_instance_wide_tools(make_user) -> None:
    with db_session() as session:
        team = str(workspaces.create_workspace(session, slug="team", name="Team", actor="test").id)
    boss, other = make_user("operator"), make_user("viewer")
    with db_session() as session:
        workspaces.set_member(session, team, boss.id, "admin", actor="test")
    client = session_client(boss)
    client.headers["X-Flowloom-Workspace"] = "team"
    assert client.get("/api/secrets").status_code == 200  # acts as the team's admin
    refused = client.patch(f"/api/users/{other.id}", json={"role": "admin"})
    assert refused.status_code == 403, refused.text
    for path in ("/api/dead-letters", "/api/circuits"):
        assert client.get(path).status_code == 403, path
    # Nor on the settings page (its handler, on a real state whose socket carries the workspace cookie).
    tab = reflex_tab(SettingsState, f"{cookie_of(boss)}; {WORKSPACE_COOKIE}=team", "/settings", "/settings")
    assert caller_of(tab).role == "admin"
    SettingsState.set_user_role.fn(tab, str(other.id), "admin")
    SettingsState.set_user_active.fn(tab, str(other.id), False)
    with db_session() as session:
        changed = session.get(User, other.id)
        assert changed.role == "viewer" and changed.is_active
    instance_admin = session_client(make_user("admin"))
    assert instance_admin.patch(f"/api/users/{other.id}", json={"role": "editor"}).status_code == 200
    assert instance_admin.get("/api/dead-letters").status_code == 200


def test_the_sse_stream_of_a_run_of_another_workspace_is_404_before_anything_is_streamed(
    world: World,
) -> None:
    for client in (session_client(world.member_b), key_in(world.member_b, world.b)):
        with client.stream("GET", f"/api/runs/{world.run_a}/events") as response:
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("application/problem+json")

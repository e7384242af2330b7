"""A workspace's settings over REST (review rule, limits, retention and the prune preview) for its
admins, through the doors the Settings page uses; and users (the whole instance's) for instance
admins only, on the API and on the Settings page.

Real PostgreSQL behind the API's auth gate; the page's handlers on real states (the socket's cookie).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import select

from app.auth.principal import WORKSPACE_COOKIE, session_cache
from app.db import db_session
from app.pages.editor.limit_state import EditorLimit
from app.pages.editor.state import EditorState
from app.pages.settings_limits_state import LimitsState
from app.pages.settings_review import ReviewSettingState
from app.pages.settings_state import SettingsState
from engine import publishing, workflows, workspace_limits, workspaces
from engine.runs import start_run
from engine.settings import get_settings
from models.auth import AuditLog, User
from models.db import get_engine
from models.tables import Run, Workflow
from models.workspace_column import DEFAULT_WORKSPACE_ID
from tests.integration.engine_helpers import node, wait_for_run, workflow
from tests.security.test_authorization import cookie_of, key_client, reflex_tab, session_client

LIMITS = {"max_concurrent_runs": 3, "runs_per_hour": 40, "retention_days": 30, "retention_keep_last": 5,
          "step_data_retention_days": 7}  # fmt: skip


class Team:
    """Workspace "team" with an admin (a workspace admin, not an instance admin) and an editor, and
    workspace "other" with an admin of its own."""

    def __init__(self, make_user) -> None:  # noqa: ANN001 - the fixture's factory
        with db_session() as session:
            self.id = str(workspaces.create_workspace(session, slug="team", name="Team", actor="test").id)
            self.other = str(
                workspaces.create_workspace(session, slug="other", name="Other", actor="test").id
            )
        self.admin, self.editor, self.outsider = make_user("viewer"), make_user("viewer"), make_user("viewer")
        for workspace_id, user, role in (
            (self.id, self.admin, "admin"), (self.id, self.editor, "editor"), (self.other, self.outsider, "admin"),
        ):  # fmt: skip
            with db_session() as session:
                workspaces.set_member(session, workspace_id, user.id, role, actor="test")
        session_cache.clear()

    def client(self, user: User, workspace: str = "team") -> TestClient:
        client = session_client(user)
        client.headers["X-Flowloom-Workspace"] = workspace
        return client

    @property
    def url(self) -> str:
        return f"/api/workspaces/{self.id}/settings"


@pytest.fixture
def team(make_user) -> Team:
    return Team(make_user)


def entries(action: str, workspace_id: str) -> list[AuditLog]:
    with db_session() as session:
        return list(
            session.exec(
                select(AuditLog)
                .where(AuditLog.action == action, AuditLog.target_id == workspace_id)
                .order_by(AuditLog.id)
            )
        )


def test_an_admin_reads_and_changes_each_setting_and_the_page_and_the_engine_see_it(team: Team) -> None:
    admin = team.client(team.admin)
    shown = admin.get(team.url)
    assert shown.status_code == 200, shown.text
    assert shown.json() == {"workspace_id": team.id, "require_review": False, **dict.fromkeys(LIMITS),
                            "effective_retention_days": None}  # fmt: skip

    changed = admin.patch(team.url, json={"require_review": True, **LIMITS})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"workspace_id": team.id, "require_review": True, **LIMITS,
                              "effective_retention_days": 30}  # fmt: skip
    assert admin.get(team.url).json() == changed.json()
    with get_engine(get_settings().database_url).connect() as conn:
        assert workspace_limits.get_limits(conn, team.id) == workspace_limits.WorkspaceLimits(**LIMITS)
        assert publishing.requires_review_in(conn, uuid.UUID(team.id))
        # The default workspace is untouched.
        assert workspace_limits.get_limits(conn, DEFAULT_WORKSPACE_ID) == workspace_limits.WorkspaceLimits()
    # The Settings page of the workspace shows the same values.
    cookie = f"{cookie_of(team.admin)}; {WORKSPACE_COOKIE}={team.id}"
    limits_tab = reflex_tab(LimitsState, cookie, "/settings", "/settings")
    LimitsState.load_limits.fn(limits_tab)
    assert {n: getattr(limits_tab, n) for n in LIMITS} == {n: str(v) for n, v in LIMITS.items()}
    review_tab = reflex_tab(ReviewSettingState, cookie, "/settings", "/settings")
    ReviewSettingState.load_review.fn(review_tab)
    assert review_tab.require_review is True

    # A PATCH changes only what it names; null clears a limit.
    partial = admin.patch(team.url, json={"runs_per_hour": None, "retention_keep_last": 9})
    assert partial.status_code == 200, partial.text
    assert partial.json() == {"workspace_id": team.id, "require_review": True,
                              **{**LIMITS, "runs_per_hour": None, "retention_keep_last": 9},
                              "effective_retention_days": 30}  # fmt: skip


def test_with_review_required_through_the_api_an_unreviewed_version_is_not_published(team: Team) -> None:
    editor = team.client(team.editor)
    created = editor.post("/api/workflows", json={"name": "Reviewed"})
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")], name="r").to_dict()
    assert editor.post(f"/api/workflows/{wid}/versions", json={"definition": defn}).status_code == 201
    with db_session() as session:  # without review, saving published it
        assert workflows.list_versions(session, uuid.UUID(wid))[0].status == "published"

    assert team.client(team.admin).patch(team.url, json={"require_review": True}).status_code == 200
    assert editor.post(f"/api/workflows/{wid}/versions", json={"definition": defn}).status_code == 201
    refused = editor.post(f"/api/workflows/{wid}/versions/2/publish")
    assert refused.status_code == 409 and refused.json()["code"] == "version_state", refused.text
    with db_session() as session:
        assert [(v.version, v.status) for v in workflows.list_versions(session, uuid.UUID(wid))] == [
            (2, "draft"), (1, "published"),
        ]  # fmt: skip

    assert team.client(team.admin).patch(team.url, json={"require_review": False}).status_code == 200
    assert editor.post(f"/api/workflows/{wid}/versions/2/publish").status_code == 200


def test_an_editor_gets_403_and_another_workspaces_admin_404_like_an_unknown_workspace(team: Team) -> None:
    paths = [("GET", team.url, None), ("PATCH", team.url, {"runs_per_hour": 1}),
             ("GET", f"/api/workspaces/{team.id}/retention/preview", None)]  # fmt: skip
    for method, path, body in paths:
        refused = team.client(team.editor).request(method, path, json=body)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden", (path, refused.text)
        outsider = team.client(team.outsider, "other")
        hidden = outsider.request(method, path, json=body)
        unknown = outsider.request(method, path.replace(team.id, str(uuid.uuid4())), json=body)
        assert hidden.status_code == unknown.status_code == 404, (path, hidden.text)
        assert hidden.json()["code"] == unknown.json()["code"] == "workspace_not_found"
    with get_engine(get_settings().database_url).connect() as conn:
        assert workspace_limits.get_limits(conn, team.id).runs_per_hour is None


def test_a_workspace_admins_key_at_editor_is_refused_in_its_own_workspace(make_user) -> None:
    """A key acts at its own role: an admin's editor key may not change its workspace's settings."""
    admin = make_user("admin")
    keyed = key_client(admin, "editor")
    url = f"/api/workspaces/{DEFAULT_WORKSPACE_ID}/settings"
    refused = keyed.patch(url, json={"require_review": True})
    assert refused.status_code == 403, refused.text
    assert keyed.get(f"/api/workspaces/{DEFAULT_WORKSPACE_ID}/members").status_code == 403  # nor its members
    assert key_client(admin, "admin").patch(url, json={"runs_per_hour": 5}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_concurrent_runs": 0}, "max_concurrent_runs"),
        ({"runs_per_hour": -3}, "runs_per_hour"),
        ({"retention_days": 1_000_001}, "retention_days"),
        ({"retention_keep_last": "5"}, "retention_keep_last"),
        ({"step_data_retention_days": 1.5}, "step_data_retention_days"),
        ({"retention_days": True}, "retention_days"),
        ({"require_review": "yes"}, "require_review"),
        ({"require_review": None}, "require_review"),
        ({"max_runs": 4}, "max_runs"),
    ],
)
def test_bad_values_answer_422_naming_the_field_and_change_nothing(
    team: Team, body: dict, field: str
) -> None:
    answer = team.client(team.admin).patch(team.url, json=body)
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["code"] == "request_invalid"
    assert [e["loc"] for e in problem["errors"]] == [["body", field]], problem
    assert field in problem["detail"]
    assert team.client(team.admin).get(team.url).json()["require_review"] is False
    assert entries("workspace.limits_changed", team.id) == []


def test_each_change_is_audited_with_before_and_after_as_the_api_caller(team: Team) -> None:
    admin = team.client(team.admin)
    assert admin.patch(team.url, json={"require_review": True, "runs_per_hour": 10}).status_code == 200
    assert admin.patch(team.url, json={"runs_per_hour": 20, "require_review": True}).status_code == 200
    assert admin.patch(team.url, json={}).status_code == 200  # nothing to change: nothing recorded

    (review,) = entries("workspace.review_required", team.id)
    assert (review.before, review.after) == ({"require_review": False}, {"require_review": True})
    first, second = entries("workspace.limits_changed", team.id)
    assert first.before == {**dict.fromkeys(LIMITS)} and first.after == {
        **dict.fromkeys(LIMITS),
        "runs_per_hour": 10,
    }
    assert second.before["runs_per_hour"] == 10 and second.after["runs_per_hour"] == 20
    for entry in (review, first, second):
        assert (entry.actor, entry.source, entry.ip) == (team.admin.email, "api", "testclient")
        assert entry.target_type == "workspace"


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_the_retention_preview_lists_what_the_next_prune_removes(team: Team) -> None:
    with db_session() as session:
        workflow_id = str(workflows.create_workflow(session, "pruned", workspace_id=team.id).id)
    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")])
    run_ids = [start_run(defn, {}, workflow_id=workflow_id) for _ in range(3)]
    assert all(wait_for_run(r).status == "succeeded" for r in run_ids)
    now = datetime.now(UTC)
    with get_engine(get_settings().database_url).begin() as conn:
        for run_id, age in zip(run_ids, (40, 20, 1), strict=True):
            at = now - timedelta(days=age)
            conn.execute(update(Run).where(Run.id == uuid.UUID(run_id)).values(created_at=at, finished_at=at))
    admin = team.client(team.admin)
    preview_url = f"/api/workspaces/{team.id}/retention/preview"
    nothing = admin.get(preview_url).json()
    assert (nothing["runs"], nothing["examples"], nothing["retention_days"]) == (0, [], None)

    assert admin.patch(team.url, json={"retention_days": 30, "retention_keep_last": 2}).status_code == 200
    shown = admin.get(preview_url)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["runs"], body["runs_by_age"], body["runs_by_count"]) == (1, 1, 1)  # the 40-day-old one
    assert [(e["id"], e["workflow"], e["by_age"], e["by_count"]) for e in body["examples"]] == [
        (run_ids[0], "pruned", True, True)
    ]
    assert (body["retention_days"], body["retention_keep_last"]) == (30, 2)


def test_only_instance_admins_list_users_on_the_api_and_see_them_on_the_settings_page(
    team: Team, make_user
) -> None:
    lead = team.client(team.admin)
    assert lead.get("/api/me").json()["role"] == "admin"  # the team's admin, acting there
    refused = lead.get("/api/users")
    assert refused.status_code == 403, refused.text
    members = lead.get(f"/api/workspaces/{team.id}/members")
    assert members.status_code == 200
    assert {m["email"] for m in members.json()} >= {team.admin.email, team.editor.email}
    assert team.outsider.email not in {m["email"] for m in members.json()}

    tab = reflex_tab(
        SettingsState, f"{cookie_of(team.admin)}; {WORKSPACE_COOKIE}={team.id}", "/settings", "/settings"
    )
    SettingsState.load.fn(tab)
    assert tab.instance_admin is False and tab.users == []
    SettingsState.set_user_role.fn(tab, str(team.editor.id), "admin")
    with db_session() as session:
        assert session.get(User, team.editor.id).role == "viewer"

    boss = make_user("admin")
    listed = session_client(boss).get("/api/users")
    assert listed.status_code == 200
    assert {team.admin.email, team.editor.email, team.outsider.email} <= {u["email"] for u in listed.json()}
    assert key_client(boss, "editor").get("/api/users").status_code == 403  # a lower key stays lower
    boss_tab = reflex_tab(SettingsState, cookie_of(boss), "/settings", "/settings")
    SettingsState.load.fn(boss_tab)
    assert boss_tab.instance_admin is True
    assert team.outsider.email in {u.email for u in boss_tab.users}


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_an_editor_sets_a_workflows_own_limit_through_the_api_and_runs_beyond_it_wait(team: Team) -> None:
    with db_session() as session:
        workflow_id = str(workflows.create_workflow(session, "one at a time", workspace_id=team.id).id)
    url = f"/api/workflows/{workflow_id}"
    editor = team.client(team.editor)
    assert editor.get(url).json()["max_concurrent_runs"] is None
    bad = editor.patch(url, json={"max_concurrent_runs": 0})
    assert bad.status_code == 422 and "max_concurrent_runs" in bad.text
    assert team.client(team.outsider, "other").patch(url, json={"max_concurrent_runs": 5}).status_code == 404
    changed = editor.patch(url, json={"max_concurrent_runs": 1})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["max_concurrent_runs"], changed.json()["name"]) == (1, "one at a time")

    slow = workflow([node("start", "start"), node("nap", "tool.python", tool="sleep", args={"seconds": 1.0}),
                     node("end", "end")], [("start", "nap"), ("nap", "end")])  # fmt: skip
    first = start_run(slow, {}, workflow_id=workflow_id)
    second = start_run(slow, {}, workflow_id=workflow_id)
    with db_session() as session:
        assert session.get(Run, uuid.UUID(second)).status == "queued"  # one at a time: it waits
    assert wait_for_run(first).status == "succeeded" and wait_for_run(second).status == "succeeded"

    cleared = editor.patch(url, json={"max_concurrent_runs": None})
    assert cleared.status_code == 200 and cleared.json()["max_concurrent_runs"] is None
    changes = [(e.before, e.after) for e in entries("workflow.limit_changed", workflow_id)]
    assert changes == [({"max_concurrent_runs": None}, {"max_concurrent_runs": 1}),
                       ({"max_concurrent_runs": 1}, {"max_concurrent_runs": None})]  # fmt: skip


def test_an_editor_sets_a_workflows_own_limit_in_the_editors_workflow_tab_as_the_api_does(team: Team) -> None:
    with db_session() as session:
        workflow_id = str(
            workflows.create_workflow(session, "limited in the editor", workspace_id=team.id).id
        )

    def limit_tab(user: User, workspace: str) -> EditorLimit:
        cookie = f"{cookie_of(user)}; {WORKSPACE_COOKIE}={workspace}"
        tab = reflex_tab(EditorState, cookie, f"/workflows/{workflow_id}", "/workflows/[workflow_id]")
        asyncio.run(EditorState.load.fn(tab))
        return asyncio.run(tab.get_state(EditorLimit))

    def stored() -> int | None:
        with db_session() as session:
            return session.get(Workflow, uuid.UUID(workflow_id)).max_concurrent_runs

    tab = limit_tab(team.editor, team.id)
    assert tab.run_limit_text == ""
    for bad in ("0", "many"):
        EditorLimit.set_run_limit_text.fn(tab, bad)
        EditorLimit.save_run_limit.fn(tab)
        assert "max_concurrent_runs" in tab.run_limit_error and stored() is None
    EditorLimit.set_run_limit_text.fn(tab, "2")
    EditorLimit.save_run_limit.fn(tab)
    assert (tab.run_limit_error, tab.run_limit_saved, stored()) == ("", "Saved.", 2)
    assert team.client(team.editor).get(f"/api/workflows/{workflow_id}").json()["max_concurrent_runs"] == 2
    assert limit_tab(team.editor, team.id).run_limit_text == "2"  # reopened: the stored value
    # Another workspace's admin with the workflow's URL: nothing shown, nothing changed.
    outsider = limit_tab(team.outsider, team.other)
    assert outsider.run_limit_text == ""
    EditorLimit.set_run_limit_text.fn(outsider, "9")
    EditorLimit.save_run_limit.fn(outsider)
    assert outsider.run_limit_error and stored() == 2
    EditorLimit.set_run_limit_text.fn(tab, "")
    EditorLimit.save_run_limit.fn(tab)
    assert stored() is None
    changes = [(e.actor, e.source, e.before, e.after) for e in entries("workflow.limit_changed", workflow_id)]
    assert changes == [
        (team.editor.email, "ui", {"max_concurrent_runs": None}, {"max_concurrent_runs": 2}),
        (team.editor.email, "ui", {"max_concurrent_runs": 2}, {"max_concurrent_runs": None}),
    ]

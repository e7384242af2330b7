"""Sharing one workflow with a user or a workspace: a share grants exactly what it says, revoking removes it.

Real PostgreSQL, the REST API through its auth gate (sessions and API keys), the audit log. Workspace
Alpha owns the workflow; Beta and Gamma are other teams. A read share answers reads and refuses
every change with 403 (the workflow is visible to them, so not 404); someone it is not shared
with gets 404, as for an unknown id.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

import app.app  # noqa: F401 - registers the pages and their states, as the running app does
from app.api.main import api
from app.auth import api_keys, sessions
from app.auth.principal import WORKSPACE_COOKIE, session_cache
from app.db import db_session
from app.pages.editor.review_state import EditorReview
from app.pages.editor.run_state import EditorRun
from app.pages.editor.state import EditorState
from app.pages.editor.tools_state import EditorTools
from app.pages.workflows_state import WorkflowsState
from engine import publishing, workspaces
from engine.workflows import create_workflow
from models.auth import AuditLog, User, WorkflowShare
from models.tables import Run
from models.workspace_column import DEFAULT_WORKSPACE_ID
from tests.integration.engine_helpers import node, workflow
from tests.security.test_authorization import cookie_of, reflex_tab

pytestmark = pytest.mark.usefixtures("auth_env")


def definition(name: str = "shared") -> dict:
    return workflow([node("START", "start"), node("DONE", "end")], [("START", "DONE")], name=name).to_dict()


class Teams:
    """Alpha owns a workflow (two versions); Beta and Gamma are other workspaces; each has members.
    Everyone is also a viewer of Company (sorted last, so no one acts there by default): a sharer
    finds by e-mail only people of a workspace they belong to too."""

    def __init__(self, make_user) -> None:
        with db_session() as session:
            self.alpha = str(workspaces.create_workspace(session, slug="alpha", name="Alpha", actor="t").id)
            self.beta = str(workspaces.create_workspace(session, slug="beta", name="Beta", actor="t").id)
            self.gamma = str(workspaces.create_workspace(session, slug="gamma", name="Gamma", actor="t").id)
            self.company = str(
                workspaces.create_workspace(session, slug="company", name="Whole company", actor="t").id
            )
        self.owner = self._member(make_user("editor"), {self.alpha: "editor"})
        self.alpha_viewer = self._member(make_user("viewer"), {self.alpha: "viewer"})
        self.bob = self._member(make_user("editor"), {self.beta: "editor"})
        self.beth = self._member(make_user("editor"), {self.beta: "editor"})
        self.gus = self._member(make_user("editor"), {self.gamma: "editor"})
        self.both = self._member(make_user("editor"), {self.beta: "editor", self.gamma: "editor"})
        with db_session() as session:
            wf = create_workflow(session, "Shared flow", definition=definition(), workspace_id=self.alpha)
            self.workflow = str(wf.id)
        owner = self.client(self.owner)
        assert (
            owner.post(
                f"/api/workflows/{self.workflow}/versions", json={"definition": definition()}
            ).status_code
            == 201
        )

    def _member(self, user: User, roles: dict[str, str]) -> User:
        with db_session() as session:
            for workspace_id, role in {**roles, self.company: "viewer"}.items():
                workspaces.set_member(session, workspace_id, user.id, role, actor="t")
            workspaces.remove_member(session, DEFAULT_WORKSPACE_ID, user.id, actor="t")
        session_cache.clear()
        return user

    @staticmethod
    def client(user: User, workspace: str = "") -> TestClient:
        token, _ = sessions.issue(str(user.id))
        client = TestClient(api)
        client.cookies.set(sessions.COOKIE_NAME, token)
        if workspace:
            client.cookies.set(WORKSPACE_COOKIE, workspace)
        return client

    @staticmethod
    def key(user: User, workspace_id: str, role: str = "editor") -> TestClient:
        with db_session() as session:
            _, key = api_keys.create(session, user, name="share test", role=role, workspace_id=workspace_id)
        return TestClient(api, headers={"Authorization": f"Bearer {key}"})

    def share(self, **body) -> dict:
        answer = self.client(self.owner).post(f"/api/workflows/{self.workflow}/shares", json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()

    @property
    def url(self) -> str:
        return f"/api/workflows/{self.workflow}"


@pytest.fixture
def teams(make_user) -> Teams:
    return Teams(make_user)


def reads(client: TestClient, url: str) -> list[int]:
    """The statuses of every read a share allows: the workflow, its versions, one version, a diff."""
    return [
        client.get(url).status_code,
        client.get(f"{url}/versions").status_code,
        client.get(f"{url}/versions/1").status_code,
        client.get(f"{url}/versions/diff", params={"from": 1, "to": 2}).status_code,
    ]


def changes(client: TestClient, url: str) -> dict[str, int]:
    """The statuses of each change, each tried once."""
    return {
        "save": client.post(f"{url}/versions", json={"definition": definition()}).status_code,
        "rename": client.patch(url, json={"name": "Renamed by a recipient"}).status_code,
        "delete": client.delete(url).status_code,
        "list shares": client.get(f"{url}/shares").status_code,
        "share": client.post(f"{url}/shares", json={"workspace": "gamma", "permission": "edit"}).status_code,
        "run": client.post(f"{url}/runs", json={"inputs": {}}).status_code,
    }


def test_a_read_share_lets_its_user_read_and_refuses_every_change(teams: Teams) -> None:
    bob = teams.client(teams.bob)
    assert reads(bob, teams.url) == [404, 404, 404, 404]  # not shared yet: like an unknown id
    share = teams.share(email=teams.bob.email.upper(), permission="read")
    assert (share["kind"], share["target"], share["permission"]) == ("user", teams.bob.email, "read")

    assert reads(bob, teams.url) == [200, 200, 200, 200]
    body = bob.get(teams.url).json()
    assert (body["shared_with_you"], body["share_permission"]) == (True, "read")
    listed = {w["id"]: w for w in bob.get("/api/workflows").json()}
    assert listed[teams.workflow]["shared_with_you"] and listed[teams.workflow]["share_permission"] == "read"
    assert bob.get(f"{teams.url}/versions/2").json()["definition"]["nodes"]

    # Visible, so refused with 403 (not 404); running stays with the owning workspace (404 there).
    assert changes(bob, teams.url) == {
        "save": 403, "rename": 403, "delete": 403, "list shares": 403, "share": 403, "run": 404,
    }  # fmt: skip
    owner = teams.client(teams.owner)
    after = owner.get(teams.url).json()
    assert (after["name"], after["latest_version"], after["shared_with_you"]) == ("Shared flow", 2, False)
    # Only Bob: his workspace's other member and other workspaces see nothing.
    for other in (teams.beth, teams.gus):
        assert reads(teams.client(other), teams.url) == [404, 404, 404, 404]
        assert teams.workflow not in {w["id"] for w in teams.client(other).get("/api/workflows").json()}


def test_an_edit_share_saves_versions_and_renames_but_never_deletes_runs_or_shares(teams: Teams) -> None:
    teams.share(email=teams.bob.email, permission="edit")
    bob = teams.client(teams.bob)
    saved = bob.post(f"{teams.url}/versions", json={"definition": definition(), "note": "from Beta"})
    assert saved.status_code == 201, saved.text
    assert saved.json()["version"] == 3
    assert bob.patch(teams.url, json={"description": "improved by Bob"}).status_code == 200
    assert changes(bob, teams.url) == {
        "save": 201, "rename": 200, "delete": 403, "list shares": 403, "share": 403, "run": 404,
    }  # fmt: skip
    owner = teams.client(teams.owner).get(teams.url).json()
    assert owner["latest_version"] == 4 and owner["description"] == "improved by Bob"
    assert owner["name"] == "Renamed by a recipient"  # changes() renamed it through the edit share
    # An edit share does not lift the caller's role: Bob's read-only key reads, never saves.
    viewer_key = teams.key(teams.bob, teams.beta, role="viewer")
    assert viewer_key.get(teams.url).status_code == 200
    assert viewer_key.post(f"{teams.url}/versions", json={"definition": definition()}).status_code == 403
    assert teams.client(teams.owner).get(teams.url).json()["latest_version"] == 4


def test_a_workspace_share_reaches_every_member_acting_there_and_no_one_else(teams: Teams) -> None:
    share = teams.share(workspace="beta", permission="read")
    assert (share["kind"], share["target"], share["target_name"]) == ("workspace", "beta", "Beta")
    for member in (teams.bob, teams.beth):
        assert reads(teams.client(member), teams.url) == [200, 200, 200, 200]
    assert teams.key(teams.beth, teams.beta).get(teams.url).status_code == 200
    assert reads(teams.client(teams.gus), teams.url) == [404, 404, 404, 404]
    # A member of Beta and Gamma reaches it while acting in Beta only.
    assert teams.client(teams.both, "beta").get(teams.url).status_code == 200
    assert teams.client(teams.both, "gamma").get(teams.url).status_code == 404
    assert teams.key(teams.both, teams.gamma).get(teams.url).status_code == 404
    in_gamma = teams.client(teams.both, "gamma").get("/api/workflows").json()
    assert teams.workflow not in {w["id"] for w in in_gamma}


def test_revoking_removes_the_share_at_once_for_sessions_and_api_keys(teams: Teams) -> None:
    user_share = teams.share(email=teams.bob.email, permission="edit")
    teams.share(workspace="gamma", permission="read")
    bob, bob_key, gus = teams.client(teams.bob), teams.key(teams.bob, teams.beta), teams.client(teams.gus)
    assert [bob.get(teams.url).status_code, bob_key.get(teams.url).status_code] == [200, 200]
    assert gus.get(teams.url).status_code == 200

    owner = teams.client(teams.owner)
    assert owner.delete(f"{teams.url}/shares/{user_share['id']}").status_code == 204
    assert [bob.get(teams.url).status_code, bob_key.get(teams.url).status_code] == [404, 404]
    assert bob_key.post(f"{teams.url}/versions", json={"definition": definition()}).status_code == 404
    assert teams.workflow not in {w["id"] for w in bob.get("/api/workflows").json()}
    assert gus.get(teams.url).status_code == 200  # the other share stays
    assert [s["target"] for s in owner.get(f"{teams.url}/shares").json()] == ["gamma"]
    # Revoking it again, or a share id of nothing: 404.
    again = owner.delete(f"{teams.url}/shares/{user_share['id']}")
    assert (again.status_code, again.json()["code"]) == (404, "share_not_found")


def test_granting_again_changes_the_permission_and_share_and_unshare_are_audited(teams: Teams) -> None:
    first = teams.share(email=teams.bob.email, permission="read")
    second = teams.share(email=teams.bob.email, permission="edit")
    assert second["id"] == first["id"]
    assert teams.client(teams.bob).patch(teams.url, json={"name": "now editable"}).status_code == 200
    teams.client(teams.owner).delete(f"{teams.url}/shares/{first['id']}")
    with db_session() as session:
        entries = session.exec(
            select(AuditLog)
            .where(
                AuditLog.target_id == teams.workflow,
                AuditLog.action.in_(["workflow.share", "workflow.unshare"]),
            )
            .order_by(AuditLog.id)
        ).all()
        assert (
            session.exec(
                select(WorkflowShare).where(WorkflowShare.workflow_id == uuid.UUID(teams.workflow))
            ).all()
            == []
        )
    assert [(e.action, e.actor, e.source) for e in entries] == [
        ("workflow.share", teams.owner.email, "api"),
        ("workflow.share", teams.owner.email, "api"),
        ("workflow.unshare", teams.owner.email, "api"),
    ]
    assert entries[0].details == {"share_id": first["id"], "user": teams.bob.email, "permission": "read"}
    assert (entries[1].before, entries[1].after) == ({"permission": "read"}, {"permission": "edit"})
    assert entries[2].before == {"permission": "edit"}


def test_only_the_owning_workspaces_editors_grant_and_bad_shares_are_refused(teams: Teams) -> None:
    viewer = teams.client(teams.alpha_viewer)
    assert viewer.get(f"{teams.url}/shares").status_code == 200
    refused = viewer.post(f"{teams.url}/shares", json={"workspace": "beta", "permission": "read"})
    assert refused.status_code == 403
    # A stranger guessing the id: 404, as for an unknown one.
    stranger = teams.client(teams.gus).post(
        f"{teams.url}/shares", json={"workspace": "beta", "permission": "read"}
    )
    assert (stranger.status_code, stranger.json()["code"]) == (404, "workflow_not_found")
    owner = teams.client(teams.owner)
    for body, field in (
        ({"email": "nobody@example.test", "permission": "read"}, "email"),
        ({"workspace": "no-such-team", "permission": "read"}, "workspace"),
        ({"workspace": "alpha", "permission": "read"}, "workspace"),
    ):
        answer = owner.post(f"{teams.url}/shares", json=body)
        assert (answer.status_code, answer.json()["code"], answer.json().get("field")) == (
            422,
            "share_invalid",
            field,
        )
    for body in ({"permission": "read"}, {"email": teams.bob.email, "workspace": "beta", "permission": "read"},
                 {"workspace": "beta", "permission": "run"}):  # fmt: skip
        assert owner.post(f"{teams.url}/shares", json=body).status_code == 422
    assert owner.get(f"{teams.url}/shares").json() == []


def test_an_email_without_an_account_and_one_of_a_stranger_are_refused_alike(teams: Teams, make_user) -> None:
    # Dora is only in Delta: no workspace in common with Alpha's editor, who may not find her.
    with db_session() as session:
        delta = workspaces.create_workspace(session, slug="delta", name="Delta", actor="t").id
        dora = make_user("editor")
        workspaces.set_member(session, delta, dora.id, "editor", actor="t")
        workspaces.remove_member(session, DEFAULT_WORKSPACE_ID, dora.id, actor="t")
    session_cache.clear()
    owner = teams.client(teams.owner)

    def refusal(email: str) -> tuple[int, str, str | None, str]:
        answer = owner.post(f"{teams.url}/shares", json={"email": email, "permission": "read"})
        body = answer.json()
        return answer.status_code, body["code"], body.get("field"), body["detail"].replace(email, "<e-mail>")

    stranger, nobody = refusal(dora.email), refusal(f"nobody-{uuid.uuid4().hex[:6]}@example.test")
    assert stranger == nobody
    assert stranger[:3] == (422, "share_invalid", "email")
    assert owner.get(f"{teams.url}/shares").json() == []
    # The Share dialog answers alike too.
    tab = workflows_tab(teams.owner)
    WorkflowsState.open_share.fn(tab, teams.workflow, "Shared flow")
    WorkflowsState.set_share_target.fn(tab, dora.email)
    WorkflowsState.grant_share.fn(tab)
    assert tab.share_rows == []
    # Someone of a workspace in common is found (Bob, through Company); an instance admin finds anyone.
    assert teams.share(email=teams.bob.email, permission="read")["target"] == teams.bob.email
    admin = teams.client(make_user("admin"), teams.alpha)
    granted = admin.post(f"{teams.url}/shares", json={"email": dora.email, "permission": "read"})
    assert granted.status_code == 201, granted.text
    assert teams.client(dora).get(teams.url).status_code == 200


def test_deleting_the_workflow_removes_its_shares(teams: Teams) -> None:
    teams.share(workspace="beta", permission="read")
    teams.share(email=teams.gus.email, permission="edit")
    assert teams.client(teams.owner).delete(teams.url).status_code == 204
    with db_session() as session:
        assert (
            session.exec(
                select(WorkflowShare).where(WorkflowShare.workflow_id == uuid.UUID(teams.workflow))
            ).all()
            == []
        )


def workflows_tab(user: User) -> WorkflowsState:
    tab = reflex_tab(WorkflowsState, cookie_of(user), "/workflows", "/workflows")
    WorkflowsState.load.fn(tab)
    return tab


def editor_tab(user: User, workflow_id: str) -> EditorState:
    tab = reflex_tab(EditorState, cookie_of(user), f"/workflows/{workflow_id}", "/workflows/[workflow_id]")
    asyncio.run(EditorState.load.fn(tab))
    return tab


def test_the_share_dialog_grants_and_revokes_and_the_recipients_list_marks_the_workflow(teams: Teams) -> None:
    owner = workflows_tab(teams.owner)
    WorkflowsState.open_share.fn(owner, teams.workflow, "Shared flow")
    assert owner.share_open and owner.share_rows == []
    WorkflowsState.set_share_kind.fn(owner, "workspace")
    WorkflowsState.set_share_target.fn(owner, "beta")
    WorkflowsState.set_share_permission.fn(owner, "edit")
    WorkflowsState.grant_share.fn(owner)
    assert [(r.kind, r.target, r.permission) for r in owner.share_rows] == [("workspace", "beta", "edit")]
    assert [r.permission for r in owner.rows if r.id == teams.workflow] == [""]  # the owner's own

    bob = workflows_tab(teams.bob)
    row = next(r for r in bob.rows if r.id == teams.workflow)
    assert (row.permission, row.owner) == ("edit", "Alpha")
    WorkflowsState.open_rename.fn(bob, teams.workflow, row.name)
    WorkflowsState.set_rename_name.fn(bob, "Renamed in Beta")
    WorkflowsState.rename.fn(bob)  # an edit share may rename
    # ... but never share it on, nor delete it.
    WorkflowsState.open_share.fn(bob, teams.workflow, row.name)
    assert not bob.share_open
    WorkflowsState.open_delete.fn(bob, teams.workflow, row.name)
    WorkflowsState.delete.fn(bob)
    assert teams.client(teams.owner).get(teams.url).json()["name"] == "Renamed in Beta"
    assert teams.workflow not in {r.id for r in workflows_tab(teams.gus).rows}

    WorkflowsState.revoke_share.fn(owner, owner.share_rows[0].id)
    assert owner.share_rows == []
    assert teams.workflow not in {r.id for r in workflows_tab(teams.bob).rows}


def test_the_editor_opens_a_read_share_read_only_saves_with_an_edit_share_and_never_runs_either(
    teams: Teams,
) -> None:
    share = teams.share(email=teams.bob.email, permission="read")
    tab = editor_tab(teams.bob, teams.workflow)
    assert tab.loaded and (tab.share_permission, tab.can_edit, tab.version) == ("read", False, 2)
    assert not tab.can_publish  # the version history hides Submit for review and Publish
    tools = asyncio.run(tab.get_state(EditorTools))
    EditorTools.set_versions_open.fn(tools, True)
    assert [v.version for v in tools.versions] == [2, 1]
    tab.dirty = True
    EditorState.save.fn(tab)  # refused: a read share saves nothing
    assert teams.client(teams.owner).get(teams.url).json()["latest_version"] == 2

    teams.share(email=teams.bob.email, permission="edit")
    tab = editor_tab(teams.bob, teams.workflow)
    assert (tab.share_permission, tab.can_edit, tab.can_publish) == ("edit", True, False)
    owners = editor_tab(teams.owner, teams.workflow)
    assert (owners.share_permission, owners.can_publish) == ("", True)
    # Publishing v1 (superseded) from the recipient's tab is refused before reaching the server.
    review = asyncio.run(tab.get_state(EditorReview))
    EditorReview.publish_version.fn(review, 1)
    assert not review._last_ok
    with db_session() as session:
        assert publishing.review_state(session, uuid.UUID(teams.workflow), 1).published_version == 2
    tab.dirty = True
    EditorState.save.fn(tab)
    assert tab.version == 3 and teams.client(teams.owner).get(teams.url).json()["latest_version"] == 3
    EditorRun.run_workflow.fn(asyncio.run(tab.get_state(EditorRun)))
    with db_session() as session:
        assert session.exec(select(Run).where(Run.workflow_id == uuid.UUID(teams.workflow))).all() == []

    teams.client(teams.owner).delete(f"{teams.url}/shares/{share['id']}")
    gone = editor_tab(teams.bob, teams.workflow)
    assert not gone.loaded and "does not exist" in gone.load_error

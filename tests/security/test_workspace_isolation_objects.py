"""Workflows, versions, triggers, secrets, API keys and saved agents of a workspace do not exist for
members of another one.

Workspace A holds a workflow with two versions (the second published) and a trigger of each kind, a
secret, an API key and a saved agent. An editor of B and an admin of B walk every REST route that
names one of those by id (with a session and with an API key of B), guessing A's ids: each answers
exactly like an unknown id, and nothing of A changes. Lists show nothing of A; the editor, workflows,
secrets, agents, settings, chat, form and runs pages' handlers show nothing of A and change nothing.
A route with an id in its path that no table here (nor the runs test's) walks fails the meta-test.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app import secret_admin
from app.api.main import api
from app.auth import api_keys
from app.auth.policy import API_POLICY, allows
from app.db import db_session
from app.pages.agents_state import AgentsState
from app.pages.chat_state import ChatState
from app.pages.editor.diff_state import EditorDiff
from app.pages.editor.review_state import EditorReview
from app.pages.editor.run_state import EditorRun
from app.pages.editor.state import EditorState
from app.pages.editor.tools_state import EditorTools
from app.pages.editor.triggers_state import EditorTriggers
from app.pages.forms_state import FormState
from app.pages.runs_state import RunsState
from app.pages.secrets_state import SecretsState
from app.pages.settings_state import SettingsState
from app.pages.workflows_state import WorkflowsState
from engine import agents, triggers, workflows, workspaces
from engine.agent_lifecycle import new_agent_id
from engine.settings import get_settings
from models.auth import User
from models.db import get_engine
from tests.integration.engine_helpers import node, workflow
from tests.security.test_authorization import cookie_of, reflex_tab, session_client, simple_definition
from tests.security.test_workspace_isolation_runs import BODIES as RUN_BODIES
from tests.security.test_workspace_isolation_runs import World, _shape, key_in

pytestmark = pytest.mark.usefixtures("engine_env")


@dataclass(frozen=True)
class Walk:
    """How B's member calls one route: the path parameter that names A's object (the guess), the
    body and query, and whose id a `{user_id}` in the path names (an attribute of `Objects`)."""

    guess: str
    body: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    user: str = ""


# Every route that names a workflow, version, trigger, secret, key, agent or workspace by id (those
# of runs and approvals are the runs test's BODIES). Deleting ones last: a leak there would hide others.
WALKS: dict[tuple[str, str], Walk] = {
    ("GET", "/api/workflows/{workflow_id}"): Walk("workflow_id"),
    ("PATCH", "/api/workflows/{workflow_id}"): Walk("workflow_id", {"name": "taken by B"}),
    ("POST", "/api/workflows/{workflow_id}/versions"): Walk(
        "workflow_id", {"definition": simple_definition("taken by B"), "note": "B"}
    ),
    ("GET", "/api/workflows/{workflow_id}/versions"): Walk("workflow_id"),
    ("GET", "/api/workflows/{workflow_id}/versions/{version}"): Walk("workflow_id"),
    ("GET", "/api/workflows/{workflow_id}/versions/diff"): Walk("workflow_id", params={"from": 1, "to": 2}),
    ("POST", "/api/workflows/{workflow_id}/versions/{version}/submit"): Walk("workflow_id"),
    ("POST", "/api/workflows/{workflow_id}/versions/{version}/approve"): Walk("workflow_id", {"note": "B"}),
    ("POST", "/api/workflows/{workflow_id}/versions/{version}/reject"): Walk("workflow_id", {"note": "B"}),
    ("POST", "/api/workflows/{workflow_id}/versions/{version}/publish"): Walk("workflow_id"),
    ("GET", "/api/workflows/{workflow_id}/triggers"): Walk("workflow_id"),
    ("GET", "/api/triggers/{trigger_id}"): Walk("trigger_id"),
    ("POST", "/api/triggers/{trigger_id}/pause"): Walk("trigger_id"),
    ("POST", "/api/triggers/{trigger_id}/resume"): Walk("trigger_id"),
    ("POST", "/api/triggers/{trigger_id}/token"): Walk("trigger_id"),
    ("GET", "/api/agents/{agent_id}"): Walk("agent_id"),
    ("PATCH", "/api/agents/{agent_id}"): Walk("agent_id", {"name": "taken by B"}),
    ("POST", "/api/agents/{agent_id}/validate"): Walk("agent_id"),
    ("POST", "/api/agents/{agent_id}/terminate"): Walk("agent_id", {"reason": "B"}),
    ("PUT", "/api/secrets/{name}"): Walk("name", {"value": "stolen", "description": "taken by B"}),
    ("PATCH", "/api/workspaces/{workspace_id}"): Walk("workspace_id", {"name": "Taken by B"}),
    ("GET", "/api/workspaces/{workspace_id}/members"): Walk("workspace_id"),
    ("PUT", "/api/workspaces/{workspace_id}/members/{user_id}"): Walk(
        "workspace_id", {"role": "admin"}, user="admin_b"
    ),
    ("DELETE", "/api/workspaces/{workspace_id}/members/{user_id}"): Walk("workspace_id", user="member_a"),
    ("GET", "/api/workspaces/{workspace_id}/settings"): Walk("workspace_id"),
    ("PATCH", "/api/workspaces/{workspace_id}/settings"): Walk(
        "workspace_id", {"require_review": True, "runs_per_hour": 1, "retention_days": 1}
    ),
    ("GET", "/api/workspaces/{workspace_id}/retention/preview"): Walk("workspace_id"),
    ("DELETE", "/api/secrets/{name}"): Walk("name"),
    ("DELETE", "/api/keys/{key_id}"): Walk("key_id"),
    ("DELETE", "/api/workflows/{workflow_id}"): Walk("workflow_id"),
}

# Routes with an id in the path that name no object of a workspace, or are walked elsewhere.
EXEMPT: dict[tuple[str, str], str] = {
    ("GET", "/api/node-types/{node_type}"): "node types are the instance's code, the same in every workspace",
    ("GET", "/auth/login/{provider}"): "sign-in providers are the instance's",
    ("GET", "/auth/callback/{provider}"): "sign-in providers are the instance's",
    ("PATCH", "/api/users/{user_id}"): "users and instance roles are instance-wide (instance admins only: "
    "test_workspace_isolation_runs.py::test_a_workspace_admin_cannot_change_an_instance_role...)",
    ("GET", "/api/dead-letters/{dead_letter_id}"): "instance-wide tool for instance admins only",
    ("POST", "/api/dead-letters/{dead_letter_id}/replay"): "instance-wide tool for instance admins only",
    ("POST", "/api/hooks/{trigger_id}"): "public: a delivery is authenticated by the trigger's own "
    "signature, not by membership, so a member of B can do no more than anyone",
    ("GET", "/v1/models/{model}"): "walked by test_workspace_isolation_runs.py::"
    "test_v1_models_and_mcp_tools_of_bs_key_never_reach_as_workflows (API keys only)",
}
# Routes another piece of work is scoping and walking in its own test (name it here until it does).
_SHARES = "covered by the workflow sharing work (helper share: app/api/shares.py, engine/shares.py)"
PENDING: dict[tuple[str, str], str] = {
    ("GET", "/api/workflows/{workflow_id}/shares"): _SHARES,
    ("POST", "/api/workflows/{workflow_id}/shares"): _SHARES,
    ("DELETE", "/api/workflows/{workflow_id}/shares/{share_id}"): _SHARES,
}

TRIGGER_SPECS = [
    {"id": "hook", "kind": "webhook", "config": {"secret": "alpha-hook-secret"}},
    {"id": "hourly", "kind": "schedule", "config": {"cron": "0 * * * *", "timezone": "UTC"}},
    {"id": "topic", "kind": "kafka", "config": {"topic": "alpha-topic"}},
    {"id": "form", "kind": "form", "config": {"title": "Alpha form"}},
    {"id": "chat", "kind": "chat", "config": {"title": "Alpha chat"}},
]


def objects_definition(name: str, note: str = "") -> dict[str, Any]:
    """START -> DONE with a message input and a trigger of each kind."""
    definition = simple_definition(name)
    definition["description"] = note
    definition["inputs"] = {
        "type": "object",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
    }
    definition["triggers"] = [dict(t) for t in TRIGGER_SPECS]
    return definition


class Objects:
    """Workspace A with one object of each kind, workspace B with its own, and their members."""

    def __init__(self, make_user) -> None:
        with db_session() as session:
            self.a = str(workspaces.create_workspace(session, slug="alpha", name="Alpha", actor="test").id)
            self.b = str(workspaces.create_workspace(session, slug="beta", name="Beta", actor="test").id)
        self.member_a = World._member(make_user("editor"), [self.a])
        self.editor_b = World._member(make_user("editor"), [self.b])
        self.admin_b = World._member(make_user("editor"), [self.b])
        with db_session() as session:
            workspaces.set_member(session, self.b, self.admin_b.id, "admin", actor="test")
        self.workflow_a = World._workflow(self.a, objects_definition("objects of A"), "objects of A")
        with db_session() as session:  # version 2, published (no review required): v1 superseded
            workflows.save_version(
                session, uuid.UUID(self.workflow_a), objects_definition("objects of A", "v2"), "second"
            )
        self.workflow_b = World._workflow(self.b, objects_definition("objects of B"), "objects of B")
        with get_engine(get_settings().database_url).connect() as conn:
            self.triggers_a = {t.key: t.id for t in triggers.list_for_workflow(conn, self.workflow_a)}
            self.triggers_b = {t.key: t.id for t in triggers.list_for_workflow(conn, self.workflow_b)}
        assert set(self.triggers_a) == {t["id"] for t in TRIGGER_SPECS}
        triggers.rotate_token(self.triggers_a["form"], actor="test")
        for workspace_id, name in ((self.a, "alpha-token"), (self.a, "same-name"), (self.b, "same-name")):
            secret_admin.create(
                "test", name, f"value of {name}", description="as made", workspace_id=workspace_id
            )
        self.secret_a = "alpha-token"
        with db_session() as session:
            row, self.key_a = api_keys.create(
                session, self.member_a, name="key of A", role="editor", rate_limit_per_min=6000,
                workspace_id=self.a, owner_role="editor",
            )  # fmt: skip
            self.key_id_a = str(row.id)
        spec = agents.AgentSpec(name="Agent of A", config={"model": "scripted", "system_prompt": "Be terse."})
        self.agent_a = agents.create(spec, actor="test", workspace_id=self.a).id
        self.agent_b = agents.create(spec.model_copy(update={"name": "Agent of B"}), actor="test",
                                     workspace_id=self.b).id  # fmt: skip

    def guesses(self) -> dict[str, list[str]]:
        """A's ids by the path parameter that names them."""
        return {
            "workflow_id": [self.workflow_a],
            "trigger_id": list(self.triggers_a.values()),
            "agent_id": [self.agent_a],
            "name": [self.secret_a],
            "key_id": [self.key_id_a],
            "workspace_id": [self.a],
        }

    def clients_of_b(self) -> list[tuple[str, str, TestClient]]:
        """(what, role, client): B's editor with a session and with an API key, B's admin with a
        session and with a key. A workspace admin who is an instance editor has no admin key (a key
        acts at most at its owner's instance role: app/auth/api_keys.verify), so the admin-only
        routes are walked with the admin's session; the admin's key walks the others."""
        return [
            ("editor session", "editor", session_client(self.editor_b)),
            ("editor key", "editor", key_in(self.editor_b, self.b, "editor")),
            ("admin session", "admin", session_client(self.admin_b)),
            ("admin's key", "editor", key_in(self.admin_b, self.b, "editor")),
        ]

    def state_of_a(self) -> dict[str, list[tuple]]:
        """Every row of A's objects, as stored: equal before and after B's walk means nothing changed."""
        of_a = "SELECT id FROM workflows WHERE workspace_id = :a"
        queries = {
            "workflows": "SELECT * FROM workflows WHERE workspace_id = :a",
            "versions": f"SELECT * FROM workflow_versions WHERE workflow_id IN ({of_a})",
            "triggers": f"SELECT * FROM triggers WHERE workflow_id IN ({of_a})",
            "runs": f"SELECT id FROM runs WHERE workflow_id IN ({of_a})",
            "secrets": "SELECT * FROM secrets WHERE workspace_id = :a",
            "api_keys": "SELECT id, name, role, revoked_at, workspace_id FROM api_keys WHERE workspace_id = :a",
            "agents": "SELECT * FROM agents WHERE workspace_id = :a",
            "workspace": "SELECT * FROM workspaces WHERE id = :a",
            "members": "SELECT * FROM workspace_members WHERE workspace_id = :a",
        }
        with get_engine(get_settings().database_url).connect() as conn:
            found = {
                what: sorted(tuple(str(v) for v in row) for row in conn.execute(text(sql), {"a": self.a}))
                for what, sql in queries.items()
            }
        assert all(found[k] for k in ("workflows", "versions", "triggers", "secrets", "api_keys", "agents"))
        return found

    def workflows_of_b(self) -> int:
        with get_engine(get_settings().database_url).connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM workflows WHERE workspace_id = :b"), {"b": self.b}
            ).scalar()


@pytest.fixture
def objects(make_user) -> Objects:
    return Objects(make_user)


def _unknown(param: str) -> str:
    """An id of the kind `param` names that names nothing."""
    if param == "name":
        return f"no-such-{uuid.uuid4().hex[:8]}"
    if param == "agent_id":
        return new_agent_id()
    return str(uuid.uuid4())


def _filled(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: values[m.group(1)], template)


def _id_routes() -> set[tuple[str, str]]:
    return {(method, path) for method, path in API_POLICY if "{" in path}


def test_every_route_with_an_id_in_its_path_is_walked_here_or_by_the_runs_test_or_exempt_with_a_reason() -> (
    None
):
    routes = _id_routes()
    uncovered = routes - set(WALKS) - set(RUN_BODIES) - set(EXEMPT) - set(PENDING)
    assert not uncovered, f"walk these with a guessed id of another workspace (WALKS): {sorted(uncovered)}"
    stale = (set(WALKS) | set(EXEMPT) | set(PENDING)) - routes
    assert not stale, f"no such routes any more: {sorted(stale)}"
    tables = [set(WALKS), set(RUN_BODIES), set(EXEMPT), set(PENDING)]
    assert sum(len(t) for t in tables) == len(set().union(*tables)), "a route is in two tables"
    assert all(reason.strip() for reason in [*EXEMPT.values(), *PENDING.values()])
    for (method, path), walk in WALKS.items():
        assert "{" + walk.guess + "}" in path, (method, path)
        assert ("{user_id}" in path) == bool(walk.user), (method, path)


def test_every_by_id_route_answers_a_guessed_id_of_another_workspace_like_an_unknown_one_and_changes_nothing(
    objects: Objects,
) -> None:
    before = objects.state_of_a()
    workflows_of_b = objects.workflows_of_b()
    guesses = objects.guesses()
    clients = objects.clients_of_b()
    walked = 0
    for method, template in sorted(WALKS, key=lambda route: route[0] == "DELETE"):
        walk = WALKS[(method, template)]
        fixed = {"version": "1"}
        if walk.user:
            fixed["user_id"] = str(getattr(objects, walk.user).id)
        for what, role, client in clients:
            if not allows(role, API_POLICY[(method, template)]):
                continue
            for theirs in guesses[walk.guess]:
                unknown = _unknown(walk.guess)
                asked = {"json": walk.body, "params": walk.params}
                foreign = client.request(method, _filled(template, {**fixed, walk.guess: theirs}), **asked)
                missing = client.request(method, _filled(template, {**fixed, walk.guess: unknown}), **asked)
                where = (what, method, template, theirs)
                assert foreign.status_code == 404, (*where, foreign.status_code, foreign.text)
                assert _shape(foreign, theirs) == _shape(missing, unknown), where
                walked += 1
    assert walked > len(WALKS) * 2  # each route with more than one client
    assert objects.state_of_a() == before
    assert objects.workflows_of_b() == workflows_of_b  # nothing of A was copied into B either
    a_key = TestClient(api, headers={"Authorization": f"Bearer {objects.key_a}"})
    assert a_key.get("/api/me").status_code == 200  # A's key still works


def test_a_secret_of_the_same_name_in_both_workspaces_is_bs_own_for_b_and_as_stays_as_it_was(
    objects: Objects,
) -> None:
    before = objects.state_of_a()
    admin = session_client(objects.admin_b)
    changed = admin.put("/api/secrets/same-name", json={"value": "B's", "description": "B's own"})
    assert changed.status_code == 200 and changed.json()["description"] == "B's own", changed.text
    assert admin.delete("/api/secrets/same-name").status_code == 204
    assert objects.state_of_a() == before
    names_a = [s.name for s in secret_admin.list_rows(objects.a)]
    assert "same-name" in names_a and "same-name" not in [s.name for s in secret_admin.list_rows(objects.b)]


def test_the_lists_of_bs_members_show_none_of_as_objects(objects: Objects) -> None:
    ids_a = {objects.workflow_a, objects.agent_a, objects.key_id_a, *objects.triggers_a.values()}
    for what, role, client in objects.clients_of_b():
        listed = [w["id"] for w in client.get("/api/workflows", params={"limit": 500}).json()]
        assert objects.workflow_b in listed and objects.workflow_a not in listed, what
        searched = client.get("/api/workflows", params={"search": "objects of"}).json()
        assert [w["id"] for w in searched] == [objects.workflow_b], what
        hooks = client.get(f"/api/workflows/{objects.workflow_b}/triggers").json()
        assert {t["id"] for t in hooks} == set(objects.triggers_b.values()), what
        listed_agents = [a["id"] for a in client.get("/api/agents").json()]
        assert listed_agents == [objects.agent_b], what
        by_capability = client.get("/api/agents/capabilities").json()
        assert not {a["id"] for c in by_capability for a in c["agents"]} & ids_a, what
        keys = [k["id"] for k in client.get("/api/keys").json()]
        assert objects.key_id_a not in keys, what
        if role == "admin":
            secrets_b = [s["name"] for s in client.get("/api/secrets").json()]
            assert "same-name" in secrets_b and objects.secret_a not in secrets_b, what


def _calling(workflow_id: str, agent_id: str) -> dict[str, Any]:
    """START -> CALL (sub-workflow `workflow_id` v1) -> ASK (saved agent `agent_id`) -> DONE."""
    return workflow(
        [node("START", "start"), node("CALL", "subworkflow", workflow_id=workflow_id, version=1),
         node("ASK", "agent", agent_id=agent_id), node("DONE", "end")],
        [("START", "CALL"), ("CALL", "ASK"), ("ASK", "DONE")],
        name="calls",
    ).to_dict()  # fmt: skip


def _issues(answer: dict[str, Any], *ids: str) -> list[tuple]:
    def masked(message: str) -> str:
        for value in ids:
            message = message.replace(value, "<id>")
        return message

    return [
        (masked(i["message"]), i["code"], i["node_id"], i["field"], i["severity"]) for i in answer["issues"]
    ]


def test_as_workflow_and_agent_named_inside_a_definition_of_b_are_reported_like_unknown_ones(
    objects: Objects,
) -> None:
    """Validating (and saving) a definition that calls A's workflow and agent tells B nothing of
    them: not their existence, nor the called workflow's inputs (a sub-workflow's ports)."""
    theirs = (objects.workflow_a, objects.agent_a)
    unknown = (str(uuid.uuid4()), new_agent_id())
    for what, _, client in objects.clients_of_b():
        foreign = client.post("/api/validate", json={"definition": _calling(*theirs)}).json()
        missing = client.post("/api/validate", json={"definition": _calling(*unknown)}).json()
        assert _issues(foreign, *theirs) == _issues(missing, *unknown), what
        assert {i["code"] for i in foreign["issues"]} >= {"version_not_found", "agent_not_found"}, what
        saved = [
            client.post(
                f"/api/workflows/{objects.workflow_b}/versions",
                json={"definition": _calling(*ids), "note": what},
            )
            for ids in (theirs, unknown)
        ]
        assert [s.status_code for s in saved] == [201, 201], what
        assert _issues(saved[0].json()["validation"], *theirs) == _issues(
            saved[1].json()["validation"], *unknown
        )


def _editor_tab(user: User, workflow_id: str) -> EditorState:
    tab = reflex_tab(EditorState, cookie_of(user), f"/workflows/{workflow_id}", "/workflows/[workflow_id]")
    asyncio.run(EditorState.load.fn(tab))
    return tab


def _sub(tab: EditorState, state_cls):
    return asyncio.run(tab.get_state(state_cls))


def _every_editor_handler_with_as_workflow(tab: EditorState) -> None:
    """What a tab whose workflow id is A's may ask: versions, restore, diff, review, publish, triggers,
    run and save."""
    tools, diff, review = _sub(tab, EditorTools), _sub(tab, EditorDiff), _sub(tab, EditorReview)
    trig, run = _sub(tab, EditorTriggers), _sub(tab, EditorRun)
    EditorTools.set_versions_open.fn(tools, True)
    assert tools.versions == []
    EditorTools.restore_version.fn(tools, 1)
    EditorDiff.set_diff_open.fn(diff, True)
    assert diff.diff_choices == []
    diff.diff_from, diff.diff_to = "1", "2"
    EditorDiff.show_diff.fn(diff)
    assert diff.canvas_diff == {} and diff.diff_rows == []
    EditorReview.open_review.fn(review, 1)
    assert review.review_version == 0
    EditorReview.submit_version.fn(review, 1)
    EditorReview.publish_version.fn(review, 1)
    review.review_version = 2
    EditorReview.approve_review.fn(review)
    review.review_version = 2
    EditorReview.reject_review.fn(review)
    assert trig._trig_saved == {}
    assert all(row.trigger_id == "" for row in trig.trig_rows)
    for key in ("hook", "hourly", "form", "chat"):
        EditorTriggers.trig_pause.fn(trig, key)
        EditorTriggers.trig_resume.fn(trig, key)
        EditorTriggers.trig_rotate_token.fn(trig, key)
    assert trig.trig_token == ""
    EditorRun.run_workflow.fn(run)
    assert run.runs == [] and run.run_id == ""
    tab.dirty = True
    EditorState.save.fn(tab)


def test_the_editor_of_a_member_of_b_opens_nothing_of_as_workflow_and_its_handlers_change_nothing(
    objects: Objects,
) -> None:
    before = objects.state_of_a()
    # The page at A's workflow's address: "does not exist", nothing of it on the canvas.
    tab = _editor_tab(objects.editor_b, objects.workflow_a)
    assert not tab.loaded and "does not exist" in tab.load_error
    assert tab.canvas_nodes == [] and tab.wf_name == "" and tab.version == 0
    _every_editor_handler_with_as_workflow(tab)
    # A tab that opened B's own workflow and then claims A's id (a forged wf_id).
    forged = _editor_tab(objects.editor_b, objects.workflow_b)
    assert forged.loaded and forged.wf_name == "objects of B"
    forged.wf_id = objects.workflow_a
    _every_editor_handler_with_as_workflow(forged)
    assert objects.state_of_a() == before
    # A's own member opens it (the page works, so the refusals above are about the workspace).
    own = _editor_tab(objects.member_a, objects.workflow_a)
    assert own.loaded and own.version == 2
    tools = _sub(own, EditorTools)
    EditorTools.set_versions_open.fn(tools, True)
    assert [v.version for v in tools.versions] == [2, 1]
    EditorReview.publish_version.fn(_sub(own, EditorReview), 1)  # A's editor rolls back: it works
    with db_session() as session:
        assert workflows.get_workflow(session, uuid.UUID(objects.workflow_a)).published_version == 1


def _called_ports(user: User, workflow_id: str, called: str) -> dict[str, Any]:
    """The input ports the canvas shows for a sub-workflow node calling `called`, added in `user`'s
    editor of `workflow_id`."""
    tab = _editor_tab(user, workflow_id)
    EditorState.add_node.fn(tab, "subworkflow", 0, 0)
    added = tab.sel_id
    EditorState.set_field.fn(tab, "workflow_id", called)
    return next(n for n in tab.canvas_nodes if n["id"] == added).get("ins", {})


def test_a_sub_workflow_node_of_b_calling_as_workflow_shows_its_ports_like_an_unknown_workflows(
    objects: Objects,
) -> None:
    foreign = _called_ports(objects.editor_b, objects.workflow_b, objects.workflow_a)
    unknown = _called_ports(objects.editor_b, objects.workflow_b, str(uuid.uuid4()))
    assert foreign == unknown and "message" not in foreign
    # In A's own editor the same node shows the called workflow's input.
    assert "message" in _called_ports(objects.member_a, objects.workflow_a, objects.workflow_a)


def test_the_workflows_page_of_a_member_of_b_lists_renames_copies_and_deletes_nothing_of_a(
    objects: Objects,
) -> None:
    before, workflows_of_b = objects.state_of_a(), objects.workflows_of_b()
    tab = reflex_tab(WorkflowsState, cookie_of(objects.editor_b), "/workflows", "/workflows")
    WorkflowsState.load.fn(tab)
    assert [r.id for r in tab.rows] == [objects.workflow_b]
    WorkflowsState.open_rename.fn(tab, objects.workflow_a, "objects of A")
    WorkflowsState.set_rename_name.fn(tab, "taken by B")
    WorkflowsState.rename.fn(tab)
    WorkflowsState.duplicate.fn(tab, objects.workflow_a)
    WorkflowsState.open_delete.fn(tab, objects.workflow_a, "objects of A")
    WorkflowsState.delete.fn(tab)
    assert [r.id for r in tab.rows] == [objects.workflow_b]
    assert objects.state_of_a() == before and objects.workflows_of_b() == workflows_of_b


def test_the_secrets_agents_and_settings_pages_of_bs_members_show_and_change_nothing_of_a(
    objects: Objects,
) -> None:
    before = objects.state_of_a()
    secrets_tab = reflex_tab(SecretsState, cookie_of(objects.admin_b), "/secrets", "/secrets")
    SecretsState.load.fn(secrets_tab)
    assert [r.name for r in secrets_tab.rows] == ["same-name"]
    SecretsState.open_rotate.fn(secrets_tab, objects.secret_a)
    assert not secrets_tab.rotate_open and secrets_tab.rotate_name == ""
    secrets_tab.rotate_name = objects.secret_a
    SecretsState.rotate.fn(secrets_tab, {"value": "stolen", "description": "taken by B"})
    SecretsState.open_delete.fn(secrets_tab, objects.secret_a)
    SecretsState.delete.fn(secrets_tab)
    assert [r.name for r in secrets_tab.rows] == ["same-name"]

    agents_tab = reflex_tab(AgentsState, cookie_of(objects.editor_b), "/agents", "/agents")
    AgentsState.load.fn(agents_tab)
    assert [r.id for r in agents_tab.rows] == [objects.agent_b]
    AgentsState.edit_agent.fn(agents_tab, objects.agent_a)
    assert not agents_tab.form_open and agents_tab.name == ""
    AgentsState.new_agent.fn(agents_tab)
    agents_tab.editing_id, agents_tab.name = objects.agent_a, "taken by B"
    AgentsState.save.fn(agents_tab)
    AgentsState.validate_agent.fn(agents_tab, objects.agent_a)
    AgentsState.terminate_agent.fn(agents_tab, objects.agent_a)
    assert [r.id for r in agents_tab.rows] == [objects.agent_b]

    for user in (objects.editor_b, objects.admin_b):
        settings_tab = reflex_tab(SettingsState, cookie_of(user), "/settings", "/settings")
        SettingsState.load.fn(settings_tab)
        assert objects.key_id_a not in [k.id for k in settings_tab.keys]
        SettingsState.revoke_key.fn(settings_tab, objects.key_id_a)
    assert objects.state_of_a() == before


def test_the_chat_form_and_runs_pages_of_a_member_of_b_find_none_of_as_triggers(objects: Objects) -> None:
    chat, form = objects.triggers_a["chat"], objects.triggers_a["form"]
    for user, found in ((objects.editor_b, False), (objects.member_a, True)):
        cookie = cookie_of(user)
        chat_tab = reflex_tab(ChatState, cookie, f"/chat/{chat}", "/chat/[trigger_id]")
        ChatState.load.fn(chat_tab)
        assert chat_tab.not_found is not found
        form_tab = reflex_tab(FormState, cookie, f"/forms/{form}", "/forms/[trigger_id]")
        FormState.load.fn(form_tab)
        assert (form_tab.status == "ready") is found and (form_tab.title == "Alpha form") is found
    # The runs page's workflow filter, named in a link or chosen, lists no trigger of A's workflow.
    cookie = cookie_of(objects.editor_b)
    linked = reflex_tab(RunsState, cookie, f"/runs?workflow={objects.workflow_a}", "/runs")
    RunsState.load.fn(linked)
    chosen = reflex_tab(RunsState, cookie, "/runs", "/runs")
    RunsState.load.fn(chosen)
    RunsState.set_filter.fn(chosen, "workflow", objects.workflow_a)
    for tab in (linked, chosen):
        assert not {o.value for o in tab.trigger_options} & set(objects.triggers_a.values())
    own = reflex_tab(RunsState, cookie, "/runs", "/runs")
    RunsState.load.fn(own)
    RunsState.set_filter.fn(own, "workflow", objects.workflow_b)
    assert {o.value for o in own.trigger_options} == set(objects.triggers_b.values())

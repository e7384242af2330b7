"""Who may run what, who started each run, and who may decide an approval named by e-mail.

Every test goes through the real REST API (API keys and session cookies), the editor's Reflex event
handlers on a real state, or the CLI, on real PostgreSQL, Redis and Celery workers.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from reflex.istate.data import RouterData
from reflex_base.constants import RouteVar
from sqlalchemy import text
from sqlmodel import select

import app.app  # noqa: F401 - registers the pages and their states, as the running app does
from app import routes
from app.api.main import api
from app.api.runs import INLINE_NEEDS_EDITOR
from app.auth import api_keys, local, sessions, users
from app.auth.oidc import claim_is_true
from app.db import db_session
from app.pages import inbox_state
from app.pages.editor.graph import WorkingGraph
from app.pages.editor.run_state import EditorRun
from app.pages.editor.state import EditorState
from app.pages.inbox_state import InboxState
from app.pages.runs_state import RunsState
from engine import workflows
from engine.parse import parse_dict
from engine.settings import get_settings
from engine.workflows import create_workflow
from models.auth import AuditLog, User
from models.db import get_engine
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow
from tests.integration.test_cli import EXAMPLE, flowloom

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")


# ---- helpers ------------------------------------------------------------------------------------


class Canary:
    """A loopback HTTP server that counts the requests it receives."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                hits.append(self.path)
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.hits = hits
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    server = Canary()
    yield server
    server.close()


def granting_definition(port: int) -> dict[str, Any]:
    """A definition that grants itself a per-node power: an egress exception to a loopback canary."""
    return {
        "id": "grant",
        "name": "grants itself egress",
        "policy": {"egress": {"allowed_hosts": [f"127.0.0.1:{port}"]}},
        "nodes": [
            {"id": "START", "type": "start"},
            {"id": "CALL", "type": "tool.http", "config": {"url": f"http://127.0.0.1:{port}/stolen"}},
            {"id": "DONE", "type": "end"},
        ],
        "edges": [
            {"id": "e0", "source": "START", "target": "CALL"},
            {"id": "e1", "source": "CALL", "target": "DONE"},
        ],
    }


def simple_definition(name: str = "saved") -> dict[str, Any]:
    return workflow([node("START", "start"), node("DONE", "end")], [("START", "DONE")], name=name).to_dict()


def waiting_definition() -> dict[str, Any]:
    """START -> REVIEW (human.approval, any operator) -> DONE: stays running until someone decides."""
    return workflow(
        [node("START", "start"), node("REVIEW", "human.approval", title="Review"), node("DONE", "end")],
        [("START", "REVIEW"), ("REVIEW", "DONE", "approved")],
        mode="state_machine",
        name="waits",
    ).to_dict()


def saved_workflow(definition: dict[str, Any], name: str = "Saved") -> str:
    with db_session() as session:
        return str(create_workflow(session, name, definition=definition).id)


def key_client(user: User, role: str) -> TestClient:
    with db_session() as session:
        row, key = api_keys.create(session, user, name=f"test {role}", role=role, rate_limit_per_min=6000)
        key_id = str(row.id)
    client = TestClient(api, headers={"Authorization": f"Bearer {key}"})
    client.user, client.key_id = user, key_id
    return client


def session_client(user: User) -> TestClient:
    token, _ = sessions.issue(str(user.id))
    client = TestClient(api)
    client.cookies.set(sessions.COOKIE_NAME, token)
    client.user = user
    return client


def run_row(run_id: str):
    with get_engine(get_settings().database_url).connect() as conn:
        return conn.execute(
            text(
                "SELECT definition, version_id, created_by, started_by, started_via FROM runs WHERE id = :id"
            ),
            {"id": run_id},
        ).one()


def run_count() -> int:
    with get_engine(get_settings().database_url).connect() as conn:
        return conn.execute(text("SELECT count(*) FROM runs")).scalar_one()


def audit_of(run_id: str) -> dict[str, AuditLog]:
    with db_session() as session:
        rows = session.exec(
            select(AuditLog).where(AuditLog.target_type == "run", AuditLog.target_id == run_id)
        )
        return {row.action: row for row in rows}


# ---- the REST API: inline definitions need editor ------------------------------------------------


def test_operator_api_key_posting_an_inline_definition_gets_403_and_its_egress_grant_is_never_used(
    make_user, canary: Canary
) -> None:
    operator = key_client(make_user("operator"), "operator")
    response = operator.post("/api/runs", json={"definition": granting_definition(canary.port)})
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == INLINE_NEEDS_EDITOR
    time.sleep(1.0)  # workers are running: a run that slipped through would have called by now
    assert run_count() == 0 and canary.hits == []


def test_operator_session_posting_an_inline_definition_gets_403(make_user, canary: Canary) -> None:
    operator = session_client(make_user("operator"))
    response = operator.post("/api/runs", json={"definition": granting_definition(canary.port), "inputs": {}})
    assert response.status_code == 403, response.text
    assert "editor role" in response.json()["detail"]
    assert run_count() == 0 and canary.hits == []


def test_an_admins_key_scoped_to_operator_cannot_post_an_inline_definition(make_user, canary: Canary) -> None:
    scoped = key_client(make_user("admin"), "operator")
    response = scoped.post("/api/runs", json={"definition": granting_definition(canary.port)})
    assert response.status_code == 403 and response.json()["detail"] == INLINE_NEEDS_EDITOR
    assert run_count() == 0


def test_editor_session_runs_an_inline_definition_with_its_grant_and_the_run_names_the_user(
    make_user, canary: Canary
) -> None:
    editor = session_client(make_user("editor"))
    response = editor.post("/api/runs", json={"definition": granting_definition(canary.port)})
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["started_by"] == f"user:{editor.user.id}" and run["started_via"] == "api"
    view = wait_for_run(run["id"])
    assert view.status == "succeeded", (view.error, [s["error"] for s in view.steps])
    assert canary.hits == ["/stolen"]  # the grant is real when an editor gives it
    row = run_row(run["id"])
    assert str(row.created_by) == str(editor.user.id) and row.version_id is None


def test_operator_runs_saved_versions_only_latest_by_default_and_a_chosen_one_on_request(make_user) -> None:
    workflow_id = saved_workflow(simple_definition("v1"))
    with db_session() as session:
        workflows.save_version(session, uuid.UUID(workflow_id), simple_definition("v2"), "second")
    operator = key_client(make_user("operator"), "operator")

    latest = operator.post("/api/runs", json={"workflow_id": workflow_id})
    assert latest.status_code == 201, latest.text
    assert run_row(latest.json()["id"]).definition["name"] == "v2"
    first = operator.post("/api/runs", json={"workflow_id": workflow_id, "version": 1})
    assert first.status_code == 201 and run_row(first.json()["id"]).definition["name"] == "v1"

    missing = operator.post("/api/runs", json={"workflow_id": workflow_id, "version": 9})
    assert missing.status_code == 404 and "has no version 9" in missing.json()["detail"]
    both = operator.post("/api/runs", json={"workflow_id": workflow_id, "definition": simple_definition()})
    assert both.status_code == 422 and "not both" in both.json()["detail"]


def test_a_run_started_with_an_api_key_records_the_key_and_the_api_and_shows_them(make_user) -> None:
    workflow_id = saved_workflow(simple_definition())
    operator = key_client(make_user("operator"), "operator")
    started = operator.post("/api/runs", json={"workflow_id": workflow_id})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]

    shown = operator.get(f"/api/runs/{run_id}").json()
    assert shown["started_by"] == f"api_key:{operator.key_id}" and shown["started_via"] == "api"
    row = run_row(run_id)
    assert (row.started_by, row.started_via) == (f"api_key:{operator.key_id}", "api")
    assert str(row.created_by) == str(operator.user.id)  # the key's owner, as before


def test_run_start_and_cancel_are_audited_with_actor_workflow_version_and_via(make_user) -> None:
    workflow_id = saved_workflow(waiting_definition())
    operator = key_client(make_user("operator"), "operator")
    run_id = operator.post("/api/runs", json={"workflow_id": workflow_id}).json()["id"]
    wait_for_step(run_id, "REVIEW", "waiting")
    assert operator.post(f"/api/runs/{run_id}/cancel").status_code == 200

    entries = audit_of(run_id)
    actor = f"{operator.user.email} (key {operator.key_id})"
    started, cancelled = entries["run.started"], entries["run.cancelled"]
    assert started.actor == actor and cancelled.actor == actor
    assert started.details["workflow_id"] == workflow_id and started.details["version"] == 1
    assert started.details["via"] == "api" and started.details["started_by"] == f"api_key:{operator.key_id}"
    assert cancelled.details["via"] == "api" and cancelled.details["version"] == 1
    # The audit page (admins) lists both.
    listed = key_client(make_user("admin"), "admin").get("/api/audit", params={"actor": actor}).json()
    assert {e["action"] for e in listed} >= {"run.started", "run.cancelled"}


def test_the_runs_page_shows_who_started_each_run_and_from_where(make_user) -> None:
    workflow_id = saved_workflow(simple_definition())
    operator = key_client(make_user("operator"), "operator")
    editor = session_client(make_user("editor"))
    by_key = operator.post("/api/runs", json={"workflow_id": workflow_id}).json()["id"]
    by_user = editor.post("/api/runs", json={"definition": simple_definition("inline")}).json()["id"]

    state = reflex_tab(RunsState, cookie_of(make_user("viewer")), "/runs", "/runs")
    RunsState.load.fn(state)
    rows = {row.id: row for row in state.rows}
    assert (rows[by_key].started_by, rows[by_key].started_via) == (f"{operator.user.email} (API key)", "API")
    assert (rows[by_user].started_by, rows[by_user].started_via) == (editor.user.email, "API")


def test_a_cli_run_records_the_cli_and_the_os_user(pg_url: str, redis_url: str) -> None:
    env = {"FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": redis_url}
    result = flowloom("run", str(EXAMPLE), "--input", "x=20", env=env)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split()[1]
    row = run_row(run_id)
    assert row.started_via == "cli" and row.started_by.startswith("cli")
    assert audit_of(run_id)["run.started"].details["via"] == "cli"


# ---- the editor (Reflex event handlers on a real state) -------------------------------------------


def cookie_of(user: User) -> str:
    token, _ = sessions.issue(str(user.id))
    return f"{sessions.COOKIE_NAME}={token}"


def reflex_tab(state_cls, cookie: str, path: str, route: str):
    """A real instance of `state_cls` in a fresh tab whose socket carries `cookie`, open at `path`."""
    root = state_cls.get_root_state()(_reflex_internal_init=True)
    root.router = RouterData.from_router_data(
        {
            RouteVar.HEADERS: {"cookie": cookie, "origin": "http://127.0.0.1:3000"},
            RouteVar.ORIGIN: path,
            RouteVar.PATH: route,
        }
    )
    return root.get_substate(state_cls.get_full_name().split(".")[1:])


def editor_tab(user: User, workflow_id: str):
    tab = reflex_tab(EditorState, cookie_of(user), f"/workflows/{workflow_id}", "/workflows/[workflow_id]")
    asyncio.run(EditorState.load.fn(tab))
    assert tab.loaded, tab.load_error
    return tab


def run_button(tab: EditorState):
    """What the Run button does in `tab` (its handler lives on the editor's run state, beside the page's)."""
    return EditorRun.run_workflow.fn(asyncio.run(tab.get_state(EditorRun)))


def runs_of(workflow_id: str) -> list:
    with get_engine(get_settings().database_url).connect() as conn:
        return conn.execute(
            text("SELECT id, definition, started_by, started_via FROM runs WHERE workflow_id = :w"),
            {"w": workflow_id},
        ).all()


def test_operators_run_button_runs_the_saved_version_even_if_the_tabs_graph_was_changed(
    make_user, canary: Canary
) -> None:
    workflow_id = saved_workflow(simple_definition("as saved"))
    operator = make_user("operator")
    tab = editor_tab(operator, workflow_id)
    # The tab's graph is swapped for one that grants itself egress, and it claims to be clean:
    # what a client that could forge state would try. The run must still be the saved version.
    tab._graph = WorkingGraph.from_definition(parse_dict(granting_definition(canary.port)))
    tab.dirty = False

    run_view = asyncio.run(tab.get_state(EditorRun))
    EditorRun.run_workflow.fn(run_view)
    runs = runs_of(workflow_id)
    assert len(runs) == 1, run_view.run_error
    assert runs[0].definition["name"] == "as saved"
    assert (runs[0].started_by, runs[0].started_via) == (f"user:{operator.id}", "ui")
    assert wait_for_run(str(runs[0].id)).status == "succeeded"
    assert canary.hits == []
    assert audit_of(str(runs[0].id))["run.started"].details["via"] == "ui"


def test_operator_can_neither_save_nor_run_an_unsaved_graph_from_the_editor(
    make_user, canary: Canary
) -> None:
    workflow_id = saved_workflow(simple_definition("as saved"))
    tab = editor_tab(make_user("operator"), workflow_id)
    tab._graph = WorkingGraph.from_definition(parse_dict(granting_definition(canary.port)))
    tab._sync_flags()
    assert tab.dirty

    refused_run = run_button(tab)
    refused_save = EditorState.save.fn(tab)
    assert "editor role" in str(refused_run) and "editor" in str(refused_save)
    with db_session() as session:
        assert workflows.list_versions(session, uuid.UUID(workflow_id))[0].version == 1  # nothing saved
    assert runs_of(workflow_id) == [] and canary.hits == []


def test_editors_run_button_saves_first_and_records_the_editor(make_user) -> None:
    workflow_id = saved_workflow(simple_definition("v1"))
    editor = make_user("editor")
    tab = editor_tab(editor, workflow_id)
    EditorState.move_nodes.fn(tab, [{"id": "DONE", "x": 480, "y": 120}])
    assert tab.dirty

    run_button(tab)
    runs = runs_of(workflow_id)
    assert len(runs) == 1 and tab.version == 2
    assert runs[0].started_by == f"user:{editor.id}" and runs[0].started_via == "ui"


# ---- approvers named by e-mail match only a verified e-mail --------------------------------------


def approval_definition(**review: Any):
    return workflow(
        [
            node("START", "start"),
            node("REVIEW", "human.approval", title="Pay", **review),
            node("DONE", "end"),
            node("REJECTED", "end"),
        ],
        [("START", "REVIEW"), ("REVIEW", "DONE", "approved"), ("REVIEW", "REJECTED", "rejected")],
        mode="state_machine",
        name="approval",
    )


def pending_approval(run_id: str) -> str:
    wait_for_step(run_id, "REVIEW", "waiting")
    with get_engine(get_settings().database_url).connect() as conn:
        return str(
            conn.execute(text("SELECT id FROM approvals WHERE run_id = :r"), {"r": run_id}).scalar_one()
        )


def other_identity(email: str, *, verified: bool, role: str = "operator") -> User:
    """A second account claiming `email`, from another provider that did not verify it."""
    with db_session() as session:
        user = User(
            issuer="https://lax-idp.example.test", subject=f"sub-{uuid.uuid4().hex[:8]}", email=email,
            name="claims " + email, role=role, email_verified=verified,
        )  # fmt: skip
        session.add(user)
        session.flush()
        return user


def decide(client: TestClient, approval_id: str, action: str = "approved"):
    return client.post(f"/api/approvals/{approval_id}/decision", json={"action": action, "form": {}})


def start_approval(definition) -> tuple[str, str]:
    from engine.runs import start_run

    run_id = start_run(definition, {})
    return run_id, pending_approval(run_id)


def test_an_unverified_address_cannot_decide_an_approval_naming_it_but_the_verified_owner_can(
    make_user,
) -> None:
    ann = key_client(make_user("operator", "ann@example.test"), "operator")
    impostor = key_client(other_identity("ann@example.test", verified=False), "operator")
    run_id, approval_id = start_approval(approval_definition(approvers={"users": ["ann@example.test"]}))

    refused = decide(impostor, approval_id)
    assert refused.status_code == 403, refused.text
    assert "did not verify" in refused.json()["detail"]
    listed = [a["id"] for a in impostor.get("/api/approvals").json()]
    assert approval_id not in listed  # nor is it offered in their inbox

    assert approval_id in [a["id"] for a in ann.get("/api/approvals").json()]
    decided = decide(ann, approval_id)
    assert decided.status_code == 200 and decided.json()["status"] == "decided", decided.text
    assert wait_for_run(run_id).status == "succeeded"


def test_an_unverified_user_named_by_user_id_may_decide(make_user) -> None:
    unverified = make_user("operator", "someone@example.test", email_verified=False)
    client = key_client(unverified, "operator")
    run_id, approval_id = start_approval(approval_definition(approvers={"users": [str(unverified.id)]}))
    decided = decide(client, approval_id)
    assert decided.status_code == 200, decided.text
    assert wait_for_run(run_id).status == "succeeded"


def test_an_approval_i_may_decide_is_listed_behind_more_than_limit_ones_i_may_not(
    make_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing filters before it limits: the API (newest first) and the Inbox (oldest first) both
    show ann's approval although more than `limit` of bob's are newer, and older, than hers."""
    ann, bob = make_user("operator", "ann@example.test"), make_user("operator", "bob@example.test")
    for_bob = approval_definition(approvers={"users": ["bob@example.test"]})
    older = [start_approval(for_bob)[1] for _ in range(3)]
    _, mine = start_approval(approval_definition(approvers={"users": ["ann@example.test"]}))
    newer = [start_approval(for_bob)[1] for _ in range(3)]

    listed = key_client(ann, "operator").get("/api/approvals", params={"limit": 2})
    assert [a["id"] for a in listed.json()] == [mine], listed.text
    bobs = key_client(bob, "operator")
    pages = [
        [a["id"] for a in bobs.get("/api/approvals", params={"limit": 2, "offset": o}).json()] for o in (0, 2)
    ]
    assert pages == [newer[::-1][:2], [newer[0], older[2]]]  # offset counts only what bob may decide

    monkeypatch.setattr(inbox_state, "APPROVALS_SHOWN", 2)
    tab = reflex_tab(InboxState, cookie_of(ann), routes.INBOX, routes.INBOX)
    InboxState.load.fn(tab)
    assert [row.id for row in tab.rows] == [mine], tab.error
    bob_tab = reflex_tab(InboxState, cookie_of(bob), routes.INBOX, routes.INBOX)
    InboxState.load.fn(bob_tab)
    assert [row.id for row in bob_tab.rows] == older[:2]


def test_an_unverified_address_cannot_take_the_vote_of_its_verified_owner(make_user) -> None:
    """Role approvers, quorum 2: the impostor's vote counts as their own account, not as ann's."""
    ann = key_client(make_user("operator", "ann@example.test"), "operator")
    impostor_user = other_identity("ann@example.test", verified=False)
    impostor = key_client(impostor_user, "operator")
    run_id, approval_id = start_approval(approval_definition(approvers={"roles": ["operator"]}, quorum=2))

    first = decide(impostor, approval_id)
    assert first.status_code == 200 and first.json()["votes"] == 1, first.text
    second = decide(ann, approval_id)
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "decided"
    voters = [v["voter"] for v in second.json()["outputs"]["approved"]["votes"]]
    assert sorted(voters) == sorted([str(impostor_user.id), "ann@example.test"])
    assert wait_for_run(run_id).status == "succeeded"


def test_a_session_of_a_verified_user_decides_by_e_mail(make_user) -> None:
    ann = session_client(make_user("operator", "ann@example.test"))
    run_id, approval_id = start_approval(approval_definition(approvers={"users": ["ANN@example.test"]}))
    assert decide(ann, approval_id).status_code == 200
    assert wait_for_run(run_id).status == "succeeded"


# ---- where email_verified comes from ------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "verified"),
    [
        (True, True),
        ("true", True),
        ("TRUE", True),
        (False, False),
        ("false", False),
        (None, False),
        (1, False),
    ],
)
def test_email_verified_claim_counts_only_when_true_or_the_string_true(claim: object, verified: bool) -> None:
    assert claim_is_true(claim) is verified


def test_sign_in_records_whether_the_provider_verified_the_address_each_time(auth_env) -> None:
    with db_session() as session:
        user, created = users.upsert_signed_in(
            session, issuer="https://idp.example.test", subject="s-1", email="v@example.test",
            email_verified=True, name="V",
        )  # fmt: skip
        assert created and user.email_verified
        again, _ = users.upsert_signed_in(
            session, issuer="https://idp.example.test", subject="s-1", email="v@example.test",
            email_verified=False, name="V",
        )  # fmt: skip
        assert not again.email_verified  # the provider stopped vouching: so do we


def test_the_local_account_counts_as_verified(auth_env) -> None:
    with db_session() as session:
        user = local.set_password(session, "admin@example.test", "a long enough passphrase 42", actor="test")
        assert user.email_verified


# ---------------------------------------------------------------------------------------------
# Powers and secret references come from the saved definition, never from a template.


def _two_node_definition(node_type: str, config: dict) -> dict:
    return {
        "name": "powers",
        "nodes": [
            {"id": "s", "type": "start"},
            {"id": "n", "type": node_type, "config": config},
            {"id": "e", "type": "end"},
        ],
        "edges": [{"id": "a", "source": "s", "target": "n"}, {"id": "b", "source": "n", "target": "e"}],
    }


@pytest.mark.parametrize(
    ("node_type", "config", "field"),
    [
        (
            "tool.sql",
            {"connection": "c", "query": "select 1", "allow_writes": "{{ input.w }}"},
            "config.allow_writes",
        ),
        ("tool.http", {"url": "https://a.example", "auth": {"secret": "{{ input.s }}"}}, "config.auth"),
        (
            "tool.http",
            {"url": "https://a.example", "secret_headers": {"X-Key": "{{ input.s }}"}},
            "config.secret_headers",
        ),
        ("webhook.send", {"url": "https://a.example", "secret": "{{ input.s }}"}, "config.secret"),
        ("agent", {"prompt": "hi", "api_key_secret": "{{ input.s }}"}, "config.api_key_secret"),
    ],
)
def test_a_template_in_a_power_or_secret_name_is_a_validation_error(
    node_type: str, config: dict, field: str
) -> None:
    from engine.parse import parse_dict
    from engine.validate import validate

    report = validate(parse_dict(_two_node_definition(node_type, config)))
    refused = [i for i in report.issues if i.code == "template_not_allowed"]
    assert [(i.node_id, i.field) for i in refused] == [("n", field)]
    assert "takes no templates" in refused[0].message


def test_the_engine_renders_no_template_inside_a_power_even_if_one_got_past_validation() -> None:
    from engine.config_fields import fixed_fields
    from engine.contract import get_node_type
    from engine.step_runner import render_config

    model = get_node_type("tool.sql").config_model
    rendered = render_config(
        {"connection": "{{ input.c }}", "allow_writes": "{{ input.w }}"},
        {"input": {"c": "main", "w": True}},
        fixed_fields(model),
    )
    assert rendered == {"connection": "main", "allow_writes": "{{ input.w }}"}

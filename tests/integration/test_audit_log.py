"""The audit log: one entry per action of a scripted session of REST calls and Settings page
handlers (who, what, which object, from where, before and after), filtered and exported by
/api/audit, and no way to change an entry: no route, no module of the app, nor SQL."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from app.api.main import api
from app.auth import sessions
from app.auth.middleware import api_routes
from app.db import db_session
from app.pages.settings_limits_state import LimitsState
from app.pages.settings_review import ReviewSettingState
from engine import audit
from engine.settings import get_settings
from models.auth import AuditLog, User
from models.db import get_engine
from models.workspace_column import DEFAULT_WORKSPACE_ID
from tests.integration.engine_helpers import node, wait_for_step, workflow
from tests.security.test_authorization import cookie_of, reflex_tab

SECRET_VALUE = "sk-audit-never-logged-0123456789"
ROTATED_VALUE = "sk-audit-rotated-never-logged-9876543210"


def waiting_definition() -> dict[str, Any]:
    """START -> REVIEW (human.approval, any operator) -> DONE: waits until someone decides."""
    return workflow(
        [node("START", "start"), node("REVIEW", "human.approval", title="Review"), node("DONE", "end")],
        [("START", "REVIEW"), ("REVIEW", "DONE", "approved")],
        mode="state_machine",
        name="audited",
    ).to_dict()


def session_client(user: User) -> TestClient:
    token, _ = sessions.issue(str(user.id))
    client = TestClient(api)
    client.cookies.set(sessions.COOKIE_NAME, token)
    return client


def entries_since(first_id: int) -> list[AuditLog]:
    with db_session() as session:
        return list(session.exec(select(AuditLog).where(AuditLog.id > first_id).order_by(AuditLog.id)))


def last_id() -> int:
    with db_session() as session:
        found = session.exec(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1)).first()  # type: ignore[union-attr]
        return found or 0


def approval_of(run_id: str) -> str:
    wait_for_step(run_id, "REVIEW", "waiting")
    with get_engine(get_settings().database_url).connect() as conn:
        return str(
            conn.execute(text("SELECT id FROM approvals WHERE run_id = :r"), {"r": run_id}).scalar_one()
        )


def ok(response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


@pytest.mark.usefixtures("engine_env", "engine_worker")  # runs wait for a decision, then go on
def test_a_scripted_session_leaves_one_entry_per_action_with_who_what_and_object(make_user) -> None:
    admin_user, other, reviewer_user = make_user("admin"), make_user("viewer"), make_user("editor")
    admin, reviewer = session_client(admin_user), session_client(reviewer_user)
    default = str(DEFAULT_WORKSPACE_ID)
    settings_url = f"/api/workspaces/{default}/settings"
    start = last_id()

    wf = ok(admin.post("/api/workflows", json={"name": "Audited", "description": "first"}), 201)
    versions = f"/api/workflows/{wf['id']}/versions"
    ok(admin.post(versions, json={"definition": waiting_definition(), "note": "v1"}), 201)
    ok(admin.patch(f"/api/workflows/{wf['id']}", json={"name": "Audited twice"}))
    decided_run = ok(admin.post("/api/runs", json={"workflow_id": wf["id"]}), 201)["id"]
    approval_id = approval_of(decided_run)
    ok(admin.post(f"/api/approvals/{approval_id}/decision", json={"action": "approved"}))
    cancelled_run = ok(admin.post("/api/runs", json={"workflow_id": wf["id"]}), 201)["id"]
    wait_for_step(cancelled_run, "REVIEW", "waiting")
    ok(admin.post(f"/api/runs/{cancelled_run}/cancel"))
    # Four-eyes publishing, switched on through the settings API: a draft, submitted, approved by
    # another editor, published.
    ok(admin.patch(settings_url, json={"require_review": True, "runs_per_hour": 100}))
    ok(admin.post(versions, json={"definition": waiting_definition(), "note": "v2"}), 201)
    ok(admin.post(f"{versions}/2/submit"))
    ok(reviewer.post(f"{versions}/2/approve", json={"note": "fine"}))
    ok(admin.post(f"{versions}/2/publish"))
    # The same settings from the Settings page (its handlers, on the admin's tab).
    tab_cookie = cookie_of(admin_user)
    review_tab = reflex_tab(ReviewSettingState, tab_cookie, "/settings", "/settings")
    ReviewSettingState.set_require_review.fn(review_tab, False)
    limits_tab = reflex_tab(LimitsState, tab_cookie, "/settings", "/settings")
    LimitsState.load_limits.fn(limits_tab)
    limits_tab.runs_per_hour = "50"
    LimitsState.save_limits.fn(limits_tab)
    assert limits_tab.limits_error == "" and limits_tab.limits_saved == "Saved."
    ok(admin.post("/api/secrets", json={"name": "audit_token", "value": SECRET_VALUE}), 201)
    ok(admin.put("/api/secrets/audit_token", json={"value": ROTATED_VALUE}))
    assert admin.delete("/api/secrets/audit_token").status_code == 204
    key = ok(admin.post("/api/keys", json={"name": "audit key", "role": "viewer"}), 201)
    assert admin.delete(f"/api/keys/{key['id']}").status_code == 204
    ok(admin.patch(f"/api/users/{other.id}", json={"role": "editor"}))
    team = ok(admin.post("/api/workspaces", json={"slug": "audited", "name": "Audited team"}), 201)["id"]
    ok(admin.patch(f"/api/workspaces/{team}", json={"name": "Audited crew"}))
    members = f"/api/workspaces/{team}/members/{other.id}"
    assert admin.put(members, json={"role": "editor"}).status_code == 204  # added
    assert admin.put(members, json={"role": "operator"}).status_code == 204  # role changed
    assert admin.delete(members).status_code == 204
    doomed = ok(admin.post("/api/workflows", json={"name": "Doomed"}), 201)
    assert admin.delete(f"/api/workflows/{doomed['id']}").status_code == 204

    me, them = admin_user.email, reviewer_user.email
    # (action, target type, target id, actor, source), in the order they happened.
    expected = [
        ("workflow.created", "workflow", wf["id"], me, "api"),
        ("version.saved", "workflow", wf["id"], me, "api"),
        ("workflow.renamed", "workflow", wf["id"], me, "api"),
        ("run.started", "run", decided_run, me, "api"),
        ("approval.decided", "approval", approval_id, me, "api"),
        ("run.started", "run", cancelled_run, me, "api"),
        ("run.cancelled", "run", cancelled_run, me, "api"),
        ("workspace.review_required", "workspace", default, me, "api"),
        ("workspace.limits_changed", "workspace", default, me, "api"),
        ("version.saved", "workflow", wf["id"], me, "api"),
        ("version.submitted", "workflow", wf["id"], me, "api"),
        ("version.approved", "workflow", wf["id"], them, "api"),
        ("version.published", "workflow", wf["id"], me, "api"),
        ("workspace.review_required", "workspace", default, me, "ui"),
        ("workspace.limits_changed", "workspace", default, me, "ui"),
        ("secret.created", "secret", "audit_token", me, "api"),
        ("secret.rotated", "secret", "audit_token", me, "api"),
        ("secret.deleted", "secret", "audit_token", me, "api"),
        ("api_key.created", "api_key", key["id"], me, "api"),
        ("api_key.revoked", "api_key", key["id"], me, "api"),
        ("user.role_changed", "user", str(other.id), me, "api"),
        ("workspace.create", "workspace", team, me, "api"),
        ("workspace.rename", "workspace", team, me, "api"),
        ("workspace.member.set", "workspace", team, me, "api"),
        ("workspace.member.set", "workspace", team, me, "api"),
        ("workspace.member.remove", "workspace", team, me, "api"),
        ("workflow.created", "workflow", doomed["id"], me, "api"),
        ("workflow.deleted", "workflow", doomed["id"], me, "api"),
    ]
    # A vote and the run's own events may add entries (approval.voted); each action is there as
    # often as it was done, by whom, from where.
    written = entries_since(start)
    found = [(e.action, e.target_type, e.target_id) for e in written]
    keys = [x[:3] for x in expected]
    for action in dict.fromkeys(keys):
        assert found.count(action) == keys.count(action), f"{action}: {found}"
    by_key: dict[tuple[str, str, str], list[AuditLog]] = {}
    for entry in written:
        by_key.setdefault((entry.action, entry.target_type, entry.target_id), []).append(entry)
    seen: dict[tuple[str, str, str], int] = {}
    for action, target_type, target, actor, source in expected:
        index = seen[(action, target_type, target)] = seen.get((action, target_type, target), -1) + 1
        entry = by_key[(action, target_type, target)][index]
        assert (entry.actor, entry.source) == (actor, source), (action, entry.actor, entry.source)
        if source == "api":
            assert entry.ip == "testclient", (action, entry.ip)

    def one(action: str, target: str, index: int = 0) -> AuditLog:
        return [e for e in written if (e.action, e.target_id) == (action, target)][index]

    renamed = one("workflow.renamed", wf["id"])
    assert renamed.before == {"name": "Audited"} and renamed.after == {"name": "Audited twice"}
    saved = one("version.saved", wf["id"])
    assert saved.details["version"] == 1 and saved.details["note"] == "v1" and saved.details["nodes"] == 3
    assert one("version.saved", wf["id"], 1).details["version"] == 2
    approved = one("version.approved", wf["id"])
    assert approved.details["version"] == 2 and approved.details["note"] == "fine"
    assert one("version.published", wf["id"]).after == {"status": "published"}
    role = one("user.role_changed", str(other.id))
    assert role.before == {"role": "viewer"} and role.after == {"role": "editor"}
    assert one("workflow.deleted", doomed["id"]).before["name"] == "Doomed"
    api_review, page_review = (
        one("workspace.review_required", default),
        one("workspace.review_required", default, 1),
    )
    assert (api_review.before, api_review.after) == ({"require_review": False}, {"require_review": True})
    assert (page_review.before, page_review.after) == ({"require_review": True}, {"require_review": False})
    api_limits, page_limits = (
        one("workspace.limits_changed", default),
        one("workspace.limits_changed", default, 1),
    )
    assert (api_limits.before["runs_per_hour"], api_limits.after["runs_per_hour"]) == (None, 100)
    assert (page_limits.before["runs_per_hour"], page_limits.after["runs_per_hour"]) == (100, 50)
    assert one("secret.rotated", "audit_token").details["value_changed"] is True
    assert one("workspace.rename", team).before == {"name": "Audited team"}
    added, changed = one("workspace.member.set", team), one("workspace.member.set", team, 1)
    assert (added.before, added.after, added.details["user_id"]) == (None, {"role": "editor"}, str(other.id))
    assert (changed.before, changed.after) == ({"role": "editor"}, {"role": "operator"})
    assert one("workspace.member.remove", team).before == {"role": "operator"}
    logged = json.dumps([audit.as_dict(e) for e in written], default=str)
    assert SECRET_VALUE not in logged and ROTATED_VALUE not in logged


def test_the_audit_api_filters_pages_and_exports_csv_and_json(make_user) -> None:
    admin = session_client(make_user("admin"))
    first = ok(admin.post("/api/workflows", json={"name": '=HYPERLINK("x")'}), 201)
    ok(admin.post("/api/workflows", json={"name": "Second"}), 201)
    ok(admin.patch(f"/api/workflows/{first['id']}", json={"description": "changed"}))

    listed = admin.get("/api/audit", params={"action": "workflow", "target_id": first["id"]})
    assert [e["action"] for e in ok(listed)] == ["workflow.updated", "workflow.created"]
    assert listed.headers["x-total-count"] == "2"
    page = ok(admin.get("/api/audit", params={"action": "workflow.created", "limit": 1, "offset": 1}))
    assert [e["target_id"] for e in page] == [first["id"]]  # newest first: the second page is the first one
    assert ok(admin.get("/api/audit", params={"action": "workflow", "until": "2000-01-01T00:00:00Z"})) == []

    exported = admin.get("/api/audit", params={"target_id": first["id"], "format": "csv"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["action"] for r in rows] == ["workflow.updated", "workflow.created"]
    assert json.loads(rows[1]["after"])["name"].startswith("=HYPERLINK")  # JSON cells start with "{"
    as_json = admin.get("/api/audit", params={"target_id": first["id"], "format": "json"})
    assert [e["action"] for e in json.loads(as_json.text)] == ["workflow.updated", "workflow.created"]
    # Taking a copy is itself on record.
    exports = ok(admin.get("/api/audit", params={"action": "audit.exported"}))
    assert [e["details"]["format"] for e in exports] == ["json", "csv"]


def test_csv_cells_that_look_like_formulas_are_defused() -> None:
    entry = AuditLog(id=1, action="workflow.renamed", actor="=cmd|' /C calc'!A0", target_type="workflow")
    row = next(csv.DictReader(io.StringIO(audit.csv_text([entry]))))
    assert row["actor"] == "'=cmd|' /C calc'!A0"


def test_entries_cannot_be_updated_or_deleted_through_sql_or_the_orm(make_user) -> None:
    admin = session_client(make_user("admin"))
    ok(admin.post("/api/workflows", json={"name": "Kept"}), 201)
    engine = get_engine(get_settings().database_url)
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="cannot be changed or deleted"), engine.begin() as conn:
            conn.execute(text(statement))
    with pytest.raises(DBAPIError, match="cannot be changed or deleted"), engine.begin() as conn:
        conn.execute(update(AuditLog).values(details=None))
    with pytest.raises(DBAPIError, match="cannot be changed or deleted"), db_session() as session:
        session.delete(session.exec(select(AuditLog)).first())
    with db_session() as session:
        kept = session.exec(select(AuditLog).where(AuditLog.action == "workflow.created")).all()
    assert len(kept) == 1 and kept[0].actor != "someone else"


def test_no_route_changes_or_removes_an_audit_entry(make_user) -> None:
    audit_routes = {
        (m, r.path) for r in api_routes(api.router.routes) for m in r.methods if "audit" in r.path
    }
    assert audit_routes and {m for m, _ in audit_routes} <= {"GET", "HEAD"}, audit_routes
    admin = session_client(make_user("admin"))
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert admin.request(method, "/api/audit").status_code == 405, method


# What changing or removing audit entries would look like in our code: the ORM or Core on the
# table, or SQL text naming it.
_AUDIT_WRITE = re.compile(
    r"\b(?:update|delete)\(\s*(?:AuditLog|_TABLE|table_of\(AuditLog\))\b"
    r"|\b(?:UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?)\s+\"?audit_log\b",
    re.IGNORECASE,
)


def test_no_module_of_the_app_updates_or_deletes_audit_entries() -> None:
    samples = ["conn.execute(update(AuditLog).values(actor=''))", "session.execute(delete(_TABLE))",
               'text("DELETE FROM audit_log WHERE id = 1")', "UPDATE audit_log SET actor = 'x'"]  # fmt: skip
    assert all(_AUDIT_WRITE.search(s) for s in samples)  # the pattern finds what it looks for
    root = Path(__file__).resolve().parents[2]
    hits = []
    for package in ("app", "engine", "models", "nodes", "components"):
        for path in sorted((root / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            hits += [f"{path.relative_to(root)}: {m.group(0)}" for m in _AUDIT_WRITE.finditer(source)]
            if "AuditLog" in source and ".delete(" in source:  # an entry loaded, then session.delete(entry)
                hits.append(f"{path.relative_to(root)}: .delete( in a module that reads AuditLog")
    assert hits == []

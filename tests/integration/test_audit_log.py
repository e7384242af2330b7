"""The audit log: one entry per action of a scripted REST session (who, what, which object, from
where, before and after), filtered and exported by /api/audit, and no way to change an entry."""

from __future__ import annotations

import csv
import io
import json
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
from engine import audit
from engine.settings import get_settings
from models.auth import AuditLog, User
from models.db import get_engine
from tests.integration.engine_helpers import node, wait_for_step, workflow

SECRET_VALUE = "sk-audit-never-logged-0123456789"


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
    admin_user = make_user("admin")
    other = make_user("viewer")
    admin = session_client(admin_user)
    start = last_id()

    wf = ok(admin.post("/api/workflows", json={"name": "Audited", "description": "first"}), 201)
    ok(
        admin.post(
            f"/api/workflows/{wf['id']}/versions", json={"definition": waiting_definition(), "note": "v1"}
        ),
        201,
    )
    ok(admin.patch(f"/api/workflows/{wf['id']}", json={"name": "Audited twice"}))
    decided_run = ok(admin.post("/api/runs", json={"workflow_id": wf["id"]}), 201)["id"]
    approval_id = approval_of(decided_run)
    ok(admin.post(f"/api/approvals/{approval_id}/decision", json={"action": "approved"}))
    cancelled_run = ok(admin.post("/api/runs", json={"workflow_id": wf["id"]}), 201)["id"]
    wait_for_step(cancelled_run, "REVIEW", "waiting")
    ok(admin.post(f"/api/runs/{cancelled_run}/cancel"))
    ok(admin.post("/api/secrets", json={"name": "audit_token", "value": SECRET_VALUE}), 201)
    assert admin.delete("/api/secrets/audit_token").status_code == 204
    key = ok(admin.post("/api/keys", json={"name": "audit key", "role": "viewer"}), 201)
    assert admin.delete(f"/api/keys/{key['id']}").status_code == 204
    ok(admin.patch(f"/api/users/{other.id}", json={"role": "editor"}))
    doomed = ok(admin.post("/api/workflows", json={"name": "Doomed"}), 201)
    assert admin.delete(f"/api/workflows/{doomed['id']}").status_code == 204

    expected = [
        ("workflow.created", "workflow", wf["id"]),
        ("version.saved", "workflow", wf["id"]),
        ("workflow.renamed", "workflow", wf["id"]),
        ("run.started", "run", decided_run),
        ("approval.decided", "approval", approval_id),
        ("run.started", "run", cancelled_run),
        ("run.cancelled", "run", cancelled_run),
        ("secret.created", "secret", "audit_token"),
        ("secret.deleted", "secret", "audit_token"),
        ("api_key.created", "api_key", key["id"]),
        ("api_key.revoked", "api_key", key["id"]),
        ("user.role_changed", "user", str(other.id)),
        ("workflow.created", "workflow", doomed["id"]),
        ("workflow.deleted", "workflow", doomed["id"]),
    ]
    # A vote and the run's own events may add entries (approval.voted); each action is there once.
    written = entries_since(start)
    found = [(e.action, e.target_type, e.target_id) for e in written]
    for action in expected:
        assert found.count(action) == 1, f"{action}: {found}"
    by_action = {(e.action, e.target_id): e for e in written}
    for action, _, target in expected:
        entry = by_action[(action, target)]
        assert entry.actor == admin_user.email, (action, entry.actor)
        assert entry.source == "api" and entry.ip == "testclient", (action, entry.source, entry.ip)
    renamed = by_action[("workflow.renamed", wf["id"])]
    assert renamed.before == {"name": "Audited"} and renamed.after == {"name": "Audited twice"}
    saved = by_action[("version.saved", wf["id"])]
    assert saved.details["version"] == 1 and saved.details["note"] == "v1" and saved.details["nodes"] == 3
    role = by_action[("user.role_changed", str(other.id))]
    assert role.before == {"role": "viewer"} and role.after == {"role": "editor"}
    assert by_action[("workflow.deleted", doomed["id"])].before["name"] == "Doomed"
    assert SECRET_VALUE not in json.dumps([audit.as_dict(e) for e in written], default=str)


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

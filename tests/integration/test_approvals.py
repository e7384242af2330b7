"""Human approvals on real workers: who may decide, 2-of-3 quorum, two deciders at once, deadlines
and escalation, each resuming the run with the decided branch and form values."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import select

from app.api.main import api
from app.auth import api_keys
from app.db import db_session
from engine import approvals
from engine.runs import get_run, start_run
from models.auth import AuditLog
from models.db import get_engine
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker")


def approval_workflow(**review):
    """START -> REVIEW (human.approval) -approved-> PAY (echoes the form's amount) -> DONE; -rejected-> REJECTED."""
    return workflow(
        [
            node("START", "start"),
            node(
                "REVIEW",
                "human.approval",
                title="Pay {{ input.vendor }}",
                fields=[{"name": "amount", "label": "Amount", "kind": "number", "required": True}],
                **review,
            ),
            node("PAY", "tool.python", tool="echo", args={"value": "{{ ports.in.form.amount }}"}),
            node("REJECTED", "end"),
            node("DONE", "end"),
        ],
        [
            ("START", "REVIEW"),
            ("REVIEW", "PAY", "approved"),
            ("REVIEW", "REJECTED", "rejected"),
            ("PAY", "DONE"),
        ],
        mode="state_machine",
    )


@pytest.fixture
def person(make_user):
    """person(email, role="operator") -> an API client acting as that user."""

    def make(email: str, role: str = "operator") -> TestClient:
        user = make_user(role, email)
        with db_session() as session:
            _, key = api_keys.create(session, user, name="test", role=role, rate_limit_per_min=6000)
        client = TestClient(api, headers={"Authorization": f"Bearer {key}"})
        client.user = user
        return client

    return make


def pending_approval(run_id: str) -> str:
    wait_for_step(run_id, "REVIEW", "waiting")
    with get_engine(api_db()).connect() as conn:
        return str(
            conn.execute(text("SELECT id FROM approvals WHERE run_id = :r"), {"r": run_id}).scalar_one()
        )


def api_db() -> str:
    from engine.settings import get_settings

    return get_settings().database_url


def run_event_types(run_id: str) -> list[str]:
    with get_engine(api_db()).connect() as conn:
        query = text("SELECT event_type FROM events WHERE run_id = :r ORDER BY id")
        return [r.event_type for r in conn.execute(query, {"r": run_id})]


def approval_row(approval_id: str):
    with get_engine(api_db()).connect() as conn:
        return (
            conn.execute(text("SELECT * FROM approvals WHERE id = :id"), {"id": approval_id}).mappings().one()
        )


def vote(client: TestClient, approval_id: str, action: str = "approved", amount: object = 1250, **extra):
    body = {"action": action, "form": {"amount": amount}, "comment": extra.pop("comment", "")}
    return client.post(f"/api/approvals/{approval_id}/decision", json=body)


def test_only_listed_approvers_decide_and_the_run_continues_with_the_form_value(person, api_client):
    ann, bob = person("ann@example.test"), person("bob@example.test")
    viewer = api_client("viewer")
    run_id = start_run(approval_workflow(approvers={"users": ["ann@example.test"]}), {"vendor": "ACME"})
    approval_id = pending_approval(run_id)
    assert approval_row(approval_id)["title"] == "Pay ACME"

    refused = vote(bob, approval_id)
    assert refused.status_code == 403 and "may not decide" in refused.json()["detail"]
    assert vote(viewer, approval_id).status_code == 403  # viewers never approve
    bad = vote(ann, approval_id, amount="not a number")
    assert bad.status_code == 422
    assert (bad.json()["code"], bad.json()["field"]) == ("approval_invalid", "form.amount")

    decided = vote(ann, approval_id, comment="ok")
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "decided" and decided.json()["approval_status"] == "approved"
    view = wait_for_run(run_id)
    assert view.status == "succeeded", view.error
    assert [s["node_id"] for s in view.steps] == ["START", "REVIEW", "PAY", "DONE"]
    # "{{ ports.in.form.amount }}" is a lone expression: it keeps the number the form gave.
    assert view.outputs == {"out": 1250}
    row = approval_row(approval_id)
    assert row["status"] == "approved" and row["decided_by"] == "ann@example.test"
    again = vote(ann, approval_id)
    assert again.status_code == 409 and "already approved by ann@example.test" in again.json()["detail"]


def test_role_approvers_include_higher_roles_but_not_viewers(person):
    editor, operator = person("ed@example.test", "editor"), person("op@example.test", "operator")
    run_id = start_run(approval_workflow(approvers={"roles": ["editor"]}), {"vendor": "X"})
    approval_id = pending_approval(run_id)
    assert vote(operator, approval_id).status_code == 403
    assert vote(editor, approval_id).status_code == 200
    assert wait_for_run(run_id).status == "succeeded"


def test_quorum_two_of_three_needs_two_different_approvers(person):
    people = [person(f"q{i}@example.test") for i in range(3)]
    defn = approval_workflow(approvers={"users": [f"q{i}@example.test" for i in range(3)]}, quorum=2)
    run_id = start_run(defn, {"vendor": "Q"})
    approval_id = pending_approval(run_id)

    first = vote(people[0], approval_id, amount=10)
    assert first.status_code == 200 and first.json() == {
        "status": "pending", "approval_status": "pending", "votes": 1, "quorum": 2, "outputs": None,
    }  # fmt: skip
    twice = vote(people[0], approval_id, amount=10)
    assert twice.status_code == 409 and "already voted" in twice.json()["detail"]
    assert approval_row(approval_id)["status"] == "pending"
    # Still waiting with one vote. A decision resumes the run inside the deciding vote's own
    # transaction, so what is committed when the vote has answered is all it did.
    assert [(s["node_id"], s["status"]) for s in get_run(run_id).steps] == [
        ("START", "succeeded"), ("REVIEW", "waiting"),
    ]  # fmt: skip
    assert "workflow.approval.decided" not in run_event_types(run_id)

    second = vote(people[1], approval_id, amount=20)
    assert second.status_code == 200 and second.json()["status"] == "decided"
    voters = [v["voter"] for v in second.json()["outputs"]["approved"]["votes"]]
    assert voters == ["q0@example.test", "q1@example.test"]
    view = wait_for_run(run_id)
    assert view.status == "succeeded" and view.outputs == {"out": 20}
    assert run_event_types(run_id).count("workflow.approval.decided") == 1
    late = vote(people[2], approval_id)
    assert late.status_code == 409 and "already approved" in late.json()["detail"]
    with db_session() as session:
        actions = [e.action for e in session.exec(select(AuditLog).where(AuditLog.target_id == approval_id))]
    assert actions.count("approval.voted") == 2 and actions.count("approval.decided") == 1


def test_two_people_deciding_at_once_cannot_both_win(make_user):
    for email in ("x@example.test", "y@example.test"):
        make_user("operator", email)
    run_id = start_run(approval_workflow(), {"vendor": "R"})
    approval_id = pending_approval(run_id)
    barrier, results = threading.Barrier(2), {}

    def decide(email: str, action: str) -> None:
        barrier.wait()
        try:
            outcome = approvals.decide(
                approval_id,
                approvals.Approver("", email, "operator", email_verified=True),
                action=action,
                form={"amount": 5},
            )
            results[email] = outcome.status
        except approvals.ApprovalError as exc:
            results[email] = f"refused: {exc}"

    threads = [
        threading.Thread(target=decide, args=("x@example.test", "approved")),
        threading.Thread(target=decide, args=("y@example.test", "rejected")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    winners = [r for r in results.values() if not r.startswith("refused")]
    losers = [r for r in results.values() if r.startswith("refused")]
    assert len(winners) == 1 and len(losers) == 1, results
    assert "already" in losers[0]
    view = wait_for_run(run_id)
    assert view.status == "succeeded"
    reached = [s["node_id"] for s in view.steps]
    assert reached.count("REVIEW") == 1 and ("PAY" in reached) != ("REJECTED" in reached)


def test_deadline_rejects_on_expiry_and_a_late_decision_is_told_so(person):
    ann = person("late@example.test")
    run_id = start_run(approval_workflow(deadline_s=1, on_expiry="reject"), {"vendor": "D"})
    approval_id = pending_approval(run_id)
    view = wait_for_run(run_id, timeout=30)  # the worker's sweeper applies the deadline
    assert view.status == "succeeded"
    assert [s["node_id"] for s in view.steps][-1] == "REJECTED"
    row = approval_row(approval_id)
    assert row["status"] == "expired" and row["decided_by"] == "system:deadline"
    assert row["decision"]["action"] == "rejected"
    late = vote(ann, approval_id)
    assert late.status_code == 409 and "expired" in late.json()["detail"]


def test_decision_after_the_deadline_but_before_the_sweep_is_refused(make_user):
    run_id = start_run(approval_workflow(deadline_s=30, on_expiry="approve"), {"vendor": "E"})
    approval_id = pending_approval(run_id)
    with get_engine(api_db()).begin() as conn:
        conn.execute(text("UPDATE approvals SET deadline = now() - interval '1 second' WHERE id = :id"),
                     {"id": approval_id})  # fmt: skip
    with pytest.raises(approvals.ApprovalError, match="expired"):
        approver = approvals.Approver("", "z@example.test", "admin", email_verified=True)
        approvals.decide(approval_id, approver, action="approved", form={"amount": 1})


def test_deadline_escalates_to_another_role_who_can_then_decide(person):
    listed, editor = person("listed@example.test"), person("boss@example.test", "editor")
    defn = approval_workflow(
        approvers={"users": ["listed@example.test"]},
        deadline_s=1,
        on_expiry="escalate",
        escalate_to_role="editor",
    )
    run_id = start_run(defn, {"vendor": "S"})
    approval_id = pending_approval(run_id)
    assert vote(editor, approval_id).status_code == 403  # not (yet) an approver

    deadline = time.monotonic() + 30
    while approval_row(approval_id)["deadline"] is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    row = approval_row(approval_id)
    assert row["status"] == "pending" and row["request"]["escalated_to_role"] == "editor"
    decided = vote(editor, approval_id, amount=99)
    assert decided.status_code == 200 and decided.json()["status"] == "decided"
    assert wait_for_run(run_id).outputs == {"out": 99}
    assert listed.get("/api/me").status_code == 200

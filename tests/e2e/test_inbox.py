"""The approval inbox in Chromium: an operator approves a paused run with a form value and the run
finishes with it; a viewer is kept out."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from app.db import db_session
from engine.settings import get_settings
from engine.workflows import create_workflow
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow


@pytest.fixture
def engine_here(app_server: str, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start runs from the test process on the app's database and broker."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()


def invoice_workflow(approver: str):
    return workflow(
        [
            node("START", "start"),
            node(
                "REVIEW",
                "human.approval",
                title="Pay invoice {{ input.invoice }}",
                body="**Vendor:** {{ input.vendor }}",
                fields=[{"name": "amount", "label": "Amount to pay", "kind": "number", "required": True}],
                approvers={"users": [approver]},
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
        name="Invoice payment",
    )


def test_operator_approves_in_the_inbox_with_a_form_value_and_the_run_completes_with_it(
    page: Page, app_server: str, login_as, engine_here
) -> None:
    from engine.runs import start_run

    email = login_as(page, "operator", "payer@example.test")
    defn = invoice_workflow(email)
    with db_session() as session:
        saved = create_workflow(session, "Invoice payment", definition=defn.model_dump(mode="json"))
        workflow_id = str(saved.id)
    run_id = start_run(defn, {"invoice": "INV-7", "vendor": "ACME"}, workflow_id=workflow_id)
    wait_for_step(run_id, "REVIEW", "waiting")

    page.goto(f"{app_server}/inbox")
    row = page.get_by_test_id("approval-row").filter(has_text="Pay invoice INV-7")
    expect(row).to_be_visible()
    expect(row).to_contain_text("Invoice payment")
    row.click()
    detail = page.locator("#approval-detail")
    expect(detail).to_contain_text("Vendor: ACME")
    expect(page.locator("#approval-data")).to_contain_text('"invoice": "INV-7"')
    page.locator("#field-amount input").fill("1250")
    page.locator("#decision-comment").fill("checked against the PO")
    page.get_by_test_id("action-approved").click()
    expect(page.get_by_text("Decided: approved")).to_be_visible()
    expect(page.get_by_test_id("history-row").filter(has_text="Pay invoice INV-7")).to_contain_text(email)

    view = wait_for_run(run_id)
    assert view.status == "succeeded", view.error
    assert [s["node_id"] for s in view.steps] == ["START", "REVIEW", "PAY", "DONE"]
    assert view.outputs in ({"out": 1250}, {"out": "1250"})
    review = next(s for s in view.steps if s["node_id"] == "REVIEW")
    assert review["outputs"]["approved"]["comment"] == "checked against the PO"
    assert review["outputs"]["approved"]["decided_by"] == email


def test_viewer_cannot_open_the_inbox(page: Page, app_server: str, login_as) -> None:
    login_as(page, "viewer")
    response = page.goto(f"{app_server}/inbox")
    assert response is not None and response.status == 403
    expect(page.locator("body")).to_contain_text("needs the operator role")


def test_anonymous_visitor_is_sent_to_sign_in(page: Page, app_server: str) -> None:
    page.goto(f"{app_server}/inbox")
    expect(page).to_have_url(re.compile(r"/login/?\?next=%2Finbox$"))

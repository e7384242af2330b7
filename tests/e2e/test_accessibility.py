"""axe-core in Chromium: the main pages, in light and in dark mode, have no serious or critical
accessibility violation (WCAG 2.2 A/AA and axe's best practices), with real rows in their tables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import select

from app.auth import api_keys
from app.db import db_session
from engine import approvals
from engine.approvers import Approver
from engine.settings import get_settings
from engine.workflows import create_workflow
from models.auth import User
from tests.axe.axe import run_axe, serious_ones
from tests.integration.engine_helpers import node, wait_for_step, workflow

ADMIN = "axe-admin@example.test"


@dataclass(frozen=True)
class Seeded:
    """What the pages list: a workflow with a waiting run, a decided approval and an API key."""

    workflow_id: str
    run_id: str  # the run waiting for the admin's decision


def _approval_workflow(approver: str):
    return workflow(
        [
            node("START", "start"),
            node(
                "REVIEW", "human.approval", title="Approve order {{ input.order }}",
                fields=[{"name": "note", "label": "Note", "kind": "text"}], approvers={"users": [approver]},
            ),
            node("DONE", "end"),
            node("REJECTED", "end"),
        ],
        [("START", "REVIEW"), ("REVIEW", "DONE", "approved"), ("REVIEW", "REJECTED", "rejected")],
        mode="state_machine",
        name="Order approval",
    )  # fmt: skip


def _laid_out(defn) -> dict:
    """The definition with its nodes side by side on the canvas (so each can be clicked)."""
    data = defn.model_dump(mode="json")
    for i, item in enumerate(data["nodes"]):
        item["position"] = {"x": 300 * i, "y": 60 * (i % 2)}
    return data


@pytest.fixture(scope="module")
def seeded(app_server: str, pg_url: str, redis_url: str) -> Iterator[Seeded]:
    """An admin with an API key, a workflow, one run waiting for them and one they rejected."""
    from engine.runs import start_run

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
        patch.setenv("FLOWLOOM_REDIS_URL", redis_url)
        get_settings.cache_clear()
        with db_session() as session:
            user = session.exec(select(User).where(User.email == ADMIN)).first()
            if user is None:
                user = User(issuer="https://idp.example.test", subject=ADMIN, email=ADMIN, name="Axe Admin",
                            role="admin", email_verified=True)  # fmt: skip
                session.add(user)
                session.flush()
            api_keys.create(session, user, name="CI key", role="viewer")
            user_id = str(user.id)
        defn = _approval_workflow(ADMIN)
        with db_session() as session:
            saved = create_workflow(session, f"Order approval {uuid.uuid4().hex[:4]}",
                                    definition=_laid_out(defn))  # fmt: skip
            workflow_id = str(saved.id)
        waiting = start_run(defn, {"order": "A-1"}, workflow_id=workflow_id)
        decided = start_run(defn, {"order": "B-2"}, workflow_id=workflow_id)
        wait_for_step(waiting, "REVIEW", "waiting")
        wait_for_step(decided, "REVIEW", "waiting")
        approver = Approver(user_id=user_id, email=ADMIN, role="admin", email_verified=True)
        pending = approvals.list_decidable(approver, search="B-2")
        approvals.decide(str(pending[0].id), approver, action="rejected", comment="not this one")
        yield Seeded(workflow_id, waiting)
    get_settings.cache_clear()


# page path (with {workflow_id}) -> a selector that shows the page has its data
PAGES = {
    "workflows": ("/workflows", "[data-testid=workflow-row]"),
    "editor": ("/workflows/{workflow_id}", "[data-testid=flow-node]"),
    "runs": ("/runs", "[data-testid=run-row]"),
    "run": ("/runs/{run_id}", "[data-testid=flow-node]"),
    "inbox": ("/inbox", "[data-testid=approval-row]"),
    "templates": ("/templates", "[data-testid=template-card]"),
    "settings": ("/settings", "[data-testid=user-row]"),
    "login": ("/login", "#login-page"),
    "dashboard": ("/dashboard", "#runs-by-status"),
    "models": ("/models", "#convert-form"),
    "agents": ("/agents", "#agent-new"),
    "secrets": ("/secrets", "#new-secret"),
    "dead-letters": ("/dead-letters", "#dead-letter-source"),
    "not-found": ("/no/such/page", "#error-page"),
}
# In the editor: what to click, then what must show before the audit (panels, dialogs).
EDITOR_VIEWS = {
    "node panel": ('[data-testid=flow-node][data-node-id="REVIEW"]', "#node-config-form"),
    "workflow panel": ("#tab-workflow", "#workflow-inputs"),
    "triggers panel": ("#tab-triggers", "#side-panel"),
    "runs panel": ("#tab-runs", "#side-panel"),
    "import dialog": ("#toolbar-import", "#import-text"),
    "export dialog": ("#toolbar-export", "#export-text"),
    "versions dialog": ("#toolbar-versions", "[role=dialog]"),
    "snippets dialog": ("#toolbar-snippets", "#snippet-name"),
    "compare versions dialog": ("#toolbar-diff", "#diff-from"),
    "shortcuts list": ("#shortcuts-button", "#shortcuts-dialog"),
}


def _signed_in_page(browser: Browser, app_server: str, scheme: str, signed_in: bool) -> Page:
    from app.auth import sessions

    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=scheme)
    if signed_in:
        with db_session() as session:
            user = session.exec(select(User).where(User.email == ADMIN)).one()
            token, _ = sessions.issue(str(user.id))
        context.add_cookies([{"name": sessions.COOKIE_NAME, "value": token, "url": app_server,
                              "httpOnly": True, "sameSite": "Lax"}])  # fmt: skip
    return context.new_page()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", list(PAGES))
def test_main_pages_have_no_serious_accessibility_violation(
    browser: Browser, app_server: str, seeded: Seeded, pg_url: str, monkeypatch: pytest.MonkeyPatch,
    name: str, scheme: str,
) -> None:  # fmt: skip
    from tests.e2e.conftest import E2E_SECRET_KEY

    monkeypatch.setenv("FLOWLOOM_SECRET_KEY", E2E_SECRET_KEY)
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    path, ready = PAGES[name]
    page = _signed_in_page(browser, app_server, scheme, signed_in=name != "login")
    try:
        page.goto(app_server + path.format(workflow_id=seeded.workflow_id, run_id=seeded.run_id))
        expect(page.locator(ready).first).to_be_visible(timeout=30_000)
        expect(page.locator("html")).to_have_class(scheme if scheme == "dark" else "light", timeout=5_000)
        page.wait_for_timeout(300)  # let entry transitions (dialogs, toasts) settle before auditing
        violations = run_axe(page)
        bad = serious_ones(violations)
        assert not bad, f"{name} ({scheme}): serious accessibility violations:\n" + "\n".join(map(str, bad))
    finally:
        page.context.close()
        get_settings.cache_clear()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_editors_panels_and_dialogs_have_no_serious_accessibility_violation(
    browser: Browser,
    app_server: str,
    seeded: Seeded,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
) -> None:
    from tests.e2e.conftest import E2E_SECRET_KEY

    monkeypatch.setenv("FLOWLOOM_SECRET_KEY", E2E_SECRET_KEY)
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    page = _signed_in_page(browser, app_server, scheme, signed_in=True)
    found = []
    try:
        page.goto(f"{app_server}/workflows/{seeded.workflow_id}")
        expect(page.locator("[data-testid=flow-node]").first).to_be_visible(timeout=30_000)
        for view, (click, ready) in EDITOR_VIEWS.items():
            page.locator(click).click()
            expect(page.locator(ready).first).to_be_visible(timeout=15_000)
            page.wait_for_timeout(300)  # the dialog's entry animation
            found += [f"{view}: {v}" for v in serious_ones(run_axe(page))]
            if page.locator("[role=dialog]").count():
                page.keyboard.press("Escape")
                expect(page.locator("[role=dialog]")).to_have_count(0)
    finally:
        page.context.close()
        get_settings.cache_clear()
    assert not found, f"editor ({scheme}): serious accessibility violations:\n" + "\n".join(found)

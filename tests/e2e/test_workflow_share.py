"""Sharing a workflow in Chromium: its editor shares it with a colleague of another workspace (one
the editor is a viewer of too, so they may find the colleague by e-mail) to read through the Share
dialog; the colleague sees it marked in their list and opens it read-only, without Save or Run;
the revoke in the dialog takes it away."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from playwright.sync_api import Browser, Page, expect
from sqlmodel import select

from app.db import db_session
from engine import workspaces
from engine.workflows import create_workflow, save_version
from models.auth import User
from tests.integration.engine_helpers import node, workflow

TIMEOUT_MS = 20_000


def test_an_editor_shares_a_workflow_to_read_and_revokes_it_in_the_share_dialog(
    page: Page, browser: Browser, app_server: str, login_as: Callable[..., str]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    name = f"Shared invoices {suffix}"
    sharer = login_as(page, "editor")
    definition = workflow([node("START", "start"), node("DONE", "end")], [("START", "DONE")], name=name)
    with db_session() as session:
        workflow_id = str(create_workflow(session, name, definition=definition.to_dict()).id)
        save_version(session, uuid.UUID(workflow_id), definition.to_dict(), "v2")  # v1: superseded
        team = workspaces.create_workspace(
            session, slug=f"team-{suffix}", name=f"Team {suffix}", actor="test"
        )
        session.commit()
        team_id = team.id

    colleague_page = browser.new_context().new_page()
    colleague = login_as(colleague_page, "editor")
    with db_session() as session:
        user = session.exec(select(User).where(User.email == colleague)).one()
        workspaces.set_member(session, team_id, user.id, "editor", actor="test")
        workspaces.remove_member(session, workspaces.DEFAULT_WORKSPACE_ID, user.id, actor="test")
        # The sharer finds the colleague by e-mail: they are both in the colleague's team (the
        # sharer as a viewer, still acting in Default, which owns the workflow).
        sharing = session.exec(select(User).where(User.email == sharer)).one()
        workspaces.set_member(session, team_id, sharing.id, "viewer", actor="test")
        session.commit()

    page.goto(f"{app_server}/workflows")
    row = page.get_by_test_id("workflow-row").filter(has_text=name)
    expect(row).to_have_count(1, timeout=TIMEOUT_MS)
    row.get_by_test_id("workflow-actions").click()
    page.get_by_role("menuitem", name="Share…").click()
    expect(page.locator("#share-none")).to_be_visible(timeout=TIMEOUT_MS)
    page.locator("#share-target").fill(colleague)
    page.locator("#share-submit").click()
    expect(page.get_by_test_id("share-row")).to_contain_text(colleague, timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("share-row")).to_contain_text("read")

    # The colleague, acting in their own workspace: the workflow is listed, marked, and opens read-only.
    colleague_page.goto(f"{app_server}/workflows")
    shared_row = colleague_page.get_by_test_id("workflow-row").filter(has_text=name)
    expect(shared_row.get_by_test_id("workflow-shared-badge")).to_contain_text("read", timeout=TIMEOUT_MS)
    colleague_page.goto(f"{app_server}/workflows/{workflow_id}")
    expect(colleague_page.locator("#shared-badge")).to_be_visible(timeout=TIMEOUT_MS)
    expect(colleague_page.locator("#read-only-badge")).to_be_visible()
    expect(colleague_page.locator("#save-button")).to_have_count(0)
    expect(colleague_page.locator("#run-button")).to_have_count(0)
    # Its version history offers no Submit for review or Publish (only its own workspace publishes).
    colleague_page.click("#toolbar-versions")
    expect(colleague_page.get_by_test_id("version-row")).to_have_count(2, timeout=TIMEOUT_MS)
    expect(colleague_page.locator("#versions-shared-note")).to_be_visible()
    for action in ("submit-version", "publish-version", "restore-version"):
        expect(colleague_page.get_by_test_id(action)).to_have_count(0)
    colleague_page.keyboard.press("Escape")

    page.get_by_test_id("share-revoke").click()
    expect(page.locator("#share-none")).to_be_visible(timeout=TIMEOUT_MS)
    colleague_page.goto(f"{app_server}/workflows")
    expect(colleague_page.get_by_test_id("workflow-row").filter(has_text=name)).to_have_count(
        0, timeout=TIMEOUT_MS
    )
    colleague_page.context.close()

"""Switching workspace in Chromium: an instance admin creates a workspace on the Workspaces page,
adds a colleague, switches to it in the sidebar, and sees only that workspace's workflows; the
colleague sees the workspace with the role given there."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from playwright.sync_api import Page, expect
from sqlmodel import select

from app.db import db_session
from engine.workflows import create_workflow
from models.auth import User
from models.workspaces import Workspace, WorkspaceMember

TIMEOUT_MS = 20_000
WORKFLOWS_URL = re.compile(r".*/workflows/?$")


def test_admin_creates_a_workspace_adds_a_member_and_switches_to_it(
    page: Page, app_server: str, login_as: Callable[..., str]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    login_as(page, "admin")
    colleague = f"colleague-{suffix}@example.test"
    with db_session() as session:
        session.add(User(issuer="https://idp.example.test", subject=colleague, email=colleague, name=colleague,
                         role="viewer", email_verified=True))  # fmt: skip
        create_workflow(session, f"Default only {suffix}")
        session.commit()

    page.goto(f"{app_server}/workspaces")
    page.locator("#new-workspace-slug").fill(f"team-{suffix}")
    page.locator("#new-workspace-name").fill(f"Team {suffix}")
    page.locator("#create-workspace").click()
    expect(page.get_by_test_id("workspace-row").filter(has_text=f"Team {suffix}")).to_have_count(
        1, timeout=TIMEOUT_MS
    )

    # Switch to it in the sidebar (the page reloads into the workspace's workflows).
    page.reload()
    page.locator("#workspace-switcher").click()
    page.get_by_role("option", name=f"Team {suffix}").click()
    expect(page.locator("#workspace-switcher")).to_contain_text(f"Team {suffix}", timeout=TIMEOUT_MS)
    expect(page).to_have_url(WORKFLOWS_URL, timeout=TIMEOUT_MS)
    expect(page.get_by_text(f"Default only {suffix}")).to_have_count(0)

    # Its members: add the colleague as an editor there.
    page.goto(f"{app_server}/workspaces")
    expect(page.locator("#members-of")).to_have_text(f"Team {suffix}", timeout=TIMEOUT_MS)
    page.locator("#new-member-email").fill(colleague)
    page.locator("#new-member-role").click()
    page.get_by_role("option", name="editor").click()
    page.locator("#add-member").click()
    expect(page.get_by_test_id("member-row").filter(has_text=colleague)).to_contain_text(
        "editor", timeout=TIMEOUT_MS
    )
    with db_session() as session:
        team = session.exec(select(Workspace).where(Workspace.slug == f"team-{suffix}")).one()
        user = session.exec(select(User).where(User.email == colleague)).one()
        assert session.get(WorkspaceMember, (team.id, user.id)).role == "editor"

    # Back in the default workspace the workflow is there again.
    page.locator("#workspace-switcher").click()
    page.get_by_role("option", name="Default").click()
    expect(page).to_have_url(WORKFLOWS_URL, timeout=TIMEOUT_MS)
    expect(page.get_by_text(f"Default only {suffix}")).to_have_count(1, timeout=TIMEOUT_MS)

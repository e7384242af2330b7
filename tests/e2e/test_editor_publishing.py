"""Four-eyes publishing in Chromium against `flowloom up`: one editor saves and submits a version,
a second editor reviews it with the diff against the published version on the canvas, approves it
and publishes it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from engine import publishing, workflows
from models.db import session_scope
from models.tables import Workflow
from models.workspace_column import DEFAULT_WORKSPACE_ID
from tests.e2e.test_editor import Editor, _definition, _node

TIMEOUT_MS = 20_000

LINE = _definition(
    [_node("start", "start", 0, 0), _node("work", "delay", 320, 0, seconds=1), _node("done", "end", 640, 0)],
    [("start", "out", "work", "in"), ("work", "out", "done", "in")],
)


def _set_review(pg_url: str, value: bool) -> None:
    with session_scope(pg_url) as session:
        publishing.set_require_review(session, DEFAULT_WORKSPACE_ID, value, role="admin")


@pytest.fixture
def reviewed_workflow(pg_url: str) -> Iterator[str]:
    """A workflow whose version 1 is published, in a workspace that then starts requiring review."""
    _set_review(pg_url, False)
    with session_scope(pg_url) as session:
        workflow_id = str(workflows.create_workflow(session, "Reviewed", definition=LINE).id)
    _set_review(pg_url, True)
    yield workflow_id
    _set_review(pg_url, False)


def _row(page: Page, version: int):
    return page.locator(f"[data-testid=version-row][data-version='{version}']")


def _open_versions(page: Page):
    page.click("#toolbar-versions")
    expect(page.get_by_test_id("version-row").first).to_be_visible(timeout=TIMEOUT_MS)


def test_a_second_editor_approves_a_submitted_version_seeing_the_diff_and_publishes_it(
    page: Page,
    browser: Browser,
    app_server: str,
    pg_url: str,
    login_as: Callable[..., str],
    reviewed_workflow: str,
) -> None:
    # The author: change the wait, save (a draft, since review is required), submit it.
    login_as(page, role="editor")
    ed = Editor(page, app_server, reviewed_workflow).open()
    ed.configure("work")
    ed.fill("seconds", "5")
    ed.click_canvas()
    assert ed.save() == 2
    _open_versions(page)
    expect(_row(page, 1).get_by_test_id("version-status")).to_have_text("published")
    expect(_row(page, 2).get_by_test_id("version-status")).to_have_text("draft")
    _row(page, 2).get_by_test_id("submit-version").click()
    expect(_row(page, 2).get_by_test_id("version-status")).to_have_text("in review", timeout=TIMEOUT_MS)
    # The author may look at the review, but not approve their own version.
    _row(page, 2).get_by_test_id("review-version").click()
    expect(page.locator("#review-bar")).to_be_visible(timeout=TIMEOUT_MS)
    page.click("#review-approve")
    expect(page.get_by_text("another editor must review it")).to_be_visible(timeout=TIMEOUT_MS)

    # The reviewer, in a browser of their own.
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        reviewer = context.new_page()
        login_as(reviewer, role="editor")
        second = Editor(reviewer, app_server, reviewed_workflow).open()
        _open_versions(reviewer)
        _row(reviewer, 2).get_by_test_id("review-version").click()
        # The diff against the published version is on the canvas, with the list of changes.
        expect(reviewer.locator("#diff-title")).to_have_text("Comparing v2 against published v1")
        expect(second.node("work")).to_have_attribute("data-diff", "changed")
        expect(reviewer.locator('#diff-panel [data-testid=diff-row][data-item-id="work"]')).to_be_visible()
        reviewer.fill("#review-note", "Five seconds is fine")
        reviewer.click("#review-approve")
        expect(reviewer.locator("#review-bar")).to_have_count(0, timeout=TIMEOUT_MS)
        expect(reviewer.locator("[data-testid=flow-node][data-diff]")).to_have_count(0)
        _open_versions(reviewer)
        expect(_row(reviewer, 2).get_by_test_id("version-status")).to_have_text("approved")
        _row(reviewer, 2).get_by_test_id("publish-version").click()
        expect(_row(reviewer, 2).get_by_test_id("version-status")).to_have_text(
            "published", timeout=TIMEOUT_MS
        )
        expect(_row(reviewer, 1).get_by_test_id("version-status")).to_have_text("superseded")
    finally:
        context.close()

    with session_scope(pg_url) as session:
        row = session.get(Workflow, uuid.UUID(reviewed_workflow))
        assert row is not None and row.published_version == 2
        state = publishing.review_state(session, uuid.UUID(reviewed_workflow), 2)
        assert state is not None and state.review_note == "Five seconds is fine"
        assert state.reviewed_by != state.created_by

"""The Workflows page in Chromium: the empty state, then creating a workflow."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.doc_screenshots import save_doc_screenshot


def test_workflows_page_shows_the_empty_state_then_lists_a_new_workflow(
    clean_db: str, page: Page, app_server: str, login_as
) -> None:
    login_as(page, "editor")
    page.goto(f"{app_server}/workflows")
    empty = page.locator("#workflows-empty-state")
    expect(empty).to_be_visible(timeout=30_000)
    expect(empty).to_contain_text("No workflows yet")
    save_doc_screenshot(page, "screenshot-workflows.png")

    page.locator("#new-workflow-button").click()
    page.locator("#new-workflow-name").fill("Invoice approval")
    page.locator("#new-workflow-description").fill("Route big invoices to a human")
    page.locator("#create-workflow-submit").click()
    row = page.get_by_test_id("workflow-row")
    expect(row).to_have_count(1, timeout=15_000)
    expect(row.get_by_test_id("workflow-name")).to_have_text("Invoice approval")
    expect(empty).to_have_count(0)

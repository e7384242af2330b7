"""The Audit page in Chromium: an admin filters the log by who and by object and exports it as CSV;
other roles are refused the page and do not see it in the sidebar."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from playwright.sync_api import Page, expect

from engine import audit, workflows
from engine.settings import get_settings
from models.db import session_scope

TIMEOUT_MS = 30_000


@pytest.fixture
def audited(app_server: str, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Two people's changes in the log: ann created and renamed a workflow, bob created another."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    get_settings.cache_clear()
    tag = uuid.uuid4().hex[:6]
    ann, bob = f"ann-{tag}@example.test", f"bob-{tag}@example.test"
    with session_scope(pg_url) as session:
        first = workflows.create_workflow(session, f"Invoices {tag}", who=audit.Who(ann, "api", "10.0.0.7"))
        workflows.rename_workflow(session, first.id, f"Invoices {tag} v2", who=audit.Who(ann, "ui"))
        second = workflows.create_workflow(session, f"Payroll {tag}", who=audit.Who(bob, "api"))
    return {"ann": ann, "bob": bob, "first": str(first.id), "second": str(second.id)}


def test_an_admin_filters_the_audit_log_and_exports_it_as_csv(
    page: Page, app_server: str, login_as, audited, screenshot
) -> None:
    login_as(page, "admin")
    page.goto(f"{app_server}/audit")
    rows = page.get_by_test_id("audit-row")
    expect(page.locator("#audit-table")).to_contain_text(audited["bob"], timeout=TIMEOUT_MS)
    expect(page.locator("#nav-audit")).to_be_visible()

    page.locator("#audit-actor").fill(audited["ann"])
    page.get_by_test_id("audit-apply").click()
    expect(rows).to_have_count(2, timeout=TIMEOUT_MS)
    expect(page.locator("#audit-table")).not_to_contain_text(audited["bob"])
    expect(rows.first.get_by_test_id("audit-action")).to_have_text("workflow.renamed")
    expect(rows.first).to_contain_text(f"workflow {audited['first']}")
    expect(rows.nth(1)).to_contain_text("10.0.0.7")
    screenshot("filtered")  # test-artifacts/, for a look at the page

    with page.expect_download(timeout=TIMEOUT_MS) as download_info:
        page.get_by_test_id("audit-export-csv").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    exported = list(csv.DictReader(io.StringIO(download.path().read_text(encoding="utf-8"))))
    assert [(r["actor"], r["action"]) for r in exported] == [
        (audited["ann"], "workflow.renamed"),
        (audited["ann"], "workflow.created"),
    ]
    assert exported[1]["ip"] == "10.0.0.7" and exported[0]["source"] == "ui"

    page.locator("#audit-target-id").fill(audited["second"])
    page.get_by_test_id("audit-apply").click()
    expect(page.get_by_text("No entries")).to_be_visible(timeout=TIMEOUT_MS)  # ann never touched bob's


def test_an_operator_is_refused_the_audit_page(page: Page, app_server: str, login_as) -> None:
    login_as(page, "operator")
    response = page.goto(f"{app_server}/audit")
    assert response is not None and response.status == 403
    page.goto(f"{app_server}/runs")
    expect(page.locator("#sidebar")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#nav-audit")).to_have_count(0)

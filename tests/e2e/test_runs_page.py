"""The Runs page in Chromium: a run started elsewhere appears, and its end shows, without a reload
(the page's background event wakes on the runs' events, pushed by PostgreSQL)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import text

from engine import approvals
from engine.runs import start_run
from engine.settings import get_settings
from models.db import get_engine
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow

TIMEOUT_MS = 30_000


@pytest.fixture
def engine_here(app_server: str, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start runs from the test process on the app's database and broker."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()


def test_a_new_run_and_its_end_show_on_the_runs_page_without_a_reload(
    page: Page, app_server: str, login_as, engine_here
) -> None:
    login_as(page, "viewer")
    page.goto(f"{app_server}/runs")
    expect(page.locator("#runs-empty-state, #runs-table").first).to_be_visible(timeout=TIMEOUT_MS)

    defn = workflow(
        [node("START", "start"), node("REVIEW", "human.approval", title="Review"), node("DONE", "end")],
        [("START", "REVIEW"), ("REVIEW", "DONE", "approved")],
        mode="state_machine", name="pushed to the runs page",
    )  # fmt: skip
    run_id = start_run(defn, {}, started_by="cli:e2e", started_via="cli")
    row = page.locator(f'[data-run-id="{run_id}"]')
    expect(row).to_contain_text("running", timeout=TIMEOUT_MS)

    wait_for_step(run_id, "REVIEW", "waiting")
    with get_engine(get_settings().database_url).connect() as conn:
        approval_id = conn.execute(
            text("SELECT id FROM approvals WHERE run_id = :r"), {"r": run_id}
        ).scalar_one()
    approver = approvals.Approver("", "boss@example.test", "operator", email_verified=True)
    approvals.decide(str(approval_id), approver, action="approved")
    assert wait_for_run(run_id).status == "succeeded"
    expect(row).to_contain_text("succeeded", timeout=TIMEOUT_MS)

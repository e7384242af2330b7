"""The Dashboard in Chromium against `flowloom up`: charts of a chosen period, each linking to the
runs list filtered to what it shows, refreshed on its own while open; and /metrics, read through
the launcher's shared multiprocess directory, for admins only."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from engine.runs import start_run
from engine.settings import get_settings
from tests.e2e.doc_screenshots import save_doc_screenshot
from tests.integration.engine_helpers import node, wait_for_run, workflow

TIMEOUT_MS = 30_000


@pytest.fixture
def engine_here(app_server: str, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start runs from the test process on the app's database and broker."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()


def _count(page: Page, status: str) -> int:
    text = page.locator('[data-testid="status-link"]', has_text=status).inner_text()
    return int(text.rsplit(":", 1)[1])


def test_dashboard_charts_link_to_filtered_runs_and_refresh_on_their_own(
    page: Page, app_server: str, login_as, engine_here
) -> None:
    login_as(page, "viewer")
    page.goto(f"{app_server}/dashboard?period=1h")
    for chart in ("#chart-runs", "#chart-success", "#chart-durations", "#chart-queue", "#chart-approvals"):
        expect(page.locator(f"{chart} .recharts-surface").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#chart-slowest")).to_be_visible()
    failed = page.locator('[data-testid="status-link"]', has_text="failed")
    expect(failed).to_have_attribute("href", "/runs?status=failed&range=1h")
    before = _count(page, "succeeded")

    # A run ends elsewhere: the page shows it without a reload (its background refresh).
    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")], name="dashboard e2e")
    run_id = start_run(defn, {}, started_via="cli")
    assert wait_for_run(run_id).status == "succeeded"
    expect(page.locator('[data-testid="status-link"]', has_text="succeeded")).to_contain_text(
        f": {before + 1}", timeout=TIMEOUT_MS
    )
    expect(page.locator("#chart-durations .recharts-bar-rectangle").first).to_be_attached(timeout=TIMEOUT_MS)
    save_doc_screenshot(page, "screenshot-dashboard.png")

    # Another period: every link follows it.
    page.locator("#dashboard-period").get_by_role("radio", name="Last 7 days").click()
    expect(failed).to_have_attribute("href", "/runs?status=failed&range=7d", timeout=TIMEOUT_MS)
    expect(page.locator("#chart-runs [data-testid='chart-link']")).to_have_attribute("href", "/runs?range=7d")

    # A chart's link opens the runs list with that filter.
    page.locator('[data-testid="status-link"]', has_text="succeeded").click()
    expect(page).to_have_url(re.compile(r"/runs\?status=succeeded&range=7d$"), timeout=TIMEOUT_MS)
    expect(page.locator("#runs-table")).to_contain_text(run_id[:8], timeout=TIMEOUT_MS)


def test_metrics_endpoint_adds_up_every_process_for_admins_only(
    page: Page, app_server: str, login_as, engine_here
) -> None:
    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")], name="metrics e2e")
    assert wait_for_run(start_run(defn, {}, started_via="cli")).status == "succeeded"
    login_as(page, "viewer")
    assert page.request.get(f"{app_server}/metrics").status == 403
    login_as(page, "admin")
    response = page.request.get(f"{app_server}/metrics")
    assert response.status == 200, response.text()
    body = response.text()
    # Counted by the worker pool's processes, read by the web process from the launcher's directory.
    finished = re.findall(
        r'^flowloom_runs_finished_total\{[^}]*status="succeeded"[^}]*\} ([0-9.e+]+)$', body, re.M
    )
    assert finished and sum(float(v) for v in finished) >= 1, body[:2000]
    assert re.search(r"^flowloom_step_duration_seconds_count\{", body, re.M)
    assert re.search(r"^flowloom_queue_depth [0-9.e+]+$", body, re.M)
    assert re.search(r"^flowloom_approvals_pending [0-9.e+]+$", body, re.M)


def test_the_dashboard_shows_circuit_breakers_that_opened(
    page: Page, app_server: str, login_as, engine_here
) -> None:
    from engine import circuit_breaker

    destination = "http://127.0.0.1:9"  # nothing is sent: the failures are recorded as a worker would
    for _ in range(get_settings().breaker_failures):
        circuit_breaker.record(destination, ok=False)
    try:
        login_as(page, "viewer")  # circuits are the whole instance's: a viewer sees none
        page.goto(f"{app_server}/dashboard")
        expect(page.locator("#success-rate")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.get_by_test_id("circuit-row")).to_have_count(0)
        login_as(page, "admin")
        page.goto(f"{app_server}/dashboard")
        row = page.get_by_test_id("circuit-row").filter(has_text=destination)
        expect(row).to_contain_text("open", timeout=TIMEOUT_MS)
        expect(row).to_contain_text(str(get_settings().breaker_failures))
    finally:
        circuit_breaker.reset(destination)

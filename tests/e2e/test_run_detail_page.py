"""A run's page and the Runs page in Chromium: a finished run shows its steps (statuses, an output, an
error with its code), Cancel (confirmed) stops a running one, filters narrow the list, pages move,
and a row opens its run."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from engine import workflows
from engine.runs import start_run
from engine.settings import get_settings
from models.db import session_scope
from tests.integration.engine_helpers import node, wait_for_run, wait_for_step, workflow

TIMEOUT_MS = 30_000


@pytest.fixture
def engine_here(app_server: str, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Save workflows and start runs from the test process on the app's database and broker."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()
    return pg_url


def saved_run(pg_url: str, name: str, definition: dict[str, Any], via: str = "api") -> str:
    """Save `definition` as a new workflow `name` (v1) and start a run of it."""
    with session_scope(pg_url) as session:
        workflow_id = str(workflows.create_workflow(session, name, definition=definition).id)
    return run_again(workflow_id, via)


def run_again(workflow_id: str, via: str = "api") -> str:
    version = workflows.saved_version(workflow_id)
    assert version is not None
    return start_run(version.definition, {}, workflow_id=workflow_id, version_id=version.version_id,
                     started_by="cli:e2e", started_via=via)  # fmt: skip


def failing() -> dict[str, Any]:
    return workflow(
        [node("START", "start"), node("ADD", "tool.python", tool="add", args={"a": 20, "b": 22}),
         node("QUERY", "tool.sql", connection="nowhere", query="select 1"), node("END", "end")],
        [("START", "ADD"), ("ADD", "QUERY"), ("QUERY", "END")],
        name="adds then fails",
    ).to_dict()  # fmt: skip


def quick() -> dict[str, Any]:
    return workflow([node("START", "start"), node("END", "end")], [("START", "END")], name="quick").to_dict()


def test_a_finished_runs_page_shows_its_steps_an_output_and_an_error_code(
    page: Page, app_server: str, login_as, engine_here: str, screenshot
) -> None:
    run_id = saved_run(engine_here, f"Adds then fails {uuid.uuid4().hex[:6]}", failing())
    assert wait_for_run(run_id).status == "failed"
    login_as(page, "viewer")
    page.goto(f"{app_server}/runs/{run_id}")

    expect(page.locator("#run-status")).to_contain_text("failed", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("run-version")).to_contain_text("v1")
    add = page.locator('[data-testid="run-step"][data-node-id="ADD"]')
    expect(add).to_have_attribute("data-status", "succeeded")
    expect(add.get_by_test_id("step-outputs")).to_contain_text('"out": 42')
    query = page.locator('[data-testid="run-step"][data-node-id="QUERY"]')
    expect(query).to_have_attribute("data-status", "failed")
    expect(query.get_by_test_id("step-error-code")).to_have_text("connection_unknown")
    expect(query.get_by_test_id("step-error-field")).to_have_text("connection")
    # The graph, read-only, coloured by step state; the node that never ran is skipped.
    canvas = page.locator("#run-canvas")
    expect(canvas.locator('[data-node-id="QUERY"]')).to_have_attribute("data-status", "failed")
    expect(canvas.locator('[data-node-id="END"]')).to_have_attribute("data-status", "skipped")
    expect(page.locator("#run-cancel")).to_have_count(0)  # it ended (and a viewer cannot cancel)
    screenshot("finished")  # test-artifacts/, for a look at the page

    canvas.locator('[data-node-id="ADD"]').click()  # picking a node lists only its steps
    expect(page.get_by_test_id("run-step")).to_have_count(1)
    page.locator("#run-steps-all").click()
    expect(page.get_by_test_id("run-step")).to_have_count(3)


def test_cancel_with_confirmation_stops_a_running_run(
    page: Page, app_server: str, login_as, engine_here: str
) -> None:
    waits = workflow(
        [node("START", "start"), node("WAIT", "delay", seconds=3600), node("END", "end")],
        [("START", "WAIT"), ("WAIT", "END")],
        name="waits an hour",
    ).to_dict()
    run_id = saved_run(engine_here, f"Waits {uuid.uuid4().hex[:6]}", waits)
    wait_for_step(run_id, "WAIT", "waiting")
    login_as(page, "operator")
    page.goto(f"{app_server}/runs/{run_id}")
    expect(page.locator("#run-status")).to_contain_text("running", timeout=TIMEOUT_MS)
    expect(page.locator('#run-canvas [data-node-id="WAIT"]')).to_have_attribute("data-status", "waiting")

    page.locator("#run-cancel").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Cancel this run?")
    dialog.get_by_role("button", name="Keep running").click()  # changing one's mind cancels nothing
    expect(dialog).to_have_count(0)
    assert wait_for_run(run_id, timeout=1, statuses=("running",)).status == "running"

    page.locator("#run-cancel").click()
    page.locator("#run-cancel-confirm").click()
    expect(page.locator("#run-status")).to_contain_text("cancelled", timeout=TIMEOUT_MS)
    expect(page.locator("#run-cancel")).to_have_count(0)
    assert wait_for_run(run_id).status == "cancelled"


def test_filters_narrow_the_runs_list_pages_move_and_a_row_opens_its_run(
    page: Page, app_server: str, login_as, engine_here: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    many = saved_run(engine_here, f"Paged {tag}", quick())
    with session_scope(engine_here) as session:
        paged_id = str(workflows.list_workflows(session, search=f"Paged {tag}")[0].id)
    runs = [many, *(run_again(paged_id) for _ in range(26))]
    few = [saved_run(engine_here, f"Few {tag}", quick(), via="cli")]
    for run_id in runs + few:
        wait_for_run(run_id)

    login_as(page, "viewer")
    page.goto(f"{app_server}/runs")
    rows = page.get_by_test_id("run-row")
    expect(rows.first).to_be_visible(timeout=TIMEOUT_MS)

    page.locator("#runs-search").fill(f"paged {tag}")  # part of a workflow's name
    expect(rows).to_have_count(25, timeout=TIMEOUT_MS)
    expect(page.locator("#runs-page-label")).to_have_text("1–25")
    page.locator("#runs-older").click()
    expect(rows).to_have_count(2, timeout=TIMEOUT_MS)
    expect(page.locator("#runs-page-label")).to_have_text("26–27")
    expect(page.locator(f'[data-run-id="{runs[0]}"]')).to_be_visible()  # the oldest is on the last page
    expect(page.locator("#runs-older")).to_be_disabled()
    page.locator("#runs-newer").click()
    expect(rows).to_have_count(25, timeout=TIMEOUT_MS)
    expect(page.locator(f'[data-run-id="{runs[-1]}"]')).to_be_visible()

    page.locator("#runs-clear-filters").click()
    page.locator("#runs-filter-workflow").click()
    page.get_by_role("option", name=f"Few {tag}").click()
    expect(rows).to_have_count(1, timeout=TIMEOUT_MS)
    expect(rows.first).to_have_attribute("data-run-id", few[0])
    page.locator("#runs-filter-status").click()
    page.get_by_role("option", name="failed").click()
    expect(page.locator("#runs-no-match")).to_be_visible(timeout=TIMEOUT_MS)
    page.locator("#runs-filter-status").click()
    page.get_by_role("option", name="succeeded").click()
    expect(rows).to_have_count(1, timeout=TIMEOUT_MS)

    rows.first.click()  # a row opens its run's page
    expect(page).to_have_url(re.compile(f"/runs/{few[0]}$"), timeout=TIMEOUT_MS)
    expect(page.locator("#run-status")).to_contain_text("succeeded", timeout=TIMEOUT_MS)
    page.goto(f"{app_server}/runs/{uuid.uuid4()}")
    expect(page.locator("#run-not-found")).to_be_visible(timeout=TIMEOUT_MS)

"""The editor's Triggers tab in Chromium, against `flowloom up` (whose scheduler fires the ticks):
a schedule shows its next runs and pauses and resumes; a webhook is added, configured and saved."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect
from sqlalchemy import select, update

from engine import workflows
from models.db import get_engine, session_scope
from models.tables import Run
from models.triggers import Trigger

TIMEOUT_MS = 20_000
NIGHTLY = {"id": "nightly", "kind": "schedule", "config": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}}


def _workflow(pg_url: str) -> str:
    definition = {
        "id": "triggered", "name": "Triggered",
        "nodes": [{"id": "start", "type": "start", "position": {"x": 0, "y": 0}},
                  {"id": "end", "type": "end", "position": {"x": 300, "y": 0}}],
        "edges": [{"id": "start__end", "source": "start", "target": "end"}],
        "triggers": [NIGHTLY],
    }  # fmt: skip
    with session_scope(pg_url) as session:
        workflow_id = workflows.create_workflow(session, f"Triggers {uuid.uuid4().hex[:6]}").id
        workflows.save_version(session, workflow_id, definition)
    return str(workflow_id)


def _row(page: Page, key: str):
    return page.locator(f'[data-testid=trigger-row][data-key="{key}"]')


def test_the_triggers_tab_shows_pauses_adds_and_the_scheduler_of_flowloom_up_fires(
    page: Page, app_server: str, login_as: Callable[..., str], pg_url: str, screenshot
) -> None:
    workflow_id = _workflow(pg_url)
    login_as(page, role="editor")
    page.goto(f"{app_server}/workflows/{workflow_id}")
    page.wait_for_selector("#editor[data-loaded=true]", timeout=60_000)
    page.click("#tab-triggers")
    nightly = _row(page, "nightly")
    expect(nightly).to_have_attribute("data-status", "live", timeout=TIMEOUT_MS)
    expect(nightly.locator("[data-testid=trigger-next-fire]")).to_have_count(5)
    expect(nightly.locator("[data-testid=trigger-next-fire]").first).to_contain_text("03:00 CE")

    nightly.locator("[data-testid=trigger-pause]").click()
    expect(nightly).to_have_attribute("data-status", "paused", timeout=TIMEOUT_MS)
    nightly.locator("[data-testid=trigger-resume]").click()
    expect(nightly).to_have_attribute("data-status", "live", timeout=TIMEOUT_MS)

    # A webhook: added without its signing secret it is invalid; with it, saved, it gets its URL.
    page.click("#trigger-new-kind")
    page.get_by_role("option", name="Webhook (inbound)", exact=True).click()
    page.click("#trigger-add")
    hook = _row(page, "webhook")
    expect(hook).to_have_attribute("data-status", "invalid", timeout=TIMEOUT_MS)
    page.locator('#trigger-config-form [data-field="secret"] input').fill("hook-secret")
    expect(hook).to_have_attribute("data-status", "unsaved", timeout=TIMEOUT_MS)
    page.click("#save-button")
    expect(page.locator("#saved-indicator")).to_be_visible(timeout=TIMEOUT_MS)
    expect(hook).to_have_attribute("data-status", "live", timeout=TIMEOUT_MS)
    expect(hook.locator("[data-testid=trigger-webhook-path]")).to_contain_text("/api/hooks/")
    screenshot("triggers-tab")

    # The scheduler `flowloom up` started fires a tick that has come: make the nightly one due now.
    engine = get_engine(pg_url)
    berlin = datetime.now(ZoneInfo("Europe/Berlin"))
    tick = berlin.replace(hour=3, minute=0, second=0, microsecond=0)
    tick = (tick if tick <= berlin else tick - timedelta(days=1)).astimezone(UTC)  # the last 03:00 tick
    with engine.begin() as conn:
        trigger_id = conn.execute(
            update(Trigger).where(Trigger.workflow_id == workflow_id, Trigger.key == "nightly")
            .values(next_fire_at=tick).returning(Trigger.id)
        ).scalar_one()  # fmt: skip
    deadline = time.monotonic() + 30
    runs: list = []
    while not runs and time.monotonic() < deadline:
        with engine.connect() as conn:
            runs = conn.execute(select(Run.id, Run.started_via).where(Run.trigger_id == trigger_id)).all()
        time.sleep(0.2)
    assert runs and runs[0].started_via == "trigger", "the scheduler of `flowloom up` fired nothing"

"""The Dead letters page in Chromium: an admin sees the error, source and payload preview, replays one
and pages through them; an operator is refused."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect

from app.pages.dead_letters_state import PAGE_SIZE
from engine import dead_letters, triggers, workflows
from engine.settings import get_settings
from models.db import get_engine, session_scope

TIMEOUT_MS = 30_000


@pytest.fixture
def webhook_dead_letter(app_server: str, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """A saved workflow with a webhook trigger and one dead letter of it (what a failed delivery leaves)."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()
    defn = {
        "id": "dl", "name": "dead letter page", "nodes": [
            {"id": "start", "type": "start", "config": {}}, {"id": "end", "type": "end", "config": {}},
        ], "edges": [{"id": "e0", "source": "start", "target": "end"}],
        "triggers": [{"id": "hook", "kind": "webhook", "config": {"secret": "hook-secret"}}],
    }  # fmt: skip
    with session_scope(pg_url) as session:
        wid = workflows.create_workflow(session, f"dead letters {uuid.uuid4().hex[:6]}").id
        workflows.save_version(session, wid, defn)
    with get_engine(pg_url).begin() as conn:
        (hook,) = triggers.list_for_workflow(conn, wid)
        return dead_letters.record(
            conn, source="webhook", error="the e2e delivery could not be handled", trigger_id=hook.id,
            payload={"inputs": {"order": "A-17"}, "delivery_key": f"e2e-{uuid.uuid4().hex[:8]}"},
        )  # fmt: skip


def test_an_admin_replays_a_dead_letter_from_the_page(
    page: Page, app_server: str, login_as, webhook_dead_letter, screenshot
):
    login_as(page, "admin")
    page.goto(f"{app_server}/dead-letters")
    row = page.locator(f'[data-dead-letter-id="{webhook_dead_letter}"]')
    expect(row).to_contain_text("the e2e delivery could not be handled", timeout=TIMEOUT_MS)
    expect(row).to_contain_text("webhook")
    expect(row.get_by_test_id("dead-letter-preview")).to_contain_text('"order":"A-17"')
    expect(page.locator("#nav-dead-letters")).to_be_visible()
    screenshot("listed")  # test-artifacts/, for a look at the page

    row.get_by_test_id("dead-letter-replay").click()
    expect(page.get_by_text("Replayed: run started")).to_be_visible(timeout=TIMEOUT_MS)
    expect(row).to_have_count(0, timeout=TIMEOUT_MS)  # the page lists those still waiting
    replayed = dead_letters.get(webhook_dead_letter)
    assert replayed is not None and replayed.replay_run_id and replayed.replayed_at is not None


def test_an_operator_is_refused_the_dead_letters_page(page: Page, app_server: str, login_as):
    login_as(page, "operator")
    response = page.goto(f"{app_server}/dead-letters")
    assert response is not None and response.status == 403
    page.goto(f"{app_server}/runs")
    expect(page.locator("#sidebar")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#nav-dead-letters")).to_have_count(0)


def test_an_admin_pages_through_the_dead_letters(
    page: Page, app_server: str, login_as, webhook_dead_letter, pg_url: str
):
    first = dead_letters.get(webhook_dead_letter)
    assert first is not None
    with get_engine(pg_url).begin() as conn:
        for n in range(PAGE_SIZE + 2):  # more than a page waiting, whatever the other tests left
            dead_letters.record(conn, source="webhook", error=f"paging e2e {n}", trigger_id=first.trigger_id,
                                payload={"n": n})  # fmt: skip
    total = dead_letters.list_dead_letters(replayed=False, limit=1, database_url=pg_url).total
    login_as(page, "admin")
    page.goto(f"{app_server}/dead-letters")
    previous, following = page.get_by_label("Previous page"), page.get_by_label("Next page")
    expect(page.get_by_text(f"1–{PAGE_SIZE} of {total}")).to_be_visible(timeout=TIMEOUT_MS)
    expect(previous).to_be_disabled()
    expect(page.get_by_test_id("dead-letter-row")).to_have_count(PAGE_SIZE)

    following.click()
    shown = min(2 * PAGE_SIZE, total)
    expect(page.get_by_text(f"{PAGE_SIZE + 1}–{shown} of {total}")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("dead-letter-row")).to_have_count(shown - PAGE_SIZE)
    expect(previous).to_be_enabled()

    previous.click()
    expect(page.get_by_text(f"1–{PAGE_SIZE} of {total}")).to_be_visible(timeout=TIMEOUT_MS)
    expect(previous).to_be_disabled()

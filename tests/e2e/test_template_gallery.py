"""The template gallery in Chromium: search, filter by category, use a template, it opens in the
editor and runs; a viewer browses but cannot use or import."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlmodel import select

from engine.template_gallery import all_templates, list_templates
from models.db import session_scope
from models.tables import Workflow, WorkflowVersion
from tests.e2e.doc_screenshots import save_doc_screenshot

TIMEOUT_MS = 30_000


def test_search_filter_use_a_template_and_run_it_in_the_editor(
    clean_db: str, page: Page, app_server: str, login_as
) -> None:
    login_as(page, "editor")
    page.goto(f"{app_server}/templates")
    cards = page.get_by_test_id("template-card")
    expect(cards).to_have_count(len(all_templates()), timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("template-preview").first).to_be_visible()
    page.set_viewport_size({"width": 1440, "height": 1000})
    save_doc_screenshot(page, "screenshot-templates.png")

    page.locator("#template-search").fill("quorum")
    expect(cards).to_have_count(1)
    quorum = cards.first
    expect(quorum).to_have_attribute("data-template-key", "approval-quorum-deadline")
    expect(quorum.get_by_test_id("need-input")).to_have_text(["item", "amount"])

    page.locator("#template-search").fill("")
    page.locator("[data-testid=category-chip][data-category=events]").click()
    expect(cards).to_have_count(len(list_templates(category="events")))
    expect(
        page.locator("[data-testid=template-card][data-template-key=kafka-order-pipeline]")
    ).to_be_visible()
    expect(page.locator("[data-testid=template-card][data-template-key=dag-phases]")).to_have_count(0)
    page.locator("#template-search").fill("no such template anywhere")
    expect(page.locator("#templates-no-match")).to_be_visible()

    page.locator("#template-search").fill("fan-out")
    page.locator('[data-testid=category-chip][data-category=""]').click()
    expect(cards).to_have_count(1)
    page.locator("#use-template-parallel-fan-out").click()

    page.wait_for_url(re.compile(r"/workflows/[0-9a-f-]{36}$"), timeout=TIMEOUT_MS)
    page.wait_for_selector("#editor[data-loaded=true]", timeout=60_000)
    nodes = page.locator("[data-testid=flow-node]")
    expect(nodes).to_have_count(5)
    expect(page.locator('[data-testid=flow-node][data-node-id="merge"]')).to_be_visible()
    page.click("#run-button")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded", timeout=90_000)

    workflow_id = page.url.rsplit("/", 1)[1]
    with session_scope(clean_db) as session:
        workflow = session.exec(select(Workflow).where(Workflow.name == "Parallel fan-out")).one()
        notes = session.exec(
            select(WorkflowVersion.note).where(WorkflowVersion.workflow_id == workflow.id)
        ).all()
    assert str(workflow.id) == workflow_id
    assert notes == ["from template parallel-fan-out"]


def test_a_viewer_browses_the_gallery_but_cannot_use_or_import(
    clean_db: str, page: Page, app_server: str, login_as
) -> None:
    login_as(page, "viewer")
    page.goto(f"{app_server}/templates")
    expect(page.get_by_test_id("template-card")).to_have_count(len(all_templates()), timeout=TIMEOUT_MS)
    expect(page.locator("#use-template-approval-flow")).to_be_disabled()
    expect(page.locator("#import-template-button")).to_have_count(0)
    with session_scope(clean_db) as session:
        assert session.exec(select(Workflow)).all() == []


def test_import_from_file_refuses_a_broken_file_then_opens_a_good_one(
    clean_db: str, page: Page, app_server: str, login_as, tmp_path: Path
) -> None:
    login_as(page, "editor")
    page.goto(f"{app_server}/templates")
    expect(page.get_by_test_id("template-card").first).to_be_visible(timeout=TIMEOUT_MS)
    page.click("#import-template-button")
    chooser = page.locator("#template-upload input[type=file]")

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: Nodes missing\n", encoding="utf-8")
    chooser.set_input_files(str(broken))
    expect(page.locator("#template-import-error")).to_contain_text("broken.yaml: nodes: Field required")

    good = tmp_path / "hello.json"
    good.write_text(
        '{"name": "Imported hello", "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}],'
        ' "edges": [{"id": "e", "source": "start", "target": "end"}]}',
        encoding="utf-8",
    )
    chooser.set_input_files(str(good))
    page.wait_for_url(re.compile(r"/workflows/[0-9a-f-]{36}$"), timeout=TIMEOUT_MS)
    page.wait_for_selector("#editor[data-loaded=true]", timeout=60_000)
    expect(page.locator("[data-testid=flow-node]")).to_have_count(2)
    with session_scope(clean_db) as session:
        assert session.exec(select(Workflow.name)).all() == ["Imported hello"]

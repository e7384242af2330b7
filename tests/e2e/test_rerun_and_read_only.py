"""Journeys in Chromium: re-run a finished run from one of its steps and fork it with new inputs from
its page; a viewer cannot change anything in the editor; leaving unsaved changes asks first."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import col, func, select

from engine.runs import get_run
from engine.settings import get_settings
from models.db import session_scope
from models.tables import WorkflowVersion
from tests.e2e.test_editor import Editor
from tests.e2e.test_run_detail_page import TIMEOUT_MS, saved_run
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow


@pytest.fixture
def engine_here(app_server: str, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Save workflows and start runs from the test process on the app's database and broker."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()
    return pg_url


def echoes() -> dict[str, Any]:
    defn = workflow(
        [node("START", "start"), node("FIRST", "tool.python", tool="echo", args={"value": "{{ input.n }}"}),
         node("SECOND", "tool.python", tool="echo", args={"value": "{{ steps.FIRST.output }}"}), node("END", "end")],
        [("START", "FIRST"), ("FIRST", "SECOND"), ("SECOND", "END")],
        name="echoes",
    ).to_dict()  # fmt: skip
    defn["inputs"] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    for i, spec in enumerate(defn["nodes"]):  # apart on the canvas, left to right
        spec["position"] = {"x": 60 + 240 * i, "y": 120}
    return defn


def step(page: Page, node_id: str):
    return page.locator(f'[data-testid="run-step"][data-node-id="{node_id}"]')


def test_rerun_from_a_step_and_fork_with_new_inputs_from_the_run_page(
    page: Page, app_server: str, login_as, engine_here: str, screenshot
) -> None:
    run_id = saved_run(engine_here, f"Echoes {uuid.uuid4().hex[:6]}", echoes())
    first = wait_for_run(run_id)
    assert first.status == "succeeded", first.error

    login_as(page, "viewer")  # a viewer sees the run but may not start it again
    page.goto(f"{app_server}/runs/{run_id}")
    expect(step(page, "SECOND")).to_have_attribute("data-status", "succeeded", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("step-rerun")).to_have_count(0)
    expect(page.locator("#run-fork")).to_have_count(0)

    login_as(page, "operator")
    page.goto(f"{app_server}/runs/{run_id}")
    step(page, "SECOND").get_by_test_id("step-rerun").click()
    expect(page).not_to_have_url(re.compile(f"/runs/{run_id}$"), timeout=TIMEOUT_MS)
    new_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.locator("#run-source")).to_contain_text("from step SECOND", timeout=TIMEOUT_MS)
    expect(page.locator("#run-status")).to_contain_text("succeeded", timeout=TIMEOUT_MS)
    for reused in ("START", "FIRST"):
        expect(step(page, reused).get_by_test_id("step-reused")).to_have_count(1)
    for ran in ("SECOND", "END"):
        expect(step(page, ran).get_by_test_id("step-reused")).to_have_count(0)
    screenshot("rerun")  # test-artifacts/, for a look at the page
    again = steps_by_node(wait_for_run(new_id))
    assert again["FIRST"]["reused_from"] == steps_by_node(first)["FIRST"]["id"]
    assert again["SECOND"]["reused_from"] is None

    page.locator("#run-source").click()  # back to the run it came from
    expect(page).to_have_url(re.compile(f"/runs/{run_id}$"), timeout=TIMEOUT_MS)
    expect(page.locator("#run-source")).to_have_count(0, timeout=TIMEOUT_MS)  # its page has loaded
    page.locator("#run-fork").click()
    inputs = page.locator("#run-fork-inputs")
    inputs.fill('{"n": "seven"}')
    page.locator("#run-fork-start").click()
    expect(page.get_by_test_id("run-fork-issue")).to_contain_text("input.n", timeout=TIMEOUT_MS)
    expect(inputs).to_have_value('{"n": "seven"}')  # what was typed stays, to be fixed
    inputs.fill('{"n": 7}')
    page.locator("#run-fork-start").click()
    expect(page).not_to_have_url(re.compile(f"/runs/{run_id}$"), timeout=TIMEOUT_MS)
    expect(page.locator("#run-source")).to_contain_text("Fork of", timeout=TIMEOUT_MS)
    expect(page.locator("#run-status")).to_contain_text("succeeded", timeout=TIMEOUT_MS)
    expect(step(page, "SECOND").get_by_test_id("step-outputs")).to_contain_text('"out": 7')
    forked = get_run(page.url.rstrip("/").rsplit("/", 1)[-1])
    assert forked is not None and forked.inputs == {"n": 7} and forked.source_run_id == run_id


def saved_workflow(pg_url: str) -> str:
    from engine import workflows

    with session_scope(pg_url) as session:
        return str(
            workflows.create_workflow(session, f"Read only {uuid.uuid4().hex[:6]}", definition=echoes()).id
        )


def versions_of(pg_url: str, workflow_id: str) -> int:
    with session_scope(pg_url) as session:
        query = select(func.count()).where(col(WorkflowVersion.workflow_id) == uuid.UUID(workflow_id))
        return session.exec(query).one()


def test_a_viewer_cannot_change_anything_in_the_editor(
    page: Page, app_server: str, login_as, engine_here: str, screenshot
) -> None:
    workflow_id = saved_workflow(engine_here)
    login_as(page, "viewer")
    ed = Editor(page, app_server, workflow_id).open()
    expect(page.locator("#read-only-badge")).to_be_visible()
    expect(page.locator("[data-testid=palette-item]")).to_have_count(0)  # nothing to add
    for tool in ("#save-button", "#toolbar-undo", "#toolbar-paste", "#toolbar-delete", "#toolbar-import",
                 "#toolbar-layout"):  # fmt: skip
        expect(page.locator(tool)).to_have_count(0)
    expect(ed.nodes()).to_have_count(4)
    expect(ed.edges()).to_have_count(3)

    # Dragging a node moves nothing (at most the view pans); drawing a connection adds none.
    placed = page.locator('.react-flow__node[data-id="FIRST"]')
    before = placed.evaluate("el => el.style.transform")
    assert "translate" in before
    head = ed.node("FIRST").locator(".fl-head").bounding_box()
    assert head
    page.mouse.move(head["x"] + 10, head["y"] + head["height"] / 2)
    page.mouse.down()
    page.mouse.move(head["x"] + 170, head["y"] + 140, steps=12)
    page.mouse.up()
    assert placed.evaluate("el => el.style.transform") == before
    ed.connect("START", "out", "END")
    expect(ed.edges()).to_have_count(3)

    # A node can be selected and read, but its form is disabled; Delete deletes nothing.
    ed.select("FIRST")
    expect(page.locator("#node-id-input")).to_have_value("FIRST")
    expect(page.locator("#node-id-input")).to_be_disabled()
    expect(page.locator("#node-label-input")).to_be_disabled()
    expect(page.locator("#node-config-form input, #node-config-form textarea").first).to_be_disabled()
    page.keyboard.press("Delete")
    expect(ed.nodes()).to_have_count(4)
    screenshot("viewer-editor")
    page.locator("#tab-workflow").click()
    expect(page.locator("#workflow-inputs")).to_be_disabled()

    # Export (Python too) still works: looking is allowed. Its answer comes after those of every
    # earlier event of this tab (Reflex handles a tab's events in order), so by then a refusal of
    # anything above would be showing.
    page.click("#toolbar-export")
    page.locator("#export-format").get_by_role("radio", name="Python").click()
    expect(page.locator("#export-text")).to_have_value(re.compile(r"from engine\.dsl import Node, Workflow"))
    page.keyboard.press("Escape")
    expect(page.locator("[data-sonner-toast]").filter(has_text="needs the editor role")).to_have_count(0)
    expect(page.locator("#saved-indicator")).to_be_visible()
    assert versions_of(engine_here, workflow_id) == 1


def test_leaving_the_editor_with_unsaved_changes_asks_first(
    page: Page, app_server: str, login_as, engine_here: str
) -> None:
    workflow_id = saved_workflow(engine_here)
    login_as(page, "editor")
    ed = Editor(page, app_server, workflow_id).open()
    ed.configure("FIRST")
    page.locator("#node-label-input").fill("Renamed")
    expect(page.locator("#unsaved-indicator")).to_be_visible()

    asked: list[tuple[str, str]] = []

    def answer(accept: bool):
        def handle(dialog) -> None:
            asked.append((dialog.type, dialog.message))
            dialog.accept() if accept else dialog.dismiss()

        return handle

    page.once("dialog", answer(False))
    page.locator("#back-to-workflows").click()
    assert asked == [("confirm", "This workflow has unsaved changes. Leave without saving?")]
    expect(page.locator("#unsaved-indicator")).to_be_visible()  # still here, the change kept
    assert page.url.rstrip("/").endswith(f"/workflows/{workflow_id}")

    page.once("dialog", answer(True))  # a reload or a typed address gets the browser's own prompt
    page.goto(f"{app_server}/workflows")
    assert asked[-1][0] == "beforeunload"
    expect(page).to_have_url(re.compile("/workflows/?$"), timeout=TIMEOUT_MS)

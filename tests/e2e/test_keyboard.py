"""The app without a mouse, in Chromium: Tab to a palette item and Enter puts its node on the canvas;
clickable rows (workflows, inbox) are reached with Tab and opened with Enter; `?` opens the
keyboard-shortcuts list (and axe finds nothing serious in it), `/` jumps to the page's search box."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlmodel import select

from app.db import db_session
from engine.settings import get_settings
from engine.workflows import create_workflow
from models.db import session_scope
from models.tables import Workflow, WorkflowVersion
from tests.axe.axe import run_axe, serious_ones
from tests.integration.engine_helpers import node, wait_for_step, workflow

TIMEOUT_MS = 20_000


def tab_to(page: Page, target: Locator, limit: int = 80) -> None:
    """Press Tab until `target` has the keyboard focus (fail after `limit` presses)."""
    handle = target.element_handle(timeout=TIMEOUT_MS)
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(el) => document.activeElement === el", handle):
            return
    focused = page.evaluate("() => document.activeElement && document.activeElement.outerHTML.slice(0, 200)")
    pytest.fail(f"Tab never reached the element; the focus is on {focused}")


@pytest.fixture
def empty_workflow(pg_url: str) -> str:
    with session_scope(pg_url) as session:
        row = Workflow(name="Keyboard build")
        session.add(row)
        session.flush()
        return str(row.id)


def test_tab_to_a_palette_item_and_enter_adds_its_node_to_the_canvas(
    page: Page, app_server: str, login_as: Callable[..., str], empty_workflow: str, pg_url: str
) -> None:
    login_as(page, "editor")
    page.goto(f"{app_server}/workflows/{empty_workflow}")
    page.wait_for_selector("#editor[data-loaded=true]", timeout=60_000)
    nodes = page.locator("[data-testid=flow-node]")
    expect(nodes).to_have_count(0)

    start = page.locator('[data-testid=palette-item][data-node-type="start"]')
    page.locator("#palette-search").focus()  # from the search box, Tab walks down the palette
    tab_to(page, start)
    expect(start).to_have_attribute("role", "button")
    page.keyboard.press("Enter")
    expect(nodes).to_have_count(1, timeout=TIMEOUT_MS)
    expect(nodes.first).to_have_attribute("data-node-type", "start")
    expect(page.locator("#unsaved-indicator")).to_be_visible()

    # Space does the same, and a second node is not dropped on top of the first.
    end = page.locator('[data-testid=palette-item][data-node-type="end"]')
    end.focus()
    page.keyboard.press(" ")
    expect(nodes).to_have_count(2, timeout=TIMEOUT_MS)
    first, second = (nodes.nth(i).bounding_box() for i in range(2))
    assert first and second and abs(first["y"] - second["y"]) >= 40, (first, second)

    page.keyboard.press("Control+s")  # the saved graph has both nodes
    expect(page.locator("#saved-indicator")).to_be_visible(timeout=TIMEOUT_MS)
    assert {n["type"] for n in saved_nodes(pg_url, empty_workflow, 1)} == {"start", "end"}

    # Arrow keys move the selected node; the move is an edit like a drag, and it is saved.
    before = {n["id"]: n["position"] for n in saved_nodes(pg_url, empty_workflow, 1)}
    end_node = page.locator('[data-testid=flow-node][data-node-type="end"]')
    end_node.locator(".fl-head").click()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#unsaved-indicator")).to_be_visible(timeout=TIMEOUT_MS)
    page.keyboard.press("Control+s")
    expect(page.locator("#saved-indicator")).to_be_visible(timeout=TIMEOUT_MS)
    after = {n["id"]: n for n in saved_nodes(pg_url, empty_workflow, 2)}
    moved = next(n for n in after.values() if n["type"] == "end")
    assert moved["position"]["x"] > before[moved["id"]]["x"] + 10, (before, moved)
    assert abs(moved["position"]["y"] - before[moved["id"]]["y"]) < 8  # sideways only (snapped to the grid)


def saved_nodes(pg_url: str, workflow_id: str, version: int) -> list[dict]:
    """The nodes of version `version` of the workflow, as saved."""
    with session_scope(pg_url) as session:
        row = session.exec(
            select(WorkflowVersion).where(
                WorkflowVersion.workflow_id == uuid.UUID(workflow_id), WorkflowVersion.version == version
            )
        ).one()
        return row.definition["nodes"]


def test_the_workflow_list_opens_a_workflow_from_the_keyboard(
    page: Page, app_server: str, login_as: Callable[..., str], pg_url: str
) -> None:
    with session_scope(pg_url) as session:
        row = Workflow(name="Reach me by keyboard")
        session.add(row)
        session.flush()
        workflow_id = str(row.id)
    login_as(page, "viewer")
    page.goto(f"{app_server}/workflows")
    link = page.locator(f'[data-workflow-id="{workflow_id}"] [data-testid=workflow-open]')
    expect(link).to_be_visible(timeout=TIMEOUT_MS)
    tab_to(page, link)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/workflows/{workflow_id}/?$"))
    page.wait_for_selector("#editor[data-loaded=true]", timeout=60_000)


def test_an_inbox_request_is_opened_from_the_keyboard(
    page: Page, app_server: str, login_as: Callable[..., str], pg_url: str, redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from engine.runs import start_run

    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()
    email = login_as(page, "operator")
    defn = workflow(
        [node("START", "start"), node("OK", "human.approval", title="Keyboard request",
                                      approvers={"users": [email]}), node("END", "end")],
        [("START", "OK"), ("OK", "END", "approved")],
        mode="state_machine",
    )  # fmt: skip
    with db_session() as session:
        saved = create_workflow(session, "Keyboard inbox", definition=defn.model_dump(mode="json"))
    run_id = start_run(defn, {}, workflow_id=str(saved.id))
    wait_for_step(run_id, "OK", "waiting")

    page.goto(f"{app_server}/inbox")
    opener = page.get_by_test_id("approval-row").get_by_test_id("approval-open")
    expect(opener).to_have_text("Keyboard request", timeout=TIMEOUT_MS)
    tab_to(page, opener)
    page.keyboard.press("Enter")
    expect(page.locator("#approval-detail")).to_contain_text("Keyboard request", timeout=TIMEOUT_MS)
    # The decision form is labelled: the comment box is found by its label's text.
    expect(page.get_by_label("Comment (optional)")).to_be_visible()


def test_question_mark_opens_the_shortcuts_list_and_slash_jumps_to_search(
    page: Page, app_server: str, login_as: Callable[..., str]
) -> None:
    login_as(page, "viewer")
    page.goto(f"{app_server}/templates")
    expect(page.get_by_test_id("template-card").first).to_be_visible(timeout=TIMEOUT_MS)
    dialog = page.locator("#shortcuts-dialog")
    expect(dialog).to_have_count(0)

    page.locator("body").press("?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Keyboard shortcuts")
    expect(dialog).to_contain_text("On a palette item: add that node")
    assert not serious_ones(run_axe(page)), "the open shortcuts list has serious accessibility violations"
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)

    page.locator("body").press("/")
    expect(page.locator("#template-search")).to_be_focused()
    page.keyboard.type("?")  # typed into the field: the list stays closed
    expect(page.locator("#template-search")).to_have_value("?")
    expect(dialog).to_have_count(0)

    page.locator("#shortcuts-button").click()  # the sidebar's button opens the same list
    expect(dialog).to_be_visible()


def test_the_editor_has_the_shortcuts_list_too(
    page: Page, app_server: str, login_as: Callable[..., str], empty_workflow: str
) -> None:
    login_as(page, "editor")
    page.goto(f"{app_server}/workflows/{empty_workflow}")
    page.wait_for_selector("#editor[data-loaded=true]", timeout=60_000)
    page.locator(".react-flow__pane").click()
    page.keyboard.press("?")
    expect(page.locator("#shortcuts-dialog")).to_contain_text("Ctrl+Shift+Z")

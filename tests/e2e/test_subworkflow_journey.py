"""Build a parent with a sub-workflow in the editor (the called workflow picked from a list), run it,
and follow the link from the parent step to the child run and back, in Chromium."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect

from engine import workflows
from engine.runs import get_run, list_runs
from engine.settings import get_settings
from models.db import session_scope
from models.tables import Workflow
from tests.e2e.test_editor import Editor
from tests.integration.engine_helpers import node, workflow

TIMEOUT_MS = 60_000


@pytest.fixture
def engine_here(app_server: str, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Save workflows and read runs from the test process, on the app's database."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()
    return pg_url


def test_build_a_parent_with_a_sub_workflow_and_see_the_child_run(
    page: Page, app_server: str, login_as, engine_here: str
) -> None:
    greeter = workflow(
        [node("start", "start"), node("end", "end")],
        [("start", "end")],
        name="Greeter",
        inputs={"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        outputs={"greeting": "Hello, {{ input.name }}"},
    )
    name = f"Greeter {uuid.uuid4().hex[:6]}"  # one option of that name, whatever else the session saved
    with session_scope(engine_here) as session:
        child_id = str(workflows.create_workflow(session, name, definition=greeter.to_dict()).id)
        parent = Workflow(name="Greets through a sub-workflow")
        session.add(parent)
        session.flush()
        parent_id = str(parent.id)

    login_as(page, role="editor")
    ed = Editor(page, app_server, parent_id).open()
    ed.drop("start", 120, 100)
    ed.drop("subworkflow", 300, 260)
    ed.drop("end", 470, 440)
    ed.configure("subworkflow")
    # The workflow is picked from the workspace's saved ones, which pins its newest version.
    ed.choose("workflow_id", f"{name} (v1)")
    expect(ed.field("version").locator("button").first).to_have_text(
        "v1 · published · created", timeout=TIMEOUT_MS
    )
    ed.fill("inputs", '{"name": "Ada"}')
    ed.click_canvas()
    # The node's ports are the called workflow's: its input "name" and its output "greeting".
    expect(ed.handle("subworkflow", "greeting")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(ed.handle("subworkflow", "name")).to_have_count(1)
    ed.connect("start", "out", "subworkflow")
    ed.connect("subworkflow", "greeting", "end")
    expect(ed.edges()).to_have_count(2)
    ed.save()
    with session_scope(engine_here) as session:
        saved = workflows.load_workflow(session, uuid.UUID(parent_id))
    assert saved is not None and saved.definition is not None
    call = next(n for n in saved.definition["nodes"] if n["id"] == "subworkflow")
    assert (call["config"]["workflow_id"], call["config"]["version"]) == (child_id, 1)

    page.click("#run-button")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded", timeout=TIMEOUT_MS)
    (summary,) = list_runs(workflow_id=parent_id)
    parent_run = get_run(summary.id)
    assert parent_run is not None and parent_run.outputs == {"out": "Hello, Ada"}  # the end got "greeting"
    step = next(s for s in parent_run.steps if s["node_id"] == "subworkflow")
    child_run = str(step["child_run_id"])

    page.goto(f"{app_server}/runs/{parent_run.id}")
    link = page.get_by_test_id("step-child-run")
    expect(link).to_have_text(f"child run {child_run[:8]}", timeout=TIMEOUT_MS)
    link.click()
    page.wait_for_url(f"**/runs/{child_run}")
    back = page.locator("#run-parent")
    expect(back).to_have_text(f"Child run of {parent_run.id[:8]} (step subworkflow)", timeout=TIMEOUT_MS)
    expect(page.locator("#run-workflow")).to_have_text(name)
    back.click()
    page.wait_for_url(f"**/runs/{parent_run.id}")
    expect(page.get_by_test_id("step-child-run")).to_be_visible(timeout=TIMEOUT_MS)

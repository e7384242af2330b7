"""The workflow editor in Chromium: build, configure, save and reload; refusals; validation; a live
run; keyboard undo/redo and clipboard; export/import; versions. Takes the README screenshots (tests/e2e/doc_screenshots.py says where they go)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Page, expect
from sqlmodel import col, select

from engine.parse import parse_dict
from models.db import session_scope
from models.tables import Workflow, WorkflowVersion
from tests.e2e.doc_screenshots import save_doc_screenshot

TIMEOUT_MS = 20_000


# What the tests do to the page


class Editor:
    """The editor page of one workflow, driven the way a person would."""

    def __init__(self, page: Page, base_url: str, workflow_id: str) -> None:
        self.page, self.base_url, self.workflow_id = page, base_url, workflow_id

    def open(self) -> Editor:
        self.page.goto(f"{self.base_url}/workflows/{self.workflow_id}")
        self.wait_loaded()
        return self

    def wait_loaded(self) -> None:
        self.page.wait_for_selector("#editor[data-loaded=true]", timeout=60_000)

    def node(self, node_id: str):
        return self.page.locator(f'[data-testid=flow-node][data-node-id="{node_id}"]')

    def nodes(self):
        return self.page.locator("[data-testid=flow-node]")

    def edges(self):
        return self.page.locator(".react-flow__edge")

    def drop(self, node_type: str, x: float, y: float) -> None:
        """Drag `node_type` from the palette to (x, y) of the canvas."""
        before = self.nodes().count()
        self.page.drag_and_drop(
            f'[data-testid=palette-item][data-node-type="{node_type}"]',
            ".react-flow__pane",
            target_position={"x": x, "y": y},
        )
        expect(self.nodes()).to_have_count(before + 1)

    def handle(self, node_id: str, port: str):
        return self.page.locator(f'.react-flow__handle[data-nodeid="{node_id}"][data-handleid="{port}"]')

    def connect(self, source: str, source_port: str, target: str, target_port: str = "in") -> None:
        """Drag from an output handle to an input handle."""
        a = self.handle(source, source_port).bounding_box()
        b = self.handle(target, target_port).bounding_box()
        assert a and b, f"handles {source}.{source_port} / {target}.{target_port} are not on screen"
        self.page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
        self.page.mouse.down()
        self.page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=12)
        self.page.mouse.up()

    def select(self, node_id: str) -> None:
        self.node(node_id).locator(".fl-head").click()
        expect(self.page.locator(f'.react-flow__node.selected[data-id="{node_id}"]')).to_have_count(1)

    def configure(self, node_id: str) -> None:
        """Select a node and wait for its form in the side panel."""
        self.select(node_id)
        expect(self.page.locator("#node-id-input")).to_have_value(node_id)

    def field(self, name: str):
        return self.page.locator(f'#node-config-form [data-field="{name}"]')

    def fill(self, name: str, text: str) -> None:
        self.field(name).locator("input, textarea").first.fill(text)

    def choose(self, name: str, option: str) -> None:
        self.field(name).locator("button").first.click()
        self.page.get_by_role("option", name=option, exact=True).click()

    def click_canvas(self) -> None:
        """Click an empty spot of the canvas: clears the selection and takes focus off any input."""
        self.page.locator(".react-flow__pane").click(position={"x": 12, "y": 12})

    def save(self) -> int:
        """Click Save and wait until the new version is stored: the badge shows the next number.

        "All changes saved" alone is no proof: it also shows when the graph equals the saved one,
        e.g. a graph reset to the last version (a rehydrated page used to do that), and then the
        test would read the database before (or without) the save it meant.
        """
        badge = self.page.locator("#version-badge")
        shown = badge.inner_text().strip()
        version = 1 if shown == "Draft" else int(shown.removeprefix("v")) + 1
        self.page.click("#save-button")
        expect(badge).to_have_text(f"v{version}")
        expect(self.page.locator("#saved-indicator")).to_be_visible()
        return version

    def toast(self) -> Any:
        return self.page.locator("[data-sonner-toast]")

    def export_text(self, fmt: str = "json") -> str:
        self.page.click("#toolbar-export")
        self.page.locator("#export-format").get_by_role("radio", name=fmt.upper()).click()
        starts = r"^id: " if fmt == "yaml" else r"^\{"
        expect(self.page.locator("#export-text")).to_have_value(re.compile(starts))
        text = self.page.locator("#export-text").input_value()
        self.page.keyboard.press("Escape")
        return text

    def import_text(self, text: str) -> None:
        self.page.click("#toolbar-import")
        self.page.fill("#import-text", text)
        self.page.click("#import-submit")
        expect(self.page.locator("#import-text")).to_have_count(0)


# Data


def _definition(
    nodes: list[dict[str, Any]], edges: list[tuple[str, str, str, str]], **extra: Any
) -> dict[str, Any]:
    return {
        "name": "Test flow",
        "nodes": nodes,
        "edges": [
            {"id": f"{s}__{t}", "source": s, "source_port": sp, "target": t, "target_port": tp}
            for s, sp, t, tp in edges
        ],
        **extra,
    }


def _node(node_id: str, node_type: str, x: float, y: float, **config: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "config": config, "position": {"x": x, "y": y}}


ECHO_FLOW = _definition(
    [
        _node("start", "start", 0, 0),
        _node("pause", "tool.python", 300, 0, tool="sleep", args={"seconds": 1.5}),
        _node("echo", "tool.python", 600, 0, tool="echo", args={"value": "hello"}),
        _node("end", "end", 900, 0),
    ],
    [("start", "out", "pause", "in"), ("pause", "out", "echo", "in"), ("echo", "out", "end", "in")],
)


RUN_FLOW = _definition(
    [
        _node("start", "start", 0, 120),
        {**_node("fetch", "tool.python", 300, 120, tool="echo",
                 args={"value": {"ticket": 42, "subject": "Printer on fire"}}), "label": "Fetch ticket"},
        {**_node("pick", "tool.python", 600, 0, tool="json_pick", args={"path": "subject"}), "label": "Read subject"},
        {**_node("pause", "tool.python", 600, 240, tool="sleep", args={"seconds": 3}), "label": "Cool-down"},
        {**_node("join", "merge", 900, 120), "label": "Join"},
        _node("end", "end", 1200, 120),
    ],
    [
        ("start", "out", "fetch", "in"), ("fetch", "out", "pick", "in"), ("fetch", "out", "pause", "in"),
        ("pick", "out", "join", "in"), ("pause", "out", "join", "in"), ("join", "out", "end", "in"),
    ],
)  # fmt: skip
SCREENSHOT_VIEWPORT = {"width": 1920, "height": 1080}


# Fixtures


@pytest.fixture
def editor_page(page: Page, app_server: str, login_as: Callable[..., str]) -> Page:
    """A browser page signed in as an editor."""
    login_as(page, role="editor")
    return page


@pytest.fixture
def new_workflow(pg_url: str) -> Iterator[Callable[..., str]]:
    """new_workflow(name, definition=None) -> id: a workflow row (with version 1 if a definition is given)."""

    def make(name: str = "Editor test", definition: dict[str, Any] | None = None) -> str:
        with session_scope(pg_url) as session:
            workflow = Workflow(name=name)
            session.add(workflow)
            session.flush()
            if definition is not None:
                session.add(WorkflowVersion(workflow_id=workflow.id, version=1, definition=definition))
                workflow.latest_version = 1
            return str(workflow.id)

    yield make


def latest_definition(pg_url: str, workflow_id: str) -> tuple[int, dict[str, Any]]:
    with session_scope(pg_url) as session:
        workflow = session.get(Workflow, uuid.UUID(workflow_id))
        row = session.exec(
            select(WorkflowVersion)
            .where(WorkflowVersion.workflow_id == uuid.UUID(workflow_id))
            .order_by(col(WorkflowVersion.version).desc())
        ).first()
        assert workflow is not None and row is not None
        assert workflow.latest_version == row.version
        return row.version, dict(row.definition)


# Tests


def test_build_configure_save_and_reload_gives_back_the_same_graph(
    editor_page: Page, app_server: str, pg_url: str
) -> None:
    page = editor_page
    page.goto(f"{app_server}/workflows")
    page.click("#new-workflow-button")
    name = f"Ticket triage {uuid.uuid4().hex[:6]}"
    page.fill("#new-workflow-name", name)
    page.click("#create-workflow-submit")
    # Its own row, not the first one: the list may not have been re-read yet (another test's
    # workflow was the first row once, and its definition was read back as this one's).
    row = page.locator("[data-testid=workflow-row]").filter(has_text=name)
    expect(row).to_have_count(1)
    workflow_id = row.get_attribute("data-workflow-id")
    row.get_by_test_id("workflow-open-button").click()
    ed = Editor(page, app_server, workflow_id)
    ed.wait_loaded()

    layout = {
        "start": (130, 80), "agent": (460, 80),
        "tool.http": (130, 300), "human.approval": (460, 300),
        "webhook.send": (130, 540), "end": (460, 540),
    }  # fmt: skip
    page.fill("#palette-search", "webhook")
    expect(page.locator("[data-testid=palette-item]:visible")).to_have_count(1)
    page.fill("#palette-search", "")
    for node_type, (x, y) in layout.items():
        ed.drop(node_type, x, y)
    pane = page.locator(".react-flow__pane").bounding_box()
    start = ed.node("start").bounding_box()
    assert abs(start["x"] + start["width"] / 2 - (pane["x"] + 130)) < 20, "a node lands where it is dropped"

    ed.connect("start", "out", "agent")
    ed.connect("agent", "out", "tool_http")
    ed.connect("tool_http", "out", "human_approval")
    ed.connect("human_approval", "approved", "webhook_send")
    ed.connect("webhook_send", "out", "end")
    ed.connect("human_approval", "rejected", "end")
    expect(ed.edges()).to_have_count(6)
    assert ed.handle("agent", "error").count() == 1, "every node has an error output"
    assert 'input "in": any' in (ed.handle("agent", "in").get_attribute("title") or "")

    ed.configure("agent")
    ed.fill("model", "gpt-4o-mini")
    ed.fill("system_prompt", "You triage support tickets.\nBe brief.")
    ed.configure("tool_http")
    ed.fill("url", "https://api.example.test/tickets")
    ed.choose("method", "POST")
    ed.field("headers").get_by_test_id("kv-add").click()
    ed.field("headers").locator("input[placeholder=key]").fill("Accept")
    ed.field("headers").locator("input[placeholder=value]").fill("application/json")
    ed.configure("human_approval")
    ed.fill("title", "Approve the reply")
    ed.configure("webhook_send")
    ed.fill("url", "https://hooks.example.test/flowloom")
    ed.fill("secret", "HOOK_SECRET")
    ed.click_canvas()
    page.set_viewport_size(SCREENSHOT_VIEWPORT)
    page.click("#toolbar-layout")
    expect(page.locator("#unsaved-indicator")).to_be_visible()
    ed.configure("agent")
    page.wait_for_timeout(400)  # the fit-view after the layout settles
    save_doc_screenshot(page, "screenshot-editor.png")

    ed.save()
    version, saved = latest_definition(pg_url, workflow_id)
    assert version == 1
    by_id = {n["id"]: n for n in saved["nodes"]}
    assert "agent" in by_id, f"the saved version lacks the agent node: {saved}"
    assert by_id["agent"]["config"] == {
        "model": "gpt-4o-mini",
        "system_prompt": "You triage support tickets.\nBe brief.",
    }
    assert by_id["tool_http"]["config"] == {
        "url": "https://api.example.test/tickets", "method": "POST", "headers": {"Accept": "application/json"},
    }  # fmt: skip
    assert by_id["human_approval"]["config"] == {"title": "Approve the reply"}
    assert by_id["webhook_send"]["config"] == {
        "url": "https://hooks.example.test/flowloom",
        "secret": "HOOK_SECRET",
    }
    assert {(e["source"], e["source_port"], e["target"]) for e in saved["edges"]} == {
        ("start", "out", "agent"), ("agent", "out", "tool_http"), ("tool_http", "out", "human_approval"),
        ("human_approval", "approved", "webhook_send"), ("webhook_send", "out", "end"),
        ("human_approval", "rejected", "end"),
    }  # fmt: skip

    page.reload()
    ed.wait_loaded()
    expect(ed.nodes()).to_have_count(6)
    expect(ed.edges()).to_have_count(6)
    expect(page.locator("#version-badge")).to_have_text("v1")
    assert json.loads(ed.export_text()) == saved, "the reloaded graph is the saved one, positions included"


def test_unsaved_edits_survive_a_dropped_connection_and_are_what_save_stores(
    editor_page: Page, app_server: str, pg_url: str, new_workflow: Callable[..., str]
) -> None:
    page = editor_page
    ed = Editor(page, app_server, new_workflow("Reconnect", ECHO_FLOW)).open()
    ed.select("end")
    page.keyboard.press("Delete")
    expect(ed.nodes()).to_have_count(3)
    expect(page.locator("#unsaved-indicator")).to_be_visible()

    # The socket drops (as a stalled machine's ping timeout does); Reflex reconnects, rehydrates the
    # page and runs its on_load again: the unsaved graph must still be there, not v1 reloaded.
    with page.expect_console_message(lambda m: "ERR_INTERNET_DISCONNECTED" in m.text, timeout=30_000):
        page.context.set_offline(True)
    page.context.set_offline(False)
    ed.configure("echo")  # answered only once the page is connected (and rehydrated) again
    expect(ed.nodes()).to_have_count(3)
    expect(page.locator("#unsaved-indicator")).to_be_visible()

    assert ed.save() == 2
    version, saved = latest_definition(pg_url, ed.workflow_id)
    assert version == 2 and [n["id"] for n in saved["nodes"]] == ["start", "pause", "echo"]


def test_invalid_connections_are_refused_with_their_reason(
    editor_page: Page, app_server: str, new_workflow: Callable[..., str]
) -> None:
    definition = _definition(
        [
            _node("start", "start", 0, 0),
            _node("a", "tool.python", 300, 0, tool="echo"),
            _node("b", "tool.python", 600, 0, tool="echo"),
        ],
        [("start", "out", "a", "in"), ("a", "out", "b", "in")],
    )
    ed = Editor(editor_page, app_server, new_workflow("Refusals", definition)).open()
    expect(ed.edges()).to_have_count(2)

    ed.connect("b", "out", "a", "in")
    expect(ed.toast().filter(has_text="Connection refused")).to_contain_text("would close a loop (b → a → b)")
    ed.connect("a", "out", "a", "in")
    expect(ed.toast().filter(has_text="cannot connect to itself")).to_contain_text("a DAG has no loops")
    ed.connect("start", "out", "a", "in")
    expect(ed.toast().filter(has_text="already connected")).to_have_count(1)
    expect(ed.edges()).to_have_count(2)
    expect(editor_page.locator("#saved-indicator")).to_be_visible()


def test_validate_lists_issues_and_highlights_the_offending_node(
    editor_page: Page, app_server: str, new_workflow: Callable[..., str]
) -> None:
    definition = _definition(
        [_node("start", "start", 0, 0), _node("agent", "agent", 300, 0), _node("end", "end", 600, 0)],
        [("start", "out", "agent", "in"), ("agent", "out", "end", "in")],
    )
    ed = Editor(editor_page, app_server, new_workflow("Validation", definition)).open()
    editor_page.click("#validate-button")

    expect(ed.node("agent")).to_have_attribute("data-invalid", "error")
    expect(ed.node("start")).not_to_have_attribute("data-invalid", re.compile(".+"))
    expect(ed.node("end")).not_to_have_attribute("data-invalid", re.compile(".+"))
    issue = editor_page.locator('[data-testid=issue-row][data-node-id="agent"]')
    expect(issue).to_contain_text("config.model")
    issue.click()
    expect(editor_page.locator("#node-id-input")).to_have_value("agent")
    expect(ed.field("model")).to_have_attribute("data-invalid", "true")
    expect(ed.field("model").get_by_test_id("field-error")).to_contain_text("enter a model name")

    ed.fill("model", "gpt-4o-mini")
    expect(ed.field("model")).to_have_attribute("data-invalid", "false")
    editor_page.click("#validate-button")
    expect(ed.node("agent")).not_to_have_attribute("data-invalid", re.compile(".+"))


def test_a_run_colours_the_nodes_live_and_shows_a_nodes_output(
    editor_page: Page, app_server: str, new_workflow: Callable[..., str]
) -> None:
    editor_page.set_viewport_size(SCREENSHOT_VIEWPORT)
    ed = Editor(editor_page, app_server, new_workflow("Ticket pipeline", RUN_FLOW)).open()
    # Record every status each node shows, to prove the colours change while the run goes.
    editor_page.evaluate(
        """() => {
          window.__statuses = {};
          const record = (el) => {
            const id = el.dataset.nodeId, s = el.dataset.status;
            const seen = (window.__statuses[id] = window.__statuses[id] || []);
            if (seen[seen.length - 1] !== s) seen.push(s);
          };
          document.querySelectorAll('[data-testid=flow-node]').forEach(record);
          new MutationObserver((ms) => ms.forEach((m) => m.target.dataset && m.target.dataset.nodeId && record(m.target)))
            .observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-status'] });
        }"""
    )
    editor_page.click("#run-button")
    expect(ed.node("pause")).to_have_attribute("data-status", "running", timeout=TIMEOUT_MS)
    expect(ed.node("pick")).to_have_attribute("data-status", "succeeded", timeout=TIMEOUT_MS)
    ed.select("pick")
    expect(editor_page.get_by_test_id("step-outputs")).to_contain_text('"out": "Printer on fire"')
    expect(ed.node("pause")).to_have_attribute("data-status", "running")
    save_doc_screenshot(editor_page, "screenshot-run.png")

    for node_id in ("start", "fetch", "pick", "pause", "join", "end"):
        # Generous: on a broker shared with other test sessions a lost message waits for the sweeper.
        expect(ed.node(node_id)).to_have_attribute("data-status", "succeeded", timeout=60_000)
        expect(ed.node(node_id)).to_have_class(re.compile(r"\bfl-node\b"))
    expect(editor_page.locator("#run-status")).to_have_attribute("data-status", "succeeded")
    seen = editor_page.evaluate("() => window.__statuses")
    assert seen["pause"][-2:] == ["running", "succeeded"], seen
    assert seen["end"][0] == "idle" and seen["end"][-1] == "succeeded", seen

    ed.select("fetch")
    expect(editor_page.get_by_test_id("step-outputs")).to_contain_text('"subject": "Printer on fire"')
    expect(editor_page.get_by_test_id("step-inputs")).to_be_visible()
    expect(editor_page.get_by_test_id("step-duration")).to_have_text(re.compile(r"\d+(\.\d+)? (ms|s)"))
    expect(editor_page.get_by_test_id("run-history-row")).to_have_count(1)


def test_keyboard_undo_redo_copy_paste_duplicate_and_delete(
    editor_page: Page, app_server: str, new_workflow: Callable[..., str]
) -> None:
    ed = Editor(editor_page, app_server, new_workflow("Keyboard")).open()
    keys = editor_page.keyboard
    ed.drop("agent", 200, 200)
    ed.click_canvas()

    keys.press("Control+z")
    expect(ed.nodes()).to_have_count(0)
    keys.press("Control+Shift+z")
    expect(ed.node("agent")).to_be_visible()
    keys.press("Control+z")
    expect(ed.nodes()).to_have_count(0)
    keys.press("Control+y")
    expect(ed.node("agent")).to_be_visible()

    ed.configure("agent")
    ed.fill("model", "gpt-4o-mini")
    ed.click_canvas()
    ed.select("agent")
    keys.press("Control+c")
    keys.press("Control+v")
    expect(ed.node("agent_2")).to_be_visible()
    expect(editor_page.locator("#node-id-input")).to_have_value("agent_2")
    expect(ed.field("model").locator("input")).to_have_value("gpt-4o-mini")
    keys.press("Control+d")
    expect(ed.node("agent_3")).to_be_visible()
    expect(ed.nodes()).to_have_count(3)

    ed.select("agent_3")
    keys.press("Delete")
    expect(ed.nodes()).to_have_count(2)
    keys.press("Control+z")
    expect(ed.nodes()).to_have_count(3)
    ed.save()


def test_export_then_import_gives_the_same_graph(
    editor_page: Page, app_server: str, pg_url: str, new_workflow: Callable[..., str], tmp_path: Path
) -> None:
    source = Editor(editor_page, app_server, new_workflow("Export source", ECHO_FLOW)).open()
    exported = source.export_text("json")
    assert json.loads(exported) == parse_dict(ECHO_FLOW).to_dict()
    as_yaml = source.export_text("yaml")
    assert yaml.safe_load(as_yaml) == json.loads(exported)
    editor_page.click("#toolbar-export")
    with editor_page.expect_download() as download:
        editor_page.click("#export-download")
    assert download.value.suggested_filename == "workflow.yaml"
    assert yaml.safe_load(Path(download.value.path()).read_text()) == json.loads(exported)
    editor_page.keyboard.press("Escape")

    target = Editor(editor_page, app_server, new_workflow("Import target")).open()
    target.import_text(as_yaml)
    expect(target.nodes()).to_have_count(4)
    expect(target.edges()).to_have_count(3)
    assert json.loads(target.export_text("json")) == json.loads(exported)
    target.save()
    _, saved = latest_definition(pg_url, target.workflow_id)
    assert {**saved, "name": "", "version": 0} == {**json.loads(exported), "name": "", "version": 0}

    # A file upload fills the import box too.
    upload = tmp_path / "flow.json"
    upload.write_text(exported)
    editor_page.click("#toolbar-import")
    editor_page.locator("#definition-upload input[type=file]").set_input_files(str(upload))
    expect(editor_page.locator("#import-text")).to_have_value(exported)
    editor_page.fill("#import-text", "nodes: [oops")
    editor_page.click("#import-submit")
    expect(editor_page.locator("#import-error")).to_be_visible()


def test_version_history_restores_an_earlier_version(
    editor_page: Page, app_server: str, pg_url: str, new_workflow: Callable[..., str]
) -> None:
    ed = Editor(editor_page, app_server, new_workflow("Versions", ECHO_FLOW)).open()
    ed.select("end")
    editor_page.keyboard.press("Delete")
    expect(ed.nodes()).to_have_count(3)
    ed.save()
    expect(editor_page.locator("#version-badge")).to_have_text("v2")

    editor_page.click("#toolbar-versions")
    expect(editor_page.get_by_test_id("version-row")).to_have_count(2)
    editor_page.locator("[data-testid=version-row][data-version='1']").get_by_test_id(
        "restore-version"
    ).click()
    expect(ed.nodes()).to_have_count(4)
    expect(editor_page.locator("#unsaved-indicator")).to_be_visible()
    ed.save()
    version, saved = latest_definition(pg_url, ed.workflow_id)
    assert version == 3
    assert [n["id"] for n in saved["nodes"]] == ["start", "pause", "echo", "end"]


def test_the_run_form_follows_the_inputs_schema_and_refuses_bad_inputs(
    editor_page: Page, app_server: str, new_workflow: Callable[..., str]
) -> None:
    definition = _definition(
        [
            _node("start", "start", 0, 0),
            _node("echo", "tool.python", 300, 0, tool="echo"),
            _node("end", "end", 600, 0),
        ],
        [("start", "out", "echo", "in"), ("echo", "out", "end", "in")],
        inputs={
            "type": "object",
            "properties": {
                "ticket": {"type": "string", "title": "Ticket text"},
                "priority": {"type": "integer", "minimum": 1},
            },
            "required": ["ticket"],
        },
    )
    ed = Editor(editor_page, app_server, new_workflow("Run inputs", definition)).open()
    editor_page.click("#run-button")
    form = editor_page.locator("#run-inputs-form")
    expect(form.locator("[data-field=ticket]")).to_contain_text("Ticket text")
    form.locator("[data-field=priority] input").fill("zero")
    expect(form.locator("[data-field=priority] [data-testid=field-error]")).to_have_text("enter a number")
    form.locator("[data-field=priority] input").fill("0")
    editor_page.click("#run-inputs-submit")
    expect(form.locator("[data-field=ticket] [data-testid=field-error]")).to_have_text("required")
    expect(form.locator("[data-field=priority] [data-testid=field-error]")).to_contain_text("minimum of 1")

    form.locator("[data-field=ticket] input").fill("Printer on fire")
    form.locator("[data-field=priority] input").fill("2")
    editor_page.click("#run-inputs-submit")
    expect(ed.node("end")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    ed.select("echo")
    expect(editor_page.get_by_test_id("step-outputs")).to_contain_text('"ticket": "Printer on fire"')
    expect(editor_page.get_by_test_id("step-outputs")).to_contain_text('"priority": 2')

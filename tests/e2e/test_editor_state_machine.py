"""The design's state machine drawn in the editor and run from it, in Chromium: START -> PROCESSING
-> REVIEW (a human approval) -> APPROVED -> COMPLETE, PROCESSING -> ERROR -> PROCESSING again;
transitions with conditions (checked as they are typed, with suggested paths), a label, an error
output switched on and off, PROCESSING with retries, a timeout and a visit limit; the validation
panel's plan and phase badges, its problems focusing the field they name; saved, run, approved in
the inbox, seen completing on the canvas."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.e2e import test_editor
from tests.e2e.test_editor import SCREENSHOT_VIEWPORT, Editor, latest_definition

# The editor tests' fixtures: a page signed in as an editor, a workflow row to open.
editor_page = test_editor.editor_page
new_workflow = test_editor.new_workflow

RUN_TIMEOUT_MS = (
    60_000  # generous: on a broker shared with other sessions a lost message waits for the sweeper
)

LAYOUT = {  # node type, its id after renaming, where it is dropped on the canvas
    "start": ("START", 130, 90),
    "tool.python": ("PROCESSING", 430, 90),
    "human.approval": ("REVIEW", 730, 90),
}
MORE = [
    ("tool.python", "APPROVED", 1030, 90),
    ("end", "COMPLETE", 1030, 400),
    ("tool.python", "ERROR", 430, 400),
]


class Inspector:
    """The side panel's edge and behaviour forms."""

    def __init__(self, ed: Editor) -> None:
        self.ed, self.page = ed, ed.page

    def select_edge(self, edge_id: str) -> None:
        edge = self.page.get_by_test_id(f"rf__edge-{edge_id}")
        edge.focus()  # React Flow edges are focusable; Enter selects the focused one
        self.page.keyboard.press("Enter")
        expect(self.page.locator("#edge-form")).to_have_attribute("data-edge-id", edge_id)

    def condition(self, text: str) -> None:
        self.page.locator("#edge-condition-input").fill(text)

    def behaviour(self, name: str, text: str) -> None:
        self.page.locator(f"#node-behaviour-form-{name}").fill(text)

    def behaviour_field(self, name: str):
        return self.page.locator(f'#node-behaviour-form [data-field="{name}"]')


def rename(ed: Editor, node_id: str, new_id: str) -> None:
    ed.configure(node_id)
    ed.page.locator("#node-id-input").fill(new_id)
    ed.page.keyboard.press("Tab")
    expect(ed.node(new_id)).to_have_count(1)


def test_the_design_state_machine_is_drawn_with_conditions_and_retries_run_and_approved(
    editor_page: Page, app_server: str, pg_url: str, new_workflow: Callable[..., str]
) -> None:
    page = editor_page
    page.set_viewport_size(SCREENSHOT_VIEWPORT)
    ed = Editor(page, app_server, new_workflow("Order review machine")).open()
    panel = Inspector(ed)

    page.click("#tab-workflow")
    page.click("#workflow-mode-trigger")
    page.get_by_role("option", name="State machine (loops allowed)").click()
    expect(page.locator("#mode-badge")).to_have_text("State machine")
    page.locator("#workflow-visit-limit").fill("0")
    expect(page.locator("#workflow-visit-limit-error")).to_contain_text("greater than or equal to 1")
    page.locator("#workflow-visit-limit").fill("6")
    expect(page.locator("#workflow-visit-limit-error")).to_have_count(0)

    drops = [(t, *spec) for t, spec in LAYOUT.items()] + MORE
    for node_type, new_id, x, y in drops:
        ed.drop(node_type, x, y)
        rename(ed, node_type.replace(".", "_"), new_id)  # each is renamed before the next of its type lands

    ed.configure("PROCESSING")
    ed.choose("tool", "echo")
    # The first visit reports an error, the one after ERROR sends it back succeeds.
    ed.fill("args", """{"value": "{{ 'error' if run.visit == 1 else 'ok' }}"}""")
    for node_id, value in (("ERROR", "retrying"), ("APPROVED", "shipped")):
        ed.configure(node_id)
        ed.choose("tool", "echo")
        ed.fill("args", f'{{"value": "{value}"}}')
    ed.configure("REVIEW")
    ed.fill("title", "Review the order")

    for source, port, target in [
        ("START", "out", "PROCESSING"), ("PROCESSING", "out", "ERROR"), ("PROCESSING", "out", "REVIEW"),
        ("ERROR", "out", "PROCESSING"), ("REVIEW", "approved", "APPROVED"), ("REVIEW", "rejected", "COMPLETE"),
        ("APPROVED", "out", "COMPLETE"),
    ]:  # fmt: skip
        ed.connect(source, port, target)
    expect(ed.edges()).to_have_count(7)

    # PROCESSING -> ERROR: the condition is checked as it is typed, with paths to pick from.
    panel.select_edge("PROCESSING__ERROR")
    expect(page.locator("#edge-route")).to_have_text("PROCESSING.out → ERROR.in")
    panel.condition("output == 'err")
    expect(page.get_by_test_id("condition-error")).to_contain_text("expression")
    panel.condition("status == 'error'")
    expect(page.get_by_test_id("condition-error")).to_have_count(0)
    expect(page.get_by_test_id("condition-warning")).to_contain_text('unknown name "status"')
    panel.condition("steps.ST")
    suggestion = page.locator('[data-testid=condition-suggestion][data-path="steps.START.status"]')
    suggestion.click()
    expect(page.locator("#edge-condition-input")).to_have_value("steps.START.status")
    panel.condition("output == ")
    expect(page.get_by_test_id("condition-error")).to_be_visible()

    # Validation lists the broken condition; clicking it selects the edge and focuses the field.
    ed.click_canvas()
    page.click("#validate-button")
    problem = page.locator('[data-testid=issue-row][data-edge-id="PROCESSING__ERROR"][data-field=condition]')
    expect(problem).to_be_visible()
    expect(page.locator("#execution-plan")).to_contain_text("No plan until the errors are fixed")
    problem.click()
    expect(page.locator("#edge-form")).to_have_attribute("data-edge-id", "PROCESSING__ERROR")
    expect(page.locator("#edge-condition-input")).to_be_focused()
    panel.condition("output == 'error'")
    expect(page.get_by_test_id("condition-error")).to_have_count(0)
    expect(page.get_by_test_id("condition-warning")).to_have_count(0)
    page.locator("#edge-label-input").fill("failed, retry")
    expect(page.locator(".react-flow__edge-text").filter(has_text="failed, retry")).to_have_count(1)

    panel.select_edge("PROCESSING__REVIEW")
    panel.condition("output == 'ok'")
    expect(page.get_by_test_id("condition-error")).to_have_count(0)

    # The error output: switched on the edge is drawn as an error edge, switched off it is not.
    panel.select_edge("ERROR__PROCESSING")
    page.locator("#edge-error-switch").click()
    expect(page.locator("#edge-route")).to_have_text("ERROR.error → PROCESSING.in")
    expect(page.get_by_test_id("rf__edge-ERROR__PROCESSING")).to_have_class(re.compile(r"\bfl-edge-error\b"))
    page.locator("#edge-error-switch").click()
    expect(page.locator("#edge-route")).to_have_text("ERROR.out → PROCESSING.in")

    # PROCESSING: retries with backoff, a timeout, a visit limit; refused values say why.
    ed.configure("PROCESSING")
    panel.behaviour("max_attempts", "0")
    expect(panel.behaviour_field("max_attempts").get_by_test_id("field-error")).to_contain_text(
        "greater than or equal to 1"
    )
    panel.behaviour("max_attempts", "3")
    expect(panel.behaviour_field("max_attempts")).to_have_attribute("data-invalid", "false")
    panel.behaviour("backoff_s", "0.2")
    panel.behaviour("timeout_s", "30")
    panel.behaviour("max_visits", "3")
    expect(panel.behaviour_field("max_visits")).to_have_attribute("data-invalid", "false")
    # Taking the error branch with no error edge is a problem the validator names on the field.
    panel.behaviour_field("on_error").locator("button").first.click()
    page.get_by_role("option", name="Take the error branch", exact=True).click()
    expect(panel.behaviour_field("on_error").get_by_test_id("field-error")).to_contain_text(
        "no edge leaves its error output"
    )
    ed.click_canvas()
    page.click("#validate-button")
    on_error = page.locator('[data-testid=issue-row][data-node-id="PROCESSING"][data-field=on_error]')
    on_error.click()
    expect(page.locator("#node-id-input")).to_have_value("PROCESSING")
    expect(page.locator("#node-behaviour-form-on_error")).to_be_focused()
    panel.behaviour_field("on_error").locator("button").first.click()
    page.get_by_role("option", name="Fail the run", exact=True).click()
    expect(panel.behaviour_field("on_error")).to_have_attribute("data-invalid", "false")

    # Valid now: the plan's phases are listed and each node wears its badge.
    ed.click_canvas()
    page.click("#validate-button")
    expect(page.locator("#issues-panel")).to_contain_text("no problems")
    expect(page.get_by_test_id("plan-phase").first).to_contain_text("Phase 1:")
    expect(page.locator('[data-testid=plan-phase][data-phase="1"]')).to_contain_text("START")
    expect(page.locator('[data-testid=plan-phase][data-phase="2"]')).to_contain_text("PROCESSING")
    expect(ed.node("START")).to_have_attribute("data-phase", "1")
    expect(ed.node("PROCESSING").get_by_test_id("node-phase")).to_have_text("P2")
    expect(ed.node("REVIEW")).to_have_attribute("data-phase", "3")

    ed.save()
    _, saved = latest_definition(pg_url, ed.workflow_id)
    assert saved["mode"] == "state_machine" and saved["policy"]["max_visits"] == 6
    edges = {e["id"]: e for e in saved["edges"]}
    assert edges["PROCESSING__ERROR"]["condition"] == "output == 'error'"
    assert edges["PROCESSING__ERROR"]["label"] == "failed, retry"
    assert edges["PROCESSING__REVIEW"]["condition"] == "output == 'ok'"
    assert edges["ERROR__PROCESSING"]["source_port"] == "out"
    processing = next(n for n in saved["nodes"] if n["id"] == "PROCESSING")
    assert processing["retry"]["max_attempts"] == 3 and processing["retry"]["backoff_s"] == 0.2
    assert (processing["timeout_s"], processing["max_visits"], processing["on_error"]) == (30, 3, "fail")

    # Run it: PROCESSING errs once, goes through ERROR, and the run waits for the review.
    page.click("#run-button")
    expect(ed.node("REVIEW")).to_have_attribute("data-status", "waiting", timeout=RUN_TIMEOUT_MS)
    expect(ed.node("ERROR")).to_have_attribute("data-status", "succeeded")

    inbox = page.context.new_page()
    inbox.goto(f"{app_server}/inbox")
    row = inbox.get_by_test_id("approval-row").filter(has_text="Review the order")
    expect(row).to_be_visible(timeout=RUN_TIMEOUT_MS)
    row.click()
    inbox.get_by_test_id("action-approved").click()
    expect(inbox.get_by_text("Decided: approved")).to_be_visible()
    inbox.close()

    for node_id in ("START", "PROCESSING", "ERROR", "REVIEW", "APPROVED", "COMPLETE"):
        expect(ed.node(node_id)).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded")
    ed.select("PROCESSING")
    expect(page.get_by_test_id("step-outputs").filter(has_text='"out": "ok"')).to_have_count(1)

"""Describe your workflow, in Chromium: the scripted model's draft is repaired once, previewed on the
canvas, discarded or accepted (only then saved); a draft that never validates shows the reasons."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.e2e.test_editor import Editor, latest_definition, new_workflow  # noqa: F401
from tests.fixtures.scripted_llm import ScriptedLLM, answer

DRAFT = {
    "name": "Drafted",
    "nodes": [
        {"id": "start", "type": "start"},
        {"id": "summarise", "type": "agent", "label": "Summarise", "config": {"model": "gpt-4o-mini"}},
        {"id": "done", "type": "end"},
    ],
    "edges": [
        {"id": "e1", "source": "start", "target": "summarise"},
        {"id": "e2", "source": "summarise", "target": "done"},
    ],
}
NO_END = {**DRAFT, "nodes": DRAFT["nodes"][:2], "edges": DRAFT["edges"][:1]}


def _describe(page: Page, text: str) -> None:
    page.click("#toolbar-generate")
    page.fill("#generate-description", text)
    page.click("#generate-submit")


def test_a_generated_workflow_is_previewed_then_discarded_or_accepted_and_saved(
    page: Page,
    app_server: str,
    login_as,
    new_workflow,  # noqa: F811 - the fixture imported from test_editor
    generator_llm: ScriptedLLM,
    pg_url: str,
) -> None:
    login_as(page, "editor")
    workflow_id = new_workflow("Generated here")
    ed = Editor(page, app_server, workflow_id).open()
    before = ed.nodes().count()

    generator_llm.script(answer(json.dumps(NO_END)), answer(json.dumps(DRAFT)))
    _describe(page, "Summarise what comes in with an agent.")
    banner = page.locator("#generate-banner")
    expect(banner).to_contain_text("3 nodes, 2 edges; valid after one repair", timeout=180_000)
    expect(ed.node("summarise")).to_be_visible()
    assert len(generator_llm.requests) == 2  # the repair carried the validator's sentence
    repair = [m["content"] for m in generator_llm.requests[1]["body"]["messages"] if m["role"] == "user"]
    assert 'no "end" node' in repair[0]
    expect(page.locator("#version-badge")).to_have_text("Draft")  # nothing saved yet

    page.click("#generate-discard")
    expect(banner).to_have_count(0)
    expect(ed.nodes()).to_have_count(before)
    expect(ed.node("summarise")).to_have_count(0)

    generator_llm.script(answer(json.dumps(DRAFT)))
    _describe(page, "Summarise what comes in with an agent.")
    expect(banner).to_contain_text("valid first time", timeout=180_000)
    page.click("#generate-accept")
    expect(page.locator("#version-badge")).to_have_text("v1")
    version, saved = latest_definition(pg_url, workflow_id)
    assert version == 1 and [n["id"] for n in saved["nodes"]] == ["start", "summarise", "done"]
    assert saved["name"] == "Generated here"  # the workflow keeps its own name
    page.reload()
    ed.wait_loaded()
    expect(ed.node("summarise")).to_be_visible()


def test_a_draft_that_never_validates_is_refused_with_the_reasons_and_changes_nothing(
    page: Page,
    app_server: str,
    login_as,
    new_workflow,  # noqa: F811 - the fixture imported from test_editor
    generator_llm: ScriptedLLM,
) -> None:
    login_as(page, "editor")
    ed = Editor(page, app_server, new_workflow("Refused here")).open()
    before = ed.nodes().count()

    generator_llm.script(answer(json.dumps(NO_END)), answer("I cannot do that."))
    _describe(page, "Something impossible.")
    error = page.locator("#generate-error")
    expect(error).to_contain_text("did not validate, even after one repair", timeout=180_000)
    expect(page.get_by_test_id("generate-reason")).to_contain_text(["is not a JSON object"])
    expect(page.locator("#generate-banner")).to_have_count(0)
    expect(ed.nodes()).to_have_count(before)

"""The Agents page in Chromium: an editor creates an agent through the config form, sees it go READY,
a workflow runs it on the app's workers, and the page shows that execution; a viewer cannot edit."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from engine import agents
from engine.runs import start_run
from engine.settings import get_settings
from tests.fixtures.scripted_llm import answer
from tests.integration.engine_helpers import node, wait_for_run, workflow

TIMEOUT_MS = 30_000


def test_an_editor_creates_an_agent_sees_it_ready_and_a_workflow_runs_it(
    page: Page, app_server: str, login_as, generator_llm, redis_url: str, monkeypatch, screenshot
) -> None:
    login_as(page, "editor")
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()
    name = f"E2E agent {uuid.uuid4().hex[:6]}"
    page.goto(f"{app_server}/agents")
    page.locator("#agent-new").click()
    page.locator("#agent-name").fill(name)
    page.locator("#agent-capabilities").fill("E2E_JOURNEY")
    model = page.locator("#agent-config-form-model")
    model.fill("scripted")
    model.press("Tab")
    base_url = page.locator("#agent-config-form-base_url")
    base_url.fill(generator_llm.base_url)
    base_url.press("Tab")
    page.locator("#agent-save").click()

    row = page.get_by_test_id("agent-row").filter(has_text=name)
    expect(row.get_by_test_id("agent-state")).to_have_text("READY", timeout=TIMEOUT_MS)
    expect(row).to_contain_text("E2E_JOURNEY")
    expect(row).to_contain_text("no runs yet")
    screenshot("ready")

    (agent,) = [a for a in agents.list_agents() if a.name == name]
    assert agent.config["model"] == "scripted" and agent.config["base_url"] == generator_llm.base_url
    generator_llm.script(answer("answered by the saved agent"))
    defn = workflow(
        [node("start", "start"), node("agent", "agent", capability="E2E_JOURNEY", prompt="{{ input.q }}"),
         node("end", "end")],
        [("start", "agent"), ("agent", "end")],
        policy={"egress": {"allowed_hosts": [generator_llm.host]}},
    )  # fmt: skip
    view = wait_for_run(start_run(defn, {"q": "hello"}), timeout=90)
    assert view.status == "succeeded", view.error

    page.reload()
    expect(row).to_contain_text("1 recent", timeout=TIMEOUT_MS)
    expect(row).to_contain_text("16 tokens")  # the scripted answer's usage, from the step's metrics
    expect(row.get_by_test_id("agent-state")).to_have_text("READY")


def test_a_viewer_sees_the_agents_but_not_the_edit_buttons(page: Page, app_server: str, login_as) -> None:
    login_as(page, "viewer")
    page.goto(f"{app_server}/agents")
    expect(page.get_by_role("heading", name="Agents")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#agent-new")).to_have_count(0)

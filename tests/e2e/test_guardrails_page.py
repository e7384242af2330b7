"""A guardrail that fired shows on the run's page: the rule, the node, the field, the action and a
redacted excerpt, beside the failed step's guardrail_violated code."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect

from engine import workflows
from engine.runs import start_run
from engine.settings import get_settings
from models.db import session_scope
from tests.integration.engine_helpers import wait_for_run, workflow

TIMEOUT_MS = 30_000


@pytest.fixture
def engine_here(app_server: str, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Save workflows and start runs from the test process on the app's database and broker."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()
    return pg_url


def test_a_fired_guardrail_is_listed_on_the_run_page(page: Page, app_server: str, login_as, engine_here: str):
    definition = workflow(
        [
            {"id": "START", "type": "start"},
            {"id": "ASK", "type": "tool.python", "config": {"tool": "echo", "args": {"value": "{{ input.text }}"}},
             "guardrails": {"input_validation": {"content_filters": ["pii"]}}},
            {"id": "END", "type": "end"},
        ],
        [("START", "ASK"), ("ASK", "END")],
        name="guarded",
    ).to_dict()  # fmt: skip
    with session_scope(engine_here) as session:
        workflow_id = str(
            workflows.create_workflow(session, f"Guarded {uuid.uuid4().hex[:6]}", definition=definition).id
        )
    version = workflows.saved_version(workflow_id)
    assert version is not None
    run_id = start_run(version.definition, {"text": "mail jane.roe@example.com"}, workflow_id=workflow_id,
                       version_id=version.version_id, started_by="cli:e2e", started_via="api")  # fmt: skip
    assert wait_for_run(run_id).status == "failed"

    login_as(page, "viewer")
    page.goto(f"{app_server}/runs/{run_id}")
    expect(page.locator("#run-status")).to_contain_text("failed", timeout=TIMEOUT_MS)
    fired = page.locator('[data-testid="run-guardrail"][data-node-id="ASK"]')
    expect(fired).to_have_count(1)
    expect(fired.get_by_test_id("guardrail-rule")).to_have_text("input_validation.content_filters.pii")
    expect(fired.get_by_test_id("guardrail-action")).to_have_text("fail")
    expect(fired.get_by_test_id("guardrail-field")).to_have_text("in.text")
    expect(fired.get_by_test_id("guardrail-excerpt")).not_to_contain_text("jane.roe@example.com")
    step = page.locator('[data-testid="run-step"][data-node-id="ASK"]')
    expect(step.get_by_test_id("step-error-code")).to_have_text("guardrail_violated")

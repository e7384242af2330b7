"""Form and chat trigger pages in Chromium against `flowloom up`: a public form opens only with its
token, shows validation messages and starts a run with typed inputs; a chat answer streams in,
and the next message of the conversation carries the context."""

from __future__ import annotations

import threading

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from engine import triggers, workflows
from engine.runs import get_run
from engine.settings import get_settings
from models.db import get_engine, session_scope
from models.tables import Run
from tests.fixtures.scripted_llm import answer, scripted_llm  # noqa: F401
from tests.integration.chat_helpers import chat_definition, save_chat_workflow
from tests.integration.engine_helpers import node, wait_for_run, workflow

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "pattern": "^[A-Z]"},
        "age": {"type": "integer", "minimum": 18},
        "plan": {"enum": ["free", "pro"]},
        "newsletter": {"type": "boolean"},
    },
    "required": ["name", "age"],
}


@pytest.fixture
def engine_here(app_server: str, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Save workflows and read runs from the test process on the app's database and broker."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()


def _public_form(pg_url: str) -> tuple[str, str]:
    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")], name="signup").to_dict()
    defn["inputs"] = SCHEMA
    defn["outputs"] = {"who": "{{ input.name }}"}
    defn["triggers"] = [
        {"id": "form", "kind": "form", "config": {"public": True, "title": "Sign up", "wait_s": 30}}
    ]
    with session_scope(pg_url) as session:
        workflow_id = workflows.create_workflow(session, "signup").id
        workflows.save_version(session, workflow_id, defn)
    with get_engine(pg_url).connect() as conn:
        (trigger,) = triggers.list_for_workflow(conn, workflow_id)
    return trigger.id, triggers.rotate_token(trigger.id, actor="user:test")


def _field(page: Page, name: str):
    return page.locator(f"[data-field={name}]")


def test_a_public_form_with_its_token_validates_and_starts_a_typed_run(
    page: Page, app_server: str, engine_here, pg_url: str
) -> None:
    trigger_id, token = _public_form(pg_url)
    page.goto(f"{app_server}/forms/{trigger_id}?token=not-the-token")
    expect(page.locator("#form-not-found")).to_be_visible()
    expect(page.locator("#trigger-form")).to_have_count(0)
    expect(page.locator("#sidebar")).to_have_count(0)  # nothing of the app around it

    page.goto(f"{app_server}/forms/{trigger_id}?token={token}")
    expect(page.locator("#form-title")).to_have_text("Sign up")
    _field(page, "name").locator("input").fill("ann")
    _field(page, "age").locator("input").fill("seventeen")
    page.locator("#form-submit").click()
    expect(_field(page, "name").get_by_test_id("field-error")).to_contain_text("does not match")
    expect(_field(page, "age").get_by_test_id("field-error")).to_have_text("enter a whole number")

    _field(page, "name").locator("input").fill("Ann")
    _field(page, "age").locator("input").fill("42")
    _field(page, "plan").get_by_role("combobox").click()
    page.get_by_role("option", name="pro").click()
    _field(page, "newsletter").get_by_role("switch").click()
    expect(_field(page, "age").get_by_test_id("field-error")).to_have_count(0)
    page.locator("#form-submit").click()
    expect(page.locator("#form-message")).to_have_text("Submitted.")
    expect(page.locator("#form-result")).to_contain_text('"who": "Ann"')

    runs = _runs_of(pg_url, trigger_id)
    assert len(runs) == 1
    view = wait_for_run(runs[0])
    assert view.inputs == {"name": "Ann", "age": 42, "plan": "pro", "newsletter": True}


def _runs_of(pg_url: str, trigger_id: str) -> list[str]:
    with get_engine(pg_url).connect() as conn:
        return [str(r) for r in conn.execute(select(Run.id).where(Run.trigger_id == trigger_id)).scalars()]


def test_a_chat_answer_streams_in_and_the_conversation_keeps_its_context(
    page: Page,
    app_server: str,
    login_as,
    engine_here,
    pg_url: str,
    scripted_llm,  # noqa: F811
) -> None:
    scripted_llm.script(answer("Hello Ann, nice to meet you."), answer("You are Ann."))
    scripted_llm.gate = threading.Event()
    try:
        _, trigger = save_chat_workflow(pg_url, chat_definition(scripted_llm))
        login_as(page, "operator")
        page.goto(f"{app_server}/chat/{trigger.id}")
        expect(page.get_by_role("heading", name="Helpdesk")).to_be_visible()
        page.locator("#chat-input").fill("Hi, I am Ann.")
        page.locator("#chat-send").click()
        # The model holds its reply after the first token: the page shows that token already.
        expect(page.get_by_test_id("chat-streaming")).to_have_text("Hello ")
        scripted_llm.gate.set()
        expect(page.get_by_test_id("chat-assistant")).to_have_text("Hello Ann, nice to meet you.")
        expect(page.get_by_test_id("chat-streaming")).to_have_count(0)

        page.locator("#chat-input").fill("Who am I?")
        page.locator("#chat-send").click()
        expect(page.get_by_test_id("chat-assistant").nth(1)).to_have_text("You are Ann.")
        sent = [
            (m["role"], m["content"])
            for m in scripted_llm.requests[1]["body"]["messages"]
            if m["role"] != "system"
        ]
        assert sent == [
            ("user", "Hi, I am Ann."),
            ("assistant", "Hello Ann, nice to meet you."),
            ("user", "Who am I?"),
        ]
        expect(page.get_by_test_id("chat-session")).to_have_count(1)

        page.locator("#chat-new").click()
        expect(page.get_by_test_id("chat-user")).to_have_count(0)
        page.get_by_test_id("chat-session").click()  # back to the earlier conversation
        expect(page.get_by_test_id("chat-user")).to_have_count(2)
        run = get_run(_runs_of(pg_url, trigger.id)[0])
        assert run is not None and run.started_via == "trigger"
    finally:
        scripted_llm.gate.set()

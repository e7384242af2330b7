"""Form triggers: who may open a form, typed inputs and validation messages from the workflow's
inputs schema, and a submission that starts one run (however often it is sent)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

import app.app  # noqa: F401 - registers the pages and their states, as the running app does
from app.auth.principal import Principal
from app.pages.forms_state import FormState
from app.trigger_access import open_chat, open_form
from engine import forms, triggers, workflows
from engine.runs import get_run
from models.db import get_engine, session_scope
from models.tables import Run
from models.workspace_column import DEFAULT_WORKSPACE_ID
from tests.integration.engine_helpers import node, wait_for_run, workflow
from tests.security.test_authorization import cookie_of, reflex_tab

pytestmark = pytest.mark.usefixtures("engine_env", "engine_worker", "clean_db")

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "pattern": "^[A-Z]", "description": "as on your badge"},
        "age": {"type": "integer", "minimum": 18, "maximum": 120},
        "plan": {"enum": ["free", "pro"]},
        "newsletter": {"type": "boolean", "default": False},
        "score": {"type": "number"},
    },
    "required": ["name", "age"],
}


def _form_workflow(pg_url: str, *, public: bool, **config) -> triggers.TriggerRow:
    defn = workflow([node("start", "start"), node("end", "end")], [("start", "end")], name="signup").to_dict()
    defn["inputs"] = SCHEMA
    defn["outputs"] = {"who": "{{ input.name }}", "age": "{{ input.age }}"}
    defn["triggers"] = [
        {"id": "form", "kind": "form", "config": {"public": public, "title": "Sign up", **config}}
    ]
    with session_scope(pg_url) as session:
        workflow_id = workflows.create_workflow(session, "signup").id
        workflows.save_version(session, workflow_id, defn)
    with get_engine(pg_url).connect() as conn:
        (trigger,) = triggers.list_for_workflow(conn, workflow_id)
    return trigger


def _person(role: str) -> Principal:
    # Acting in the default workspace, where the forms' workflows are.
    return Principal(str(uuid.uuid4()), f"{role}@example.test", role, role, "session",
                     workspace_id=str(DEFAULT_WORKSPACE_ID))  # fmt: skip


def test_a_public_form_opens_only_with_its_current_token(pg_url):
    trigger = _form_workflow(pg_url, public=True)
    token = triggers.rotate_token(trigger.id, actor="user:test")
    assert open_form(trigger.id, "", None) is None
    assert open_form(trigger.id, token[:-1] + ("A" if token[-1] != "A" else "B"), None) is None
    opened = open_form(trigger.id, token, None)
    assert opened is not None and opened.schema == SCHEMA and opened.started_by == f"trigger:{trigger.id}"
    assert open_form(str(uuid.uuid4()), token, None) is None  # another id with the same token
    newer = triggers.rotate_token(trigger.id, actor="user:test")
    assert open_form(trigger.id, token, None) is None and open_form(trigger.id, newer, None) is not None
    triggers.set_paused(trigger.id, True, actor="user:test")
    assert open_form(trigger.id, newer, None) is None  # a paused form is "not found" too


def test_a_private_form_is_for_signed_in_operators_only(pg_url):
    trigger = _form_workflow(pg_url, public=False)
    token = triggers.rotate_token(trigger.id, actor="user:test")
    assert open_form(trigger.id, token, None) is None  # a token opens only public forms
    assert open_form(trigger.id, "", _person("viewer")) is None
    operator = _person("operator")
    opened = open_form(trigger.id, "", operator)
    assert opened is not None and opened.started_by == f"user:{operator.user_id}"
    assert open_chat(trigger.id, operator) is None  # a form is no chat


def test_fields_come_from_the_inputs_schema_with_their_limits():
    fields = {f.name: f for f in forms.form_fields(SCHEMA)}
    assert [(f.name, f.type, f.required) for f in fields.values()] == [
        ("name", "string", True), ("age", "integer", True), ("plan", "enum", False),
        ("newsletter", "boolean", False), ("score", "number", False),
    ]  # fmt: skip
    assert fields["age"].hint == "from 18 to 120" and fields["plan"].options == ("free", "pro")
    assert fields["name"].hint == "at least 2 characters, matching ^[A-Z]"
    assert fields["name"].description == "as on your badge"


def test_bad_values_get_a_message_next_to_their_field_and_start_nothing(pg_url):
    trigger = _form_workflow(pg_url, public=True)
    values = {"name": "ann", "age": "seventeen", "plan": "gold", "score": "1e999"}
    sent = forms.submit(trigger, SCHEMA, values, uuid.uuid4().hex)
    assert sent.run_id == ""
    assert sent.errors == {
        "name": "'ann' does not match '^[A-Z]'",
        "age": "enter a whole number",
        "plan": "choose one of free, pro",
        "score": "enter a finite number",
    }
    assert forms.form_inputs(SCHEMA, {"name": "Ann", "age": "12"})[1] == {
        "age": "12 is less than the minimum of 18"
    }
    assert forms.form_inputs(SCHEMA, {"name": "Ann"})[1] == {"age": "required"}
    with get_engine(pg_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(Run)).scalar() == 0


def test_a_submission_starts_one_run_with_typed_inputs_however_often_it_is_sent(pg_url):
    trigger = _form_workflow(pg_url, public=True, show_result=True, wait_s=30)
    submission = uuid.uuid4().hex
    values = {"name": "Ann", "age": "42", "plan": "pro", "newsletter": True, "score": "2.5"}
    first = forms.submit(trigger, SCHEMA, values, submission, started_by=f"trigger:{trigger.id}")
    again = forms.submit(trigger, SCHEMA, values, submission)  # a double click
    assert first.run_id and not first.errors and again.run_id == first.run_id and again.duplicate
    outcome = forms.result(first.run_id, trigger.config.wait_s)
    assert outcome is not None and outcome.status == "succeeded"
    assert outcome.outputs == {"who": "Ann", "age": 42}
    run = get_run(first.run_id)
    assert run.inputs == {"name": "Ann", "age": 42, "plan": "pro", "newsletter": True, "score": 2.5}
    assert (run.started_via, run.started_by) == ("trigger", f"trigger:{trigger.id}")
    other = forms.submit(trigger, SCHEMA, {**values, "age": "43"}, uuid.uuid4().hex)
    assert other.run_id != first.run_id and wait_for_run(other.run_id).status == "succeeded"


def test_a_form_without_show_result_says_its_message_and_shows_no_result(pg_url, make_user):
    trigger = _form_workflow(pg_url, public=False, show_result=False, submit_message="Thanks, noted.")
    operator = make_user("operator")
    tab = reflex_tab(FormState, cookie_of(operator), f"/forms/{trigger.id}", "/forms/[trigger_id]")
    FormState.load.fn(tab)
    assert tab.status == "ready", tab.status
    FormState.set_value.fn(tab, "name", "Ann")
    FormState.set_value.fn(tab, "age", "30")
    assert FormState.submit.fn(tab) is None  # no wait for the run's outputs
    assert (tab.status, tab.message, tab.result) == ("done", "Thanks, noted.", "")
    assert wait_for_run(tab.run_id).inputs == {"name": "Ann", "age": 30, "newsletter": False}

"""Every example of every gallery template, end to end on real PostgreSQL, Redis and Celery workers.

Each case: load the template file, validate it, create its secrets, "use" it (a workflow copy
whose triggers are synced), point the copy's outside addresses at loopback stand-ins (a new
saved version), start it the way the example says (a run, or through its webhook, schedule,
Kafka, form or chat trigger), decide its human steps through engine.approvals, and check what
the template's metadata promises. Templates that need local models run on the AI worker.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from app.api.main import api
from engine import chat_sessions, dispatch, schedule_loop, trigger_fire, triggers, workflows
from engine.errors import DefinitionError
from engine.expressions import evaluate
from engine.kafka_messages import KafkaMessage, run_inputs
from engine.runs import start_run
from engine.settings import get_settings
from engine.template_files import Example, Template
from engine.template_gallery import (
    all_templates,
    get_template,
    import_file,
    install_subworkflows,
    use_template,
)
from engine.validate import validate
from models.db import get_engine, session_scope
from tests.fixtures.ai_engine import ai_data_dir, ai_env, ai_worker  # noqa: F401
from tests.fixtures.scripted_llm import ScriptedLLM, scripted_llm  # noqa: F401
from tests.integration.engine_helpers import wait_for_run
from tests.integration.template_harness import (
    LoopbackService,
    check_variables,
    create_secrets,
    loopback_service,
    make_decisions,
    point_at_loopback,
    script_llm,
)

CASES = [
    pytest.param(t.key, i, id=f"{t.key}-{i}") for t in all_templates() for i in range(len(t.meta.examples))
]
CHAT_OWNER = "ci@example.test"


@pytest.fixture(scope="module")
def service():
    """The stand-in for every outside service the templates call."""
    with loopback_service() as running:
        yield running


def _trigger(workflow_id: str, key: str) -> triggers.TriggerRow:
    with get_engine(get_settings().database_url).connect() as conn:
        found = {t.key: t for t in triggers.list_for_workflow(conn, workflow_id)}
    assert key in found and found[key].live, f"trigger {key} was not synced live: {found}"
    return found[key]


def _through_webhook(trigger: triggers.TriggerRow, payload: dict[str, Any], values: dict[str, str]) -> str:
    body = json.dumps(payload).encode()
    msg_id, now = f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(values[trigger.config.secret]).sign(msg_id, now, body.decode()),
    }
    response = TestClient(api).post(f"/api/hooks/{trigger.id}", content=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["run_id"]


def _through_schedule(trigger: triggers.TriggerRow) -> str:
    """The scheduler's own pass for the trigger's next tick, as if that moment had come."""
    assert trigger.next_fire_at is not None
    with get_engine(get_settings().database_url).begin() as conn:
        totals, sent = schedule_loop.fire_due(conn, uuid.UUID(trigger.id), trigger.next_fire_at)
    dispatch.send(sent)
    assert totals.fired == 1, totals
    return totals.run_ids[0]


def _through_kafka(trigger: triggers.TriggerRow, value: dict[str, Any]) -> str:
    """What the topic's consumer does with one record: its filter and inputs, then its delivery."""
    message = KafkaMessage(topic=trigger.config.topic, partition=0, offset=41, key=None,
                           value=json.dumps(value).encode())  # fmt: skip
    inputs = run_inputs(trigger.config, message)
    assert inputs is not None, "the trigger's filter skipped the example message"
    return str(trigger_fire.fire(trigger, message.delivery_key, inputs).run_id)


def _through_chat(workflow_id: str, trigger: triggers.TriggerRow, turns: list[str]) -> str:
    session = chat_sessions.create(workflow_id, CHAT_OWNER)
    run_id = ""
    for number, message in enumerate(turns, 1):
        run_id = chat_sessions.send(trigger, session.id, CHAT_OWNER, message).run_id
        if number < len(turns):
            view = wait_for_run(run_id, timeout=120)
            assert view.status == "succeeded", (view.error, [s.get("error") for s in view.steps])
    return run_id


def _start(workflow_id: str, example: Example, values: dict[str, str]) -> str:
    if example.trigger is None:
        saved = workflows.saved_version(workflow_id)
        assert saved is not None
        return start_run(saved.definition, example.input, workflow_id=workflow_id,
                         version_id=saved.version_id, started_by="ci")  # fmt: skip
    trigger = _trigger(workflow_id, example.trigger)
    if trigger.kind == "webhook":
        return _through_webhook(trigger, example.input, values)
    if trigger.kind == "schedule":
        return _through_schedule(trigger)
    if trigger.kind == "kafka":
        return _through_kafka(trigger, example.input)
    if trigger.kind == "chat":
        return _through_chat(workflow_id, trigger, example.turns)
    # A form submission starts the run with the form's values as its inputs.
    return str(trigger_fire.fire(trigger, f"form:{uuid.uuid4()}", example.input, started_by="user:ci").run_id)


def _use_and_point_at_loopback(template: Template, llm: ScriptedLLM, service: LoopbackService) -> str:
    with session_scope(get_settings().database_url) as session:
        created = use_template(session, template.key)
    assert created.version == 1 and created.name == template.title
    workflow_id = uuid.UUID(created.workflow_id)
    with get_engine(get_settings().database_url).connect() as conn:
        copied = triggers.list_for_workflow(conn, workflow_id)
    assert all(t.paused for t in copied), "a template's copy must start with its triggers paused"
    for trigger in copied:  # the owner adapted the copy and resumes its triggers
        triggers.set_paused(trigger.id, False, actor="user:ci")
    with session_scope(get_settings().database_url) as session:
        copy = workflows.load_workflow(session, workflow_id)
        assert copy is not None and copy.definition == {**template.definition, "version": 1}
        workflows.save_version(session, workflow_id, point_at_loopback(copy.definition, llm, service),
                               note="CI: outside services on loopback")  # fmt: skip
    return created.workflow_id


def _runtime(request: pytest.FixtureRequest, template: Template) -> None:
    """The AI worker (models in its data dir, its own broker) or the engine worker."""
    if template.meta.needs.models:
        request.getfixturevalue("ai_env")
        request.getfixturevalue("ai_worker")
    else:
        request.getfixturevalue("engine_env")
        request.getfixturevalue("engine_worker")
    request.getfixturevalue("clean_db")


@pytest.mark.parametrize(("key", "index"), CASES)
def test_template_example_runs_end_to_end(
    key: str,
    index: int,
    request: pytest.FixtureRequest,
    scripted_llm: ScriptedLLM,  # noqa: F811 - the imported fixture
    service: LoopbackService,
) -> None:
    template = get_template(key)
    example = template.meta.examples[index]
    _runtime(request, template)
    with session_scope(get_settings().database_url) as session:  # the workflows it calls, pinned at v1
        installed = install_subworkflows(session, template)
    assert sorted(installed) == sorted(b.id for b in template.subworkflows)
    report = validate(template.parsed)
    assert report.ok, [str(issue) for issue in report.errors]

    values = create_secrets(template)
    workflow_id = _use_and_point_at_loopback(template, scripted_llm, service)
    service.script([reply.model_dump() for reply in example.service])
    script_llm(scripted_llm, example, service)

    run_id = _start(workflow_id, example, values)
    make_decisions(run_id, example)
    view = wait_for_run(run_id, timeout=120)
    variables = check_variables(template, view, scripted_llm, service, values)
    shown = json.dumps(variables, indent=1, default=str)[:6000]
    assert view.status == example.expect.status, (view.error, [s.get("error") for s in view.steps], shown)
    for check in example.expect.checks:
        assert evaluate(check, variables) is True, f"{key} [{example.name}]: {check}\n{shown}"


def test_every_template_promises_something_and_the_gallery_has_the_issue_list():
    templates = all_templates()
    assert len(templates) >= 12
    assert all(e.expect.checks for t in templates for e in t.meta.examples)
    kinds = {kind for t in templates for kind in t.meta.needs.triggers}
    assert kinds == {"webhook", "schedule", "kafka", "form", "chat"}
    modes = {t.parsed.mode for t in templates}
    assert modes == {"dag", "state_machine"}


@pytest.mark.usefixtures("engine_env", "clean_db")
def test_importing_a_file_creates_a_workflow_and_a_bad_file_creates_nothing():
    template = get_template("webhook-notify")
    raw = json.dumps({"template": template.meta.model_dump(mode="json"), "definition": template.definition})
    db_url = get_settings().database_url
    with session_scope(db_url) as session:
        created = import_file(session, raw.encode(), "shop-hook.json")
    with session_scope(db_url) as session:
        loaded = workflows.load_workflow(session, uuid.UUID(created.workflow_id))
        notes = [v.note for v in workflows.list_versions(session, uuid.UUID(created.workflow_id))]
    assert loaded is not None and loaded.name == template.title and loaded.version == 1
    assert notes == ["imported from template file shop-hook.json"]
    with get_engine(get_settings().database_url).connect() as conn:
        (incoming,) = triggers.list_for_workflow(conn, created.workflow_id)
    # Synced like any saved version, and paused until the owner resumes it.
    assert (incoming.key, incoming.kind, incoming.paused) == ("incoming", "webhook", True)

    bare = {"name": "Bare import", "nodes": [{"id": "start", "type": "start"}]}
    with session_scope(db_url) as session:
        plain = import_file(session, json.dumps(bare).encode(), "bare.json")
    assert plain.name == "Bare import"
    with pytest.raises(DefinitionError, match="nodes"), session_scope(db_url) as session:
        import_file(session, b"name: no nodes\n", "broken.yaml")
    with session_scope(db_url) as session:
        assert workflows.count_workflows(session) == 2

"""The published envelope: every engine event maps onto its family's JSON Schema; docs show the schemas."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from engine import events
from engine.event_publisher import Item, dead_letter
from engine.event_schema import (
    DOCS_PATH,
    FAMILY_MODELS,
    OutboxRow,
    RunFacts,
    StepFacts,
    UnpublishableEvent,
    docs_schema_section,
    json_schema,
    to_envelope,
    without_data,
)

RUN_ID = str(uuid.uuid4())
STEP_ID = str(uuid.uuid4())
RUN = RunFacts(
    workflow_id="support",
    workflow_name="Customer Support Flow",
    user_id=str(uuid.uuid4()),
    started_by="user:someone",
    nodes={"analyze": ("agent", "Sentiment Analysis"), "reply": ("tool.http", "")},
    edge_targets={"e1": "reply", "e2": "reply"},
    execution_time_ms=2500.0,
)
STEP = StepFacts("agent", inputs={"in": "hello"}, outputs={"out": {"text": "hi"}}, execution_time_ms=2300.0)
_STEP = {"step_id": STEP_ID, "node_id": "analyze"}
# What the executor, the approvals and the nodes write for each event type (engine/*.py, nodes/*).
DATA: dict[str, dict[str, Any]] = {
    events.WORKFLOW_STARTED: {"workflow": "support", "name": "Customer Support Flow", "inputs": {"q": 1}},
    events.WORKFLOW_COMPLETED: {"status": "succeeded", "error": None, "outputs": {"answer": "hi"}},
    events.WORKFLOW_FAILED: {"status": "failed", "error": 'node "analyze" failed: boom', "outputs": None},
    events.WORKFLOW_CANCELLED: {"status": "cancelled", "error": None, "outputs": None},
    events.STEP_STARTED: {**_STEP, "attempt": 1},
    events.STEP_COMPLETED: {**_STEP, "fired_edges": ["e1", "e2"]},
    events.STEP_FAILED: {**_STEP, "error": "boom"},
    events.STEP_RETRYING: {**_STEP, "attempt": 1, "delay_s": 2.0, "error": "timed out"},
    events.STEP_SKIPPED: {"node_id": "reply"},
    events.STEP_WAITING: {**_STEP, "kind": "approval"},
    events.STEP_PROGRESS: {**_STEP, "attempt": 1, "done": 3, "total": 10, "note": "3 of 10 documents"},
    events.APPROVAL_REQUESTED: {**_STEP, "approval_id": str(uuid.uuid4()), "title": "Allow?"},
    events.APPROVAL_DECIDED: {
        **_STEP,
        "approval_id": str(uuid.uuid4()),
        "action": "approved",
        "decided_by": "user:x",
        "status": "approved",
    },  # fmt: skip
    events.GUARDRAIL_VIOLATED: {
        **_STEP,
        "attempt": 1,
        "status": "failed",
        "error": "pii.email found",
        "rule": "input_validation.content_filters.pii",
        "phase": "input",
        "action": "fail",
        "level": "workflow",
        "field": "in.email",
        "excerpt": "me at jo****om",
        "detector": "pii.email",
    },  # fmt: skip
    events.AGENT_STARTED: {
        **_STEP,
        "attempt": 1,
        "agent_id": "AGENT-1",
        "provider": "openai",
        "model": "m",
        "capabilities": ["tools"],
        "resumed": False,
    },  # fmt: skip
    events.AGENT_COMPLETED: {
        **_STEP,
        "attempt": 1,
        "agent_id": "AGENT-1",
        "outcome": "answered",
        "iterations": 2,
        "usage": {"total_tokens": 30},
    },  # fmt: skip
    events.AGENT_FAILED: {**_STEP, "attempt": 1, "agent_id": "AGENT-1", "error": "provider refused"},
    events.AGENT_TOOL_CALLED: {
        **_STEP,
        "attempt": 1,
        "agent_id": "AGENT-1",
        "tool": "add",
        "iteration": 1,
        "ok": False,
    },  # fmt: skip
    events.AGENT_STREAM: {**_STEP, "attempt": 1, "index": 0, "chunks": ["Hel", "lo"]},
    events.AGENT_TRANSITIONED: {
        **_STEP,
        "agent_id": "AGENT-20251001-120000-0001-A1B2",
        "agent_name": "Support",
        "from_state": "READY",
        "to_state": "EXECUTING",
        "trigger": "agent.execute()",
        "check": "input validation",
    },  # fmt: skip
    events.SYSTEM_HEALTH_CHECK: {
        "service": "worker",
        "status": "healthy",
        "alerts": [],
        "host": "h1",
        "pid": 42,
        "metrics": {"cpu_usage": 12.5, "memory_usage": 40.0, "active_runs": 3, "queue_size": 0},
    },  # fmt: skip
}


def row(event_type: str, data: dict[str, Any], sequence: int = 7) -> OutboxRow:
    payload = events.envelope(event_type, RUN_ID, data)
    return OutboxRow(sequence, payload["event_id"], event_type, RUN_ID, payload)


def test_every_event_type_the_engine_writes_becomes_a_record_valid_against_its_family_schema():
    assert set(DATA) == set(events.EVENT_TYPES)
    for event_type, data in DATA.items():
        family, record = to_envelope(row(event_type, data), RUN, STEP)
        Draft202012Validator(json_schema(family)).validate(record)
        assert family == event_type.split(".")[0]
        assert (record["event_type"], record["run_id"], record["sequence"]) == (event_type, RUN_ID, 7)


def test_step_completed_carries_the_design_fields_from_the_definition_and_the_step_row():
    _, record = to_envelope(row(events.STEP_COMPLETED, DATA[events.STEP_COMPLETED]), RUN, STEP)
    assert record["workflow_id"] == "support" and record["workflow_name"] == "Customer Support Flow"
    assert (record["step_id"], record["step_name"], record["step_type"]) == (
        "analyze",
        "Sentiment Analysis",
        "agent",
    )
    assert record["step_run_id"] == STEP_ID and record["status"] == "succeeded"
    assert record["input_data"] == {"in": "hello"} and record["output_data"] == {"out": {"text": "hi"}}
    assert record["execution_time_ms"] == 2300.0
    assert record["next_steps"] == ["reply"]  # two fired edges to one node: named once


def test_agent_events_carry_agent_user_and_execution_ids_and_the_workflow_in_metadata():
    _, record = to_envelope(row(events.AGENT_COMPLETED, DATA[events.AGENT_COMPLETED]), RUN, STEP)
    assert record["agent_id"] == "AGENT-1" and record["execution_id"] == STEP_ID
    assert record["user_id"] == RUN.user_id and record["session_id"] is None
    assert record["output_data"] == {"outcome": "answered", "iterations": 2, "usage": {"total_tokens": 30}}
    assert record["metadata"]["workflow_id"] == "support" and record["metadata"]["step_id"] == "analyze"
    _, tool = to_envelope(row(events.AGENT_TOOL_CALLED, DATA[events.AGENT_TOOL_CALLED]), RUN, STEP)
    assert tool["status"] == "failed"


def test_a_run_end_takes_the_run_time_and_a_step_started_no_outputs():
    _, done = to_envelope(row(events.WORKFLOW_COMPLETED, DATA[events.WORKFLOW_COMPLETED]), RUN, None)
    assert done["execution_time_ms"] == 2500.0 and done["output_data"] == {"answer": "hi"}
    _, started = to_envelope(row(events.STEP_STARTED, DATA[events.STEP_STARTED]), RUN, STEP)
    assert started["input_data"] == {"in": "hello"} and started["output_data"] is None
    assert started["attempt"] == 1


def test_an_event_without_run_facts_still_validates():
    family, record = to_envelope(row(events.WORKFLOW_STARTED, DATA[events.WORKFLOW_STARTED]), None, None)
    Draft202012Validator(json_schema(family)).validate(record)
    assert record["workflow_name"] == "Customer Support Flow"


@pytest.mark.parametrize(
    ("event_type", "data", "message"),
    [
        ("workflow.step.teleported", {"node_id": "a"}, "does not match its schema"),
        ("billing.charged", {}, "belongs to no family"),
        (events.STEP_STARTED, {**_STEP, "attempt": "first"}, "does not match its schema"),
    ],
)
def test_an_event_that_fits_no_schema_is_unpublishable(event_type, data, message):
    payload = {"event_id": str(uuid.uuid4()), "timestamp": "2026-01-01T00:00:00+00:00", "data": data}
    with pytest.raises(UnpublishableEvent, match=message):
        to_envelope(OutboxRow(1, payload["event_id"], event_type, RUN_ID, payload), RUN, STEP)


def test_without_data_leaves_out_only_the_data_and_names_what_it_left_out():
    family, record = to_envelope(row(events.STEP_STARTED, DATA[events.STEP_STARTED]), RUN, STEP)
    slim = without_data(record)
    assert slim["input_data"] is None and slim["truncated"] == ["input_data"]
    assert {k: v for k, v in slim.items() if k not in ("input_data", "truncated")} == {
        k: v for k, v in record.items() if k not in ("input_data", "truncated")
    }
    Draft202012Validator(json_schema(family)).validate(slim)


def test_a_dead_letter_keeps_a_small_payload_whole_and_an_excerpt_of_a_large_one():
    small = row(events.AGENT_FAILED, DATA[events.AGENT_FAILED])
    large = row(events.AGENT_FAILED, {**DATA[events.AGENT_FAILED], "error": "z" * 50_000})
    records = []
    for r in (small, large):
        item = Item(
            r.id, r.event_id, r.event_type, r.run_id, r.payload, "flowloom.agent", None, error="too large"
        )
        records.append(dead_letter(item, payload_limit=10_000))
    for record in records:
        Draft202012Validator(json_schema("dead-letter")).validate(record)
    assert records[0]["original_payload"] == small.payload and records[0]["original_payload_excerpt"] is None
    assert records[1]["original_payload"] is None and len(records[1]["original_payload_excerpt"]) <= 4096
    assert records[1]["original_payload_bytes"] > 50_000 and records[1]["error"] == "too large"


def test_schemas_are_draft_2020_12_and_docs_events_md_shows_them_as_generated():
    for family in FAMILY_MODELS:
        schema = json_schema(family)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)
    assert docs_schema_section() in DOCS_PATH.read_text(encoding="utf-8"), (
        "docs/events.md is out of date: run `python -m engine.event_schema`"
    )

"""Event envelopes (workflow.* and agent.*) and the outbox they are written to."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import (
    Connection,
    DateTime,
    Insert,
    Text,
    Uuid,
    bindparam,
    cast,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.selectable import CTE

from models.core_tables import table_of
from models.tables import Event

# The event types the engine emits; the envelope is the same for all of them.
WORKFLOW_STARTED = "workflow.started"
WORKFLOW_COMPLETED = "workflow.completed"
WORKFLOW_FAILED = "workflow.failed"
WORKFLOW_CANCELLED = "workflow.cancelled"
STEP_STARTED = "workflow.step.started"
STEP_COMPLETED = "workflow.step.completed"
STEP_FAILED = "workflow.step.failed"
STEP_RETRYING = "workflow.step.retrying"
STEP_SKIPPED = "workflow.step.skipped"
STEP_WAITING = "workflow.step.waiting"
STEP_PROGRESS = "workflow.step.progress"  # a running step says how far it got (StepContext.progress)
APPROVAL_REQUESTED = "workflow.approval.requested"
APPROVAL_DECIDED = "workflow.approval.decided"
GUARDRAIL_VIOLATED = "workflow.guardrail.violated"  # a guardrails rule fired on a step
AGENT_STARTED = "agent.started"
AGENT_COMPLETED = "agent.completed"
AGENT_FAILED = "agent.failed"
AGENT_TOOL_CALLED = "agent.tool.called"
AGENT_STREAM = "agent.stream"  # a batch of generated tokens, while a model streams
AGENT_TRANSITIONED = "agent.transitioned"  # a saved agent moved along its lifecycle (engine/agent_store.py)
SYSTEM_HEALTH_CHECK = "system.health_check"  # a web or worker process's health (run_id NULL)

EVENT_TYPES = (
    WORKFLOW_STARTED,
    WORKFLOW_COMPLETED,
    WORKFLOW_FAILED,
    WORKFLOW_CANCELLED,
    STEP_STARTED,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_RETRYING,
    STEP_SKIPPED,
    STEP_WAITING,
    STEP_PROGRESS,
    APPROVAL_REQUESTED,
    APPROVAL_DECIDED,
    GUARDRAIL_VIOLATED,
    AGENT_STARTED,
    AGENT_COMPLETED,
    AGENT_FAILED,
    AGENT_TOOL_CALLED,
    AGENT_STREAM,
    AGENT_TRANSITIONED,
    SYSTEM_HEALTH_CHECK,
)

# inline(): the generated id is not fetched back (no RETURNING); nothing reads it here.
_EVENTS = table_of(Event)
_INSERT = (
    insert(_EVENTS)
    .values(
        event_id=bindparam("event_id"),
        event_type=bindparam("event_type"),
        run_id=bindparam("run_id"),
        payload=bindparam("payload"),
        created_at=bindparam("created_at"),
    )
    .inline()
)


def envelope(
    event_type: str, run_id: str | None, data: dict[str, Any], now: datetime | None = None
) -> dict[str, Any]:
    """The common event envelope: id, type, time, source, correlation (run) id, data."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    now = now or datetime.now(UTC)
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "timestamp": now.isoformat(),
        "source": "flowloom.engine",
        "schema_version": 1,
        "correlation_id": run_id,
        "data": data,
    }


def emit(conn: Connection, event_type: str, run_id: str | None, **data: Any) -> None:
    """Write one event to the outbox inside the caller's transaction."""
    now = datetime.now(UTC)
    env = envelope(event_type, run_id, data, now)
    conn.execute(
        _INSERT,
        {
            "event_id": env["event_id"],
            "event_type": event_type,
            "run_id": run_id,
            "payload": env,
            "created_at": now,
        },
    )


class StepRef(Protocol):
    """The step an event is about (a claimed step fits)."""

    run_id: str
    step_id: str
    node_id: str


def emit_step(conn: Connection, event_type: str, step: StepRef, **data: Any) -> None:
    """`emit` an event of one step: in its run, with its step_id and node_id before `data`."""
    emit(conn, event_type, step.run_id, step_id=step.step_id, node_id=step.node_id, **data)


def step_event_from(event_type: str, steps: CTE, *, strip_nulls: bool = False, **data: Any) -> Insert:
    """An INSERT of one `event_type` event per row of `steps` (a CTE of step rows with id, run_id and
    node_id), with the payload `emit_step` writes and `data` (columns of `steps` or values): the
    statement that changes the steps writes their events too, so they cost no round trip of their
    own and exist exactly when a row changed. With `strip_nulls`, data fields bound to None are
    left out (as `emit_step` callers leave out what they do not know). Bind
    `step_event_params(event_type)` with it."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    fields: list[Any] = ["step_id", cast(steps.c.id, Text), "node_id", steps.c.node_id]
    for key, value in data.items():
        fields += [key, value]
    body = func.jsonb_build_object(*fields)
    if strip_nulls:
        body = func.jsonb_strip_nulls(body)
    payload = cast(bindparam("event_envelope", type_=JSONB), JSONB).op("||")(
        func.jsonb_build_object("correlation_id", cast(steps.c.run_id, Text), "data", body)
    )
    rows = select(
        bindparam("event_id", type_=Uuid),
        literal(event_type),
        steps.c.run_id,
        payload,
        bindparam("event_created_at", type_=DateTime(timezone=True)),
    ).select_from(steps)
    return insert(_EVENTS).from_select(["event_id", "event_type", "run_id", "payload", "created_at"], rows)


def step_event_params(event_type: str) -> Mapping[str, Any]:
    """The bound values of a `step_event_from` statement: a new event id, its envelope and time."""
    now = datetime.now(UTC)
    env = envelope(event_type, None, {}, now)
    return {"event_id": env["event_id"], "event_envelope": env, "event_created_at": now}

"""Event envelopes (workflow.* and agent.*) and the outbox they are written to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, insert

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
_INSERT = (
    insert(table_of(Event))
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

"""GET /api/runs/{run_id}/events: a run's events as Server-Sent Events, resumable.

Each event of the run's outbox is one SSE message: `id:` its sequence number, `event:` its type
(workflow.*, agent.*, agent.stream for a model's token deltas) and `data:` the event's JSON
envelope. A client that reconnects with `Last-Event-ID` (or `?after=`) gets exactly the events
after that one. Idle streams get a keep-alive comment; the stream ends after the run's last event
(a finished run's stream replays everything and closes).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from app.api.callers import Caller
from engine import run_stream, runs
from engine.errors import ErrorCode, FlowloomError

router = APIRouter(tags=["runs"])

KEEPALIVE_S = 15.0  # a comment after this long without an event keeps proxies from closing the stream
RETRY_MS = 2000  # how long a browser's EventSource waits before it reconnects


class RunEventEnvelope(BaseModel):
    """The `data:` of each message: the event as the engine wrote it to the outbox."""

    event_id: uuid.UUID = Field(description="unique; the same id the event has on Kafka")
    event_type: str = Field(description="also the message's `event:` field")
    timestamp: datetime
    source: str
    schema_version: int
    correlation_id: uuid.UUID | None = Field(description="the run id")
    data: dict[str, Any] = Field(
        description="the event's fields (node_id, step_id, status, outputs, text, ...)"
    )


async def _known_run(run_id: uuid.UUID, principal: Caller) -> uuid.UUID:
    """The run id, or 404 before the stream starts (also for a run of another workspace)."""
    if not await asyncio.to_thread(runs.in_workspace, str(run_id), workspace_id=principal.workspace_id):
        raise FlowloomError(f"run {run_id} not found", code=ErrorCode.RUN_NOT_FOUND)
    return run_id


def _start_after(
    after: int | None = Query(
        None, ge=0, description="send the events after this `id:` (for clients that cannot set Last-Event-ID)"
    ),
    last_event_id: str | None = Header(
        None, alias="Last-Event-ID", description="the `id:` of the last event received; wins over `after`"
    ),
) -> int:
    if last_event_id is None or not last_event_id.strip():
        return after or 0
    try:
        seq = int(last_event_id.strip())
    except ValueError:
        seq = -1
    if seq < 0:
        raise FlowloomError(
            f"Last-Event-ID {last_event_id[:40]!r} is not an event id of this stream (a number)",
            code=ErrorCode.REQUEST_INVALID,
            field="Last-Event-ID",
        )
    return seq


@router.get(
    "/runs/{run_id}/events",
    response_class=EventSourceResponse,
    responses={404: {"description": "No such run"}, 422: {"description": "A bad Last-Event-ID or after"}},
)
async def stream_run_events(
    run_id: Annotated[uuid.UUID, Depends(_known_run)], after: Annotated[int, Depends(_start_after)]
) -> AsyncIterator[RunEventEnvelope]:
    """The run's events as Server-Sent Events (`text/event-stream`), from the first (or after
    `Last-Event-ID`) to the run's end; while the run goes, new events arrive as they commit."""
    yield ServerSentEvent(comment="run events", retry=RETRY_MS)
    async for event in run_stream.follow(str(run_id), after, idle_s=KEEPALIVE_S):
        if event is None:
            yield ServerSentEvent(comment="keep-alive")
            continue
        yield ServerSentEvent(
            raw_data=json.dumps(event.payload, ensure_ascii=False, separators=(",", ":"), default=str),
            event=event.event_type,
            id=str(event.seq),
        )

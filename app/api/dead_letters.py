"""/api/dead-letters: events and trigger messages that could not be handled; list, read, replay (admins)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from app.api.callers import InstanceAdmin, client_ip
from engine import dead_letters
from engine.errors import ErrorCode, FlowloomError

router = APIRouter(tags=["dead letters"])
PREVIEW_CHARS = 300


class DeadLetterPublic(BaseModel):
    """A dead letter; the list shows a preview of its payload, GET of one the whole payload."""

    id: int
    source: Literal["event", "kafka", "webhook", "schedule"]
    topic: str = Field(description="the Kafka topic a message came from, or the topic an event was for")
    message_key: str | None = Field(description="the message's key (an event's run id)")
    trigger_id: uuid.UUID | None
    trigger_key: str | None = Field(description="the trigger's id in the workflow definition")
    workflow_name: str | None
    event_id: uuid.UUID | None = Field(description="the outbox event (source event)")
    error: str
    attempts: int = Field(description="1 + the replays that failed")
    created_at: datetime
    replayed_at: datetime | None
    replayed_by: str | None
    replay_run_id: uuid.UUID | None = Field(description="the run the replay started")
    payload_preview: str = Field(description=f"the payload as JSON, its first {PREVIEW_CHARS} characters")
    payload: dict[str, Any] | None = Field(None, description="the whole payload (GET of one dead letter)")


class DeadLetterList(BaseModel):
    items: list[DeadLetterPublic]
    total: int = Field(description="how many match the filters in all")
    limit: int
    offset: int


class ReplayPublic(BaseModel):
    dead_letter: DeadLetterPublic
    run_id: uuid.UUID | None = Field(description="the run started (null for an event, or a skipped message)")
    note: str


def preview(payload: dict[str, Any], chars: int = PREVIEW_CHARS) -> str:
    """The payload as compact JSON, cut to `chars` characters."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= chars else text[: chars - 1] + "…"


def public(row: dead_letters.DeadLetterRow, *, full: bool = False) -> DeadLetterPublic:
    """The API's view of a row (the whole payload only when `full`)."""
    fields = {k: v for k, v in vars(row).items() if k != "payload"}
    return DeadLetterPublic(
        **fields, payload_preview=preview(row.payload), payload=row.payload if full else None
    )


@router.get("/dead-letters", response_model=DeadLetterList)
def list_dead_letters(
    principal: InstanceAdmin,
    source: Literal["event", "kafka", "webhook", "schedule"] | None = Query(None),
    replayed: bool | None = Query(
        None, description="true: only replayed ones; false: only those not replayed"
    ),
    limit: int = Query(50, ge=1, le=dead_letters.MAX_PAGE),
    offset: int = Query(0, ge=0, le=2**63 - 1),  # PostgreSQL's OFFSET is a BIGINT
) -> DeadLetterList:
    """Dead letters, newest first (admins only)."""
    page = dead_letters.list_dead_letters(source=source, replayed=replayed, limit=limit, offset=offset)
    return DeadLetterList(items=[public(r) for r in page.rows], total=page.total, limit=limit, offset=offset)


@router.get("/dead-letters/{dead_letter_id}", response_model=DeadLetterPublic, responses={404: {}})
def read_dead_letter(
    dead_letter_id: Annotated[int, Path(ge=-(2**63), le=2**63 - 1)], principal: InstanceAdmin
) -> DeadLetterPublic:
    """One dead letter with its whole payload (admins only)."""
    row = dead_letters.get(dead_letter_id)
    if row is None:
        raise FlowloomError(f"no dead letter {dead_letter_id}", code=ErrorCode.DEAD_LETTER_NOT_FOUND)
    return public(row, full=True)


@router.post(
    "/dead-letters/{dead_letter_id}/replay",
    response_model=ReplayPublic,
    responses={404: {}, 409: {}, 422: {}},
)
def replay_dead_letter(
    dead_letter_id: Annotated[int, Path(ge=-(2**63), le=2**63 - 1)],
    principal: InstanceAdmin,
    request: Request,
) -> ReplayPublic:
    """Handle a dead letter again: an event is queued for the relay once more, a trigger message starts
    its run (once: its delivery key is kept). 409 when it was replayed before (admins only)."""
    done = dead_letters.replay(dead_letter_id, actor=principal.actor, ip=client_ip(request))
    return ReplayPublic(dead_letter=public(done.dead_letter), run_id=done.run_id, note=done.note)

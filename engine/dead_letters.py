"""Dead letters: the one door to what could not be handled, for the relay, the consumers, the page and the API.

A dead letter is an outbox event the relay could not publish (source "event") or a trigger's message
that could not start a run (source "kafka"; "webhook" and "schedule" for those triggers), with the
error and the original payload. An admin lists them and replays one:

- **event**: the outbox row is queued again (`published_at` cleared): the relay publishes it with the
  settings it has now (a raised message limit, a newer schema), through the same ordered producer,
  schema check and at-least-once marking as every other event; if it fails again it becomes a new
  dead letter. (Publishing from the web process instead would need a producer there and skip those.)
- **kafka**: the message is handled again from the stored payload (parse, filter, inputs) and starts
  its run with the original delivery key (topic:partition:offset), so a replay cannot start a second run.
- **webhook** / **schedule**: the trigger fires again with the stored `inputs` and `delivery_key`.

A replay is audited and sets replayed_at, replayed_by and replay_run_id; a dead letter is replayed once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import DataError
from sqlmodel import col

from engine import audit, dispatch, trigger_fire, triggers
from engine.errors import ErrorCode, FlowloomError, user_message
from engine.kafka_messages import KafkaMessage, run_inputs
from engine.run_state import Dispatch
from engine.settings import get_settings
from engine.trigger_config import KafkaConfig
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Event, Workflow
from models.triggers import DeadLetter, Trigger

SOURCES = ("event", "kafka", "webhook", "schedule")
MAX_PAGE = 200

_dead = table_of(DeadLetter)
_events = table_of(Event)
_triggers = table_of(Trigger)
_SELECT = (
    select(*_dead.c, _triggers.c.key.label("trigger_key"), col(Workflow.name).label("workflow_name"))
    .outerjoin(_triggers, _triggers.c.id == _dead.c.trigger_id)
    .outerjoin(Workflow, col(Workflow.id) == _triggers.c.workflow_id)
)


@dataclass
class DeadLetterRow:
    """One dead letter as the page and the API show it."""

    id: int
    source: str
    topic: str
    message_key: str | None
    trigger_id: str | None
    trigger_key: str | None
    workflow_name: str | None
    event_id: str | None
    error: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    replayed_at: datetime | None
    replayed_by: str | None
    replay_run_id: str | None


@dataclass
class DeadLetterPage:
    """A page of dead letters, newest first, and how many match in all."""

    rows: list[DeadLetterRow]
    total: int


@dataclass
class Replayed:
    """What a replay did: the run it started (None for an event, or a message the filter now skips)."""

    dead_letter: DeadLetterRow
    run_id: str | None
    note: str


def _db(database_url: str | None = None):
    return get_engine(database_url or get_settings().database_url)


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None


def _row(r: Any) -> DeadLetterRow:
    return DeadLetterRow(
        id=r.id, source=r.source, topic=r.topic, message_key=r.message_key, trigger_id=_str(r.trigger_id),
        trigger_key=r.trigger_key, workflow_name=r.workflow_name, event_id=_str(r.event_id), error=r.error,
        payload=dict(r.payload or {}), attempts=r.attempts, created_at=r.created_at, replayed_at=r.replayed_at,
        replayed_by=r.replayed_by, replay_run_id=_str(r.replay_run_id),
    )  # fmt: skip


def record(
    conn: Connection,
    *,
    source: str,
    error: str,
    payload: dict[str, Any],
    topic: str = "",
    message_key: str | None = None,
    trigger_id: str | None = None,
    event_id: str | None = None,
) -> int:
    """Write a dead letter in the caller's transaction (with the offset or outbox mark it goes with); its id."""
    if source not in SOURCES:
        raise ValueError(f"dead letter source {source!r} is not one of {', '.join(SOURCES)}")
    return conn.execute(
        _dead.insert()
        .values(
            source=source,
            topic=(topic or "")[:249],
            message_key=message_key[:300] if message_key else None,
            trigger_id=trigger_id,
            event_id=event_id,
            error=error or "unknown error",
            payload=payload,
            attempts=1,
            created_at=func.now(),
        )  # fmt: skip
        .returning(_dead.c.id)
    ).scalar_one()


def list_dead_letters(
    *,
    source: str | None = None,
    replayed: bool | None = None,
    limit: int = 50,
    offset: int = 0,
    database_url: str | None = None,
) -> DeadLetterPage:
    """Dead letters newest first, optionally of one source and replayed or not; `limit` up to MAX_PAGE."""
    if source is not None and source not in SOURCES:
        raise FlowloomError(f"source must be one of {', '.join(SOURCES)}, not {source!r}",
                            code=ErrorCode.REQUEST_INVALID, field="source")  # fmt: skip
    where = []
    if source is not None:
        where.append(_dead.c.source == source)
    if replayed is not None:
        where.append(_dead.c.replayed_at.is_not(None) if replayed else _dead.c.replayed_at.is_(None))
    limit, offset = max(1, min(limit, MAX_PAGE)), max(0, offset)
    with _db(database_url).connect() as conn:
        rows = conn.execute(_SELECT.where(*where).order_by(_dead.c.id.desc()).limit(limit).offset(offset))
        page = [_row(r) for r in rows]
        total = conn.execute(select(func.count()).select_from(_dead).where(*where)).scalar_one()
    return DeadLetterPage(page, total)


def get(dead_letter_id: int, *, database_url: str | None = None) -> DeadLetterRow | None:
    """One dead letter, None if there is none with that id."""
    with _db(database_url).connect() as conn:
        r = conn.execute(_SELECT.where(_dead.c.id == dead_letter_id)).first()
    return _row(r) if r is not None else None


def replay(dead_letter_id: int, *, actor: str, ip: str = "", database_url: str | None = None) -> Replayed:
    """Handle a dead letter again (see the module's docstring); audited either way.

    Raises DEAD_LETTER_NOT_FOUND, CONFLICT when it was replayed before, and the handling's own error
    (invalid inputs, a paused trigger, a message that is still not JSON) when it fails again; a failed
    replay counts an attempt and changes nothing else.
    """
    failure: FlowloomError | None = None
    sent: list[Dispatch] = []
    with _db(database_url).begin() as conn:
        row = conn.execute(_SELECT.where(_dead.c.id == dead_letter_id).with_for_update(of=_dead)).first()
        if row is None:
            raise FlowloomError(f"no dead letter {dead_letter_id}", code=ErrorCode.DEAD_LETTER_NOT_FOUND)
        letter = _row(row)
        if letter.replayed_at is not None:
            raise FlowloomError(
                f"dead letter {dead_letter_id} was replayed at {letter.replayed_at:%Y-%m-%d %H:%M:%S} UTC "
                f"by {letter.replayed_by}"
                + (f" (run {letter.replay_run_id})" if letter.replay_run_id else ""),
                code=ErrorCode.CONFLICT,
            )
        details: dict[str, Any] = {"source": letter.source, "trigger_id": letter.trigger_id}
        replayer = _REPLAYERS.get(letter.source)
        try:
            if replayer is None:
                raise FlowloomError(f"dead letters of source {letter.source!r} cannot be replayed",
                                    code=ErrorCode.REQUEST_INVALID)  # fmt: skip
            with conn.begin_nested():
                run_id, note, sent = replayer(conn, letter)
        except FlowloomError as exc:
            failure = exc
        except DataError as exc:
            failure = FlowloomError(
                f"PostgreSQL refused the data: {exc.orig}", code=ErrorCode.REQUEST_INVALID
            )
        if failure is not None:
            conn.execute(update(_dead).where(_dead.c.id == letter.id).values(attempts=_dead.c.attempts + 1))
            audit.record(conn, actor=actor, action="dead_letter.replay_failed", target_type="dead_letter",
                         target_id=str(letter.id), details={**details, "error": user_message(failure)}, ip=ip)  # fmt: skip
        else:
            conn.execute(
                update(_dead)
                .where(_dead.c.id == letter.id)
                .values(replayed_at=func.now(), replayed_by=actor[:320], replay_run_id=run_id)
            )
            audit.record(conn, actor=actor, action="dead_letter.replayed", target_type="dead_letter",
                         target_id=str(letter.id), details={**details, "run_id": run_id, "note": note}, ip=ip)  # fmt: skip
    if failure is not None:
        raise failure
    dispatch.send(sent)
    return Replayed(get(dead_letter_id, database_url=database_url) or letter, run_id, note)


def _replay_event(conn: Connection, letter: DeadLetterRow) -> tuple[str | None, str, list[Dispatch]]:
    """Queue the outbox row again: the relay publishes it (or dead-letters it anew)."""
    event_id = uuid.UUID(letter.event_id) if letter.event_id else None
    requeued = conn.execute(
        update(_events)
        .where(_events.c.event_id == event_id)
        .values(published_at=None, payload=_events.c.payload.op("-")("dead_letter"))
        .returning(_events.c.id)
    ).scalar()
    if requeued is None:
        raise FlowloomError(f"the outbox row of event {letter.event_id} is gone; nothing to publish again",
                            code=ErrorCode.REQUEST_INVALID)  # fmt: skip
    return None, f"event {letter.event_id} is queued in the outbox again; the relay publishes it", []


def _trigger(conn: Connection, letter: DeadLetterRow) -> triggers.TriggerRow:
    trigger = triggers.get(conn, letter.trigger_id) if letter.trigger_id else None
    if trigger is None:
        raise FlowloomError(f"the trigger of dead letter {letter.id} is gone (or its config is invalid)",
                            code=ErrorCode.TRIGGER_NOT_FOUND)  # fmt: skip
    return trigger


def _replay_kafka(conn: Connection, letter: DeadLetterRow) -> tuple[str | None, str, list[Dispatch]]:
    """Handle the stored message again; its delivery key makes it start at most one run."""
    trigger = _trigger(conn, letter)
    if not isinstance(trigger.config, KafkaConfig):
        raise FlowloomError(
            f"trigger {trigger.key!r} is no longer a Kafka trigger", code=ErrorCode.REQUEST_INVALID
        )
    message = KafkaMessage.from_payload(letter.payload)
    inputs = run_inputs(trigger.config, message)
    if inputs is None:
        return None, "the trigger's filter skips this message now: no run started", []
    fired = trigger_fire.fire_in(
        conn, trigger, message.delivery_key, inputs, started_by=f"trigger:{trigger.id}"
    )
    note = "the message had started this run before" if fired.duplicate else "run started"
    return fired.run_id, note, fired.dispatches


def _replay_fire(conn: Connection, letter: DeadLetterRow) -> tuple[str | None, str, list[Dispatch]]:
    """Fire a webhook or schedule trigger again with the stored inputs and delivery key."""
    trigger = _trigger(conn, letter)
    inputs = letter.payload.get("inputs")
    if not isinstance(inputs, dict):
        raise FlowloomError(f"dead letter {letter.id} stores no inputs object to fire with",
                            code=ErrorCode.REQUEST_INVALID)  # fmt: skip
    key = str(letter.payload.get("delivery_key") or letter.message_key or f"dead-letter:{letter.id}")
    fired = trigger_fire.fire_in(conn, trigger, key, inputs)
    note = "the delivery had started this run before" if fired.duplicate else "run started"
    return fired.run_id, note, fired.dispatches


_REPLAYERS = {
    "event": _replay_event,
    "kafka": _replay_kafka,
    "webhook": _replay_fire,
    "schedule": _replay_fire,
}

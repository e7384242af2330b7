"""The scheduler: fire the due ticks of schedule triggers, each exactly once however many run.

One pass (`SchedulerLoop.run_once`) lists the schedules whose `next_fire_at` has come, then takes
each in a transaction of its own: lock its row (FOR UPDATE SKIP LOCKED, so a second scheduler takes
other rows instead of waiting), work out the ticks to fire (engine.schedule_ticks: the missed-tick
policy), start one run per tick through engine.trigger_fire (the tick's UTC time is the delivery
key: a tick that fired once never fires again), move `next_fire_at` past now, commit, and only
then send the runs' first steps. Exactly once therefore rests on two things: the row lock, and the
delivery key's unique index inside the transaction that creates the run.

A tick whose run cannot start (inputs that do not fit the schema, a definition that no longer
validates) becomes a dead letter (source "schedule", engine.dead_letters) in the same transaction
and does not stop the trigger's later ticks; replaying it fires the tick with its own delivery key.

Inputs of a tick's run: the trigger's `config.inputs`, plus `scheduled_at` (the tick's UTC time,
e.g. "2024-05-01T03:00:00Z") when the workflow's inputs schema declares a `scheduled_at` property.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from engine import dead_letters, dispatch, trigger_fire, triggers
from engine.backoff import call_until_stopped
from engine.errors import FlowloomError, user_message
from engine.run_state import Dispatch
from engine.schedule_ticks import due, tick_key, upcoming
from engine.trigger_config import ScheduleConfig
from models.core_tables import table_of
from models.db import get_engine
from models.triggers import Trigger

log = logging.getLogger(__name__)

_triggers = table_of(Trigger)
SCHEDULED_AT = "scheduled_at"  # the run input a workflow may declare to learn its tick's time
_LIVE_SCHEDULE = (_triggers.c.kind == "schedule", _triggers.c.active, ~_triggers.c.paused)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PassTotals:
    """What one pass (or a whole run of the loop) did."""

    triggers: int = 0  # schedules handled
    fired: int = 0  # runs started
    duplicates: int = 0  # ticks that had fired before (another scheduler got there first)
    failed: int = 0  # ticks whose run could not start (each recorded as a dead letter)
    skipped: int = 0  # missed ticks left out by the missed-tick policy
    run_ids: list[str] = field(default_factory=list)

    def add(self, other: PassTotals) -> None:
        """Count `other` in (run ids are not kept across passes)."""
        self.triggers += other.triggers
        self.fired += other.fired
        self.duplicates += other.duplicates
        self.failed += other.failed
        self.skipped += other.skipped


def tick_inputs(config: ScheduleConfig, inputs_schema: dict[str, Any], tick: datetime) -> dict[str, Any]:
    """The run inputs of one tick: the configured ones, and `scheduled_at` if the schema declares it."""
    inputs = dict(config.inputs)
    if SCHEDULED_AT in (inputs_schema.get("properties") or {}):
        inputs[SCHEDULED_AT] = tick_key(tick)
    return inputs


def _record_failure(conn: Connection, trigger: triggers.TriggerRow, tick: datetime, inputs: dict[str, Any],
                    error: str) -> None:  # fmt: skip
    """A tick that could not start its run: a dead letter an admin can see and replay (with the
    tick's delivery key, so a replay still starts at most one run for the tick)."""
    key = tick_key(tick)
    payload = {"trigger_id": trigger.id, "trigger_key": trigger.key, "workflow_id": trigger.workflow_id,
               "delivery_key": key, SCHEDULED_AT: key, "inputs": inputs}  # fmt: skip
    dead_letters.record(conn, source="schedule", error=error[:2000], payload=payload, message_key=key,
                        trigger_id=trigger.id)  # fmt: skip


def fire_due(conn: Connection, trigger_id: uuid.UUID, now: datetime) -> tuple[PassTotals, list[Dispatch]]:
    """Fire the due ticks of one schedule in the caller's transaction (which must commit before the
    returned steps are sent). Nothing happens when the row is locked by another scheduler or no
    longer due."""
    totals = PassTotals()
    locked = conn.execute(
        select(_triggers.c.id, _triggers.c.next_fire_at)
        .where(_triggers.c.id == trigger_id, *_LIVE_SCHEDULE, _triggers.c.next_fire_at <= now)
        .with_for_update(skip_locked=True)
    ).first()
    if locked is None:
        return totals, []
    trigger = triggers.get(conn, trigger_id)
    if trigger is None or not isinstance(trigger.config, ScheduleConfig):
        # An unreadable config never fires; clear its tick so it stops coming up as due.
        conn.execute(update(_triggers).where(_triggers.c.id == trigger_id).values(next_fire_at=None))
        return totals, []
    config: ScheduleConfig = trigger.config
    plan = due(config, locked.next_fire_at, now)
    totals.triggers, totals.skipped = 1, plan.skipped
    if plan.skipped:
        log.warning("schedule %s (%s): %d missed tick(s) skipped (missed=%s)", trigger.key, trigger.id,
                    plan.skipped, config.missed)  # fmt: skip
    sent: list[Dispatch] = []
    schema: dict[str, Any] = {}
    if plan.fire:
        try:
            schema = dict(trigger_fire.published_definition(conn, trigger.workflow_id)[0].inputs or {})
        except FlowloomError:
            schema = {}  # fire_in says what is wrong, per tick
    for tick in plan.fire:
        inputs = tick_inputs(config, schema, tick)
        savepoint = conn.begin_nested()
        try:
            fired = trigger_fire.fire_in(conn, trigger, tick_key(tick), inputs)
        except FlowloomError as exc:
            savepoint.rollback()
            log.warning("schedule %s: tick %s did not start a run: %s", trigger.key, tick_key(tick),
                        user_message(exc))  # fmt: skip
            _record_failure(conn, trigger, tick, inputs, user_message(exc))
            totals.failed += 1
            continue
        savepoint.commit()
        if fired.duplicate:
            totals.duplicates += 1
        else:
            totals.fired += 1
            totals.run_ids.append(str(fired.run_id))
            sent.extend(fired.dispatches)
    values: dict[str, Any] = {"next_fire_at": plan.next_fire_at, "updated_at": func.now()}
    if plan.fire:
        values["last_fire_at"] = plan.fire[-1]
    conn.execute(update(_triggers).where(_triggers.c.id == trigger_id).values(**values))
    return totals, sent


def due_trigger_ids(conn: Connection, now: datetime, limit: int = 500) -> list[uuid.UUID]:
    """Live schedules whose next tick has come, earliest first (read without locking)."""
    rows = conn.execute(
        select(_triggers.c.id)
        .where(*_LIVE_SCHEDULE, _triggers.c.next_fire_at <= now)
        .order_by(_triggers.c.next_fire_at)
        .limit(limit)
    )
    return [r.id for r in rows]


def next_fire_times(config: ScheduleConfig, count: int = 5, after: datetime | None = None) -> list[datetime]:
    """The next `count` tick times of a schedule (what the editor and the API show)."""
    return upcoming(config, after or _utcnow(), count)


class SchedulerLoop:
    """Polls for due schedules and fires them; several may run against one database."""

    def __init__(self, database_url: str, *, poll_interval_s: float = 1.0,
                 clock: Callable[[], datetime] = _utcnow, send: Callable[[list[Dispatch]], object] = dispatch.send,
                 batch: int = 500) -> None:  # fmt: skip
        self.engine = get_engine(database_url)
        self.poll_interval_s = poll_interval_s
        self.clock = clock  # a test may move time; ticks never depend on the wall clock otherwise
        self.send = send
        self.batch = batch
        self.totals = PassTotals()

    def run_once(self) -> PassTotals:
        """One pass over the due schedules: one transaction per trigger; a trigger that fails (the
        database refused something) is logged and tried again on the next pass."""
        now = self.clock()
        result = PassTotals()
        with self.engine.connect() as conn:
            ids = due_trigger_ids(conn, now, self.batch)
        for trigger_id in ids:
            try:
                with self.engine.begin() as conn:
                    totals, sent = fire_due(conn, trigger_id, now)
            except OperationalError:
                raise  # the database is gone (or broke a deadlock): the loop waits, then passes again
            except Exception:  # one broken trigger must not stop the others
                log.exception("schedule %s: could not fire its due ticks; trying again next pass", trigger_id)
                continue
            self.send(sent)  # after the commit: a step the broker missed is resent by the sweeper
            result.add(totals)
            result.run_ids.extend(totals.run_ids)
        self.totals.add(result)
        return result

    def run(self, stop: threading.Event) -> None:
        """Pass after pass until `stop` is set; a database outage is waited out (engine.backoff)."""
        while not stop.is_set():
            started = time.monotonic()
            done = call_until_stopped(
                self.run_once, stop, what="scheduler", transient=(SQLAlchemyError,),
                initial_s=self.poll_interval_s, max_s=30.0,
            )  # fmt: skip
            if done is None:
                break  # stopped
            if done.triggers == self.batch:
                continue  # more are due: no pause
            stop.wait(max(self.poll_interval_s - (time.monotonic() - started), 0.0))

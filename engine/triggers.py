"""Triggers: the one door to them for the pages, the REST API, the scheduler and the consumers.

A workflow declares its triggers in its definition; `sync` (called when a version is saved)
mirrors them into the `triggers` table, where the run-time state lives (paused, next tick, a
form's token). Starting a run for a delivery is engine.trigger_fire's job.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Connection, func, select, update
from sqlmodel import col

from engine import audit
from engine.definition import TriggerSpec
from engine.errors import ErrorCode, FlowloomError
from engine.ids import parse_id
from engine.settings import get_settings
from engine.trigger_config import ScheduleConfig, config_problems, next_ticks, parse_config
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Workflow
from models.triggers import Trigger

_triggers = table_of(Trigger)


@dataclass
class TriggerRow:
    """A trigger as the pages, routes and loops use it; `config` is the kind's typed model."""

    id: str
    workflow_id: str
    key: str
    kind: str
    config: Any
    active: bool
    paused: bool
    next_fire_at: datetime | None = None
    last_fire_at: datetime | None = None
    has_token: bool = False
    workflow_name: str = ""

    @property
    def live(self) -> bool:
        """It may fire: still in the latest version, enabled, not paused."""
        return self.active and not self.paused


def _db(database_url: str | None = None):
    return get_engine(database_url or get_settings().database_url)


def _row(r: Any) -> TriggerRow | None:
    try:
        config = parse_config(r.kind, dict(r.config or {}))
    except (PydanticValidationError, KeyError):
        return None  # an invalid config never fires (sync stores it inactive)
    return TriggerRow(
        str(r.id), str(r.workflow_id), r.key, r.kind, config, r.active, r.paused, r.next_fire_at,
        r.last_fire_at, r.token_hash is not None, getattr(r, "name", "") or "",
    )  # fmt: skip


_SELECT = select(*_triggers.c, col(Workflow.name)).join(Workflow, col(Workflow.id) == _triggers.c.workflow_id)


def get(conn: Connection, trigger_id: str | uuid.UUID, *, for_update: bool = False) -> TriggerRow | None:
    """The trigger `trigger_id` (None if unknown, malformed or its config is invalid)."""
    tid = parse_id(trigger_id)
    if tid is None:
        return None
    query = _SELECT.where(_triggers.c.id == tid)
    if for_update:
        query = query.with_for_update(of=_triggers)
    r = conn.execute(query).first()
    return _row(r) if r is not None else None


def get_now(trigger_id: str | uuid.UUID, *, database_url: str | None = None) -> TriggerRow | None:
    """`get` in a connection of its own."""
    with _db(database_url).connect() as conn:
        return get(conn, trigger_id)


def list_for_workflow(conn: Connection, workflow_id: str | uuid.UUID) -> list[TriggerRow]:
    """The workflow's triggers (inactive ones too), by key."""
    wid = parse_id(workflow_id)
    if wid is None:
        return []
    rows = conn.execute(_SELECT.where(_triggers.c.workflow_id == wid).order_by(_triggers.c.key))
    return [t for t in (_row(r) for r in rows) if t is not None]


def list_live(
    conn: Connection, kind: str, *, workspace_id: str | uuid.UUID | None = None
) -> list[TriggerRow]:
    """Every trigger of `kind` that may fire now (the consumers' and the scheduler's view); of the
    workflows of one workspace when `workspace_id` is given (an API key's, for /v1 and MCP)."""
    query = _SELECT.where(_triggers.c.kind == kind, _triggers.c.active, ~_triggers.c.paused)
    if workspace_id is not None:
        query = query.where(col(Workflow.workspace_id) == (parse_id(workspace_id) or uuid.UUID(int=0)))
    rows = conn.execute(query.order_by(_triggers.c.id))
    return [t for t in (_row(r) for r in rows) if t is not None]


def sync(conn: Connection, workflow_id: str | uuid.UUID, definition: dict[str, Any]) -> None:
    """Mirror the triggers of a just-saved definition into the table (in the save's transaction).

    A trigger keeps its row (and so its URL, pause state and offsets) across versions by its key;
    one dropped from the definition, disabled or with an invalid config becomes inactive.
    """
    wid = parse_id(workflow_id)
    specs: list[TriggerSpec] = []
    keys: set[str] = set()
    for raw in definition.get("triggers") or []:
        try:
            spec = TriggerSpec.model_validate(raw)
        except PydanticValidationError:
            continue  # the validator reports it; an unparsable trigger is simply not live
        if spec.id in keys:
            continue  # a repeated id (the validator reports it): the first one is the live one
        keys.add(spec.id)
        specs.append(spec)
    existing = {r.key: r for r in conn.execute(select(_triggers).where(_triggers.c.workflow_id == wid))}
    now = datetime.now(UTC)
    for spec in specs:
        valid = not config_problems(spec.kind, spec.config)
        active = spec.enabled and valid
        old = existing.pop(spec.id, None)
        values: dict[str, Any] = {
            "kind": spec.kind,
            "config": spec.config,
            "active": active,
            "updated_at": now,
        }
        if spec.kind == "schedule" and active:
            changed = (
                old is None or old.kind != "schedule" or dict(old.config) != spec.config or not old.active
            )
            if changed or old is None or old.next_fire_at is None:
                values["next_fire_at"] = next_ticks(ScheduleConfig.model_validate(spec.config), now)[0]
        elif spec.kind != "schedule":
            values["next_fire_at"] = None
        if old is None:
            conn.execute(_triggers.insert().values(id=uuid.uuid4(), workflow_id=wid, key=spec.id, paused=False,
                                                   created_at=now, **values))  # fmt: skip
        else:
            conn.execute(update(_triggers).where(_triggers.c.id == old.id).values(**values))
    for gone in existing.values():
        if gone.active:
            conn.execute(
                update(_triggers).where(_triggers.c.id == gone.id).values(active=False, updated_at=now)
            )


def pause_all(conn: Connection, workflow_id: str | uuid.UUID) -> int:
    """Pause every trigger of a workflow (a copy made from a template starts with its triggers
    paused, so nothing fires before its owner adapted it); how many were paused."""
    result = conn.execute(
        update(_triggers)
        .where(_triggers.c.workflow_id == parse_id(workflow_id), ~_triggers.c.paused)
        .values(paused=True, updated_at=func.now())
    )
    return result.rowcount or 0


def set_paused(trigger_id: str, paused: bool, *, actor: str, database_url: str | None = None) -> TriggerRow:
    """Pause or resume (audited). A resumed schedule fires from the next tick on: the ticks of the
    pause are not caught up."""
    with _db(database_url).begin() as conn:
        row = get(conn, trigger_id, for_update=True)
        if row is None:
            raise FlowloomError(f"no trigger {trigger_id}", code=ErrorCode.TRIGGER_NOT_FOUND)
        values: dict[str, Any] = {"paused": paused, "updated_at": func.now()}
        if not paused and isinstance(row.config, ScheduleConfig):
            values["next_fire_at"] = next_ticks(row.config, datetime.now(UTC))[0]
        conn.execute(update(_triggers).where(_triggers.c.id == row.id).values(**values))
        audit.record(conn, actor=actor, action="trigger.paused" if paused else "trigger.resumed",
                     target_type="trigger", target_id=row.id, details={"workflow_id": row.workflow_id})  # fmt: skip
        updated = get(conn, trigger_id)
        if updated is None:  # not reached: the row is locked since the read above
            raise FlowloomError(f"no trigger {trigger_id}", code=ErrorCode.TRIGGER_NOT_FOUND)
        return updated


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def rotate_token(trigger_id: str, *, actor: str, database_url: str | None = None) -> str:
    """A new access token for a public form or chat (the old one stops working); shown once."""
    token = secrets.token_urlsafe(24)
    with _db(database_url).begin() as conn:
        row = get(conn, trigger_id, for_update=True)
        if row is None or row.kind not in ("form", "chat"):
            raise FlowloomError(f"no form or chat trigger {trigger_id}", code=ErrorCode.TRIGGER_NOT_FOUND)
        conn.execute(update(_triggers).where(_triggers.c.id == row.id).values(token_hash=_token_hash(token)))
        audit.record(conn, actor=actor, action="trigger.token_rotated", target_type="trigger", target_id=row.id,
                     details={"workflow_id": row.workflow_id})  # fmt: skip
    return token


def token_matches(conn: Connection, trigger_id: str, token: str) -> bool:
    """Whether `token` is the trigger's current access token (constant-time comparison)."""
    tid = parse_id(trigger_id)
    if tid is None or not token:
        return False
    stored = conn.execute(select(_triggers.c.token_hash).where(_triggers.c.id == tid)).scalar()
    return isinstance(stored, str) and bool(stored) and hmac.compare_digest(stored, _token_hash(token))

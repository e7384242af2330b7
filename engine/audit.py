"""The audit log, its one writer and its listing.

Every change people make is written by `record`, in the transaction of the change it describes:
workflows and versions, runs started and cancelled (from the UI, the API, the CLI or a trigger),
approval votes and decisions, secrets (never their values), API keys, users' roles, settings,
agents, triggers. `record_now` is for events that change nothing else (a refused sign-in).

Who acted and from where: each entry names the actor, the `source` (ui, api, cli, trigger,
system) and the client's address. A caller passes them, or the request's `Who` set by `acting_as`
(the HTTP gate sets it for every API request) fills them in. The table refuses UPDATE and DELETE
(a trigger, migration 0011), so nothing in the app can change an entry once it is written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, insert, null, or_, true
from sqlmodel import Session, col, select

from engine.settings import get_settings
from models.auth import AuditLog
from models.core_tables import table_of
from models.db import get_engine

log = logging.getLogger("flowloom.audit")

# Detail keys that never reach the log, whatever a caller passes.
_SECRET_WORDS = ("secret", "password", "token", "key_hash", "api_key", "cookie", "authorization")
# Keys whose name holds a secret word but whose value is only a harmless fact or a public id.
_ALLOWED_KEYS = frozenset({"api_key_id"})
_TABLE = table_of(AuditLog)
SOURCES = ("ui", "api", "cli", "trigger", "system")
PAGE_MAX = 500
EXPORT_MAX = 10_000
EXPORT_COLUMNS = ("id", "at", "actor", "source", "ip", "action", "target_type", "target_id",
                  "details", "before", "after")  # fmt: skip


@dataclass(frozen=True)
class Who:
    """Who does something, from where: an audit entry's actor, source and client address."""

    actor: str
    source: str = ""
    ip: str = ""


SYSTEM = Who("system", "system")
_CURRENT: ContextVar[Who | None] = ContextVar("flowloom_audit_who", default=None)


@contextmanager
def acting_as(who: Who) -> Iterator[Who]:
    """Within the block, entries without an explicit actor name `who` (a request's caller)."""
    token = _CURRENT.set(who)
    try:
        yield who
    finally:
        _CURRENT.reset(token)


def current() -> Who:
    """The caller set by `acting_as`, else the system."""
    return _CURRENT.get() or SYSTEM


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return lowered not in _ALLOWED_KEYS and any(w in lowered for w in _SECRET_WORDS)


def _scrub(details: dict[str, Any] | None) -> Any:
    if not details:
        return null()  # SQL NULL, not the JSON value null
    kept = {k: v for k, v in details.items() if not _is_secret(k)}
    return json.loads(json.dumps(kept, default=str))  # ids and times as the strings people read


def record(
    db: Connection | Session,
    *,
    action: str,
    actor: str = "",
    target_type: str = "",
    target_id: str = "",
    details: dict[str, Any] | None = None,
    ip: str = "",
    source: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    who: Who | None = None,
) -> None:
    """Add an entry in the caller's transaction (it commits, or rolls back, with the change it describes).

    `actor`, `source` and `ip` win over `who`, which wins over the request's caller (`acting_as`).
    """
    by = who or current()
    actor = actor or by.actor
    db.execute(
        insert(_TABLE)
        .values(
            at=func.now(),
            actor=actor[:320],
            action=action[:100],
            target_type=target_type[:50],
            target_id=str(target_id)[:100],
            details=_scrub(details),
            ip=(ip or by.ip)[:64],
            source=(source or by.source or _source_of(actor))[:20],
            before=_scrub(before),
            after=_scrub(after),
        )
        .inline()  # no RETURNING of the generated id
    )
    log.info("audit: %s %s %s:%s", actor, action, target_type, target_id)


def before_after(changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`before` and `after` from changes written as {field: {"from": old, "to": new}}."""
    pairs = {k: v for k, v in changes.items() if isinstance(v, dict) and {"from", "to"} <= v.keys()}
    return {
        "before": {k: v["from"] for k, v in pairs.items()},
        "after": {k: v["to"] for k, v in pairs.items()},
    }


def _source_of(actor: str) -> str:
    """A source read from how runs name their starters ("trigger:<id>", "cli:<user>", "system")."""
    kind = actor.split(":", 1)[0]
    return kind if kind in SOURCES else ""


def record_now(*, database_url: str | None = None, **entry: Any) -> None:
    """Add an entry in a transaction of its own."""
    with get_engine(database_url or get_settings().database_url).begin() as conn:
        record(conn, **entry)


@dataclass(frozen=True)
class AuditQuery:
    """What to list: each filter that is set narrows the entries (all of them must hold)."""

    actor: str = ""  # part of the actor, case-insensitive
    action: str = ""  # an action ("run.started") or its kind ("run": every "run.*")
    target_type: str = ""
    target_id: str = ""
    source: str = ""
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _conditions(query: AuditQuery) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if query.actor.strip():
        found.append(col(AuditLog.actor).ilike(_like(query.actor.strip()), escape="\\"))
    action = query.action.strip()
    if action:
        prefix = action.removesuffix(".*").removesuffix(".")
        found.append(or_(col(AuditLog.action) == action, col(AuditLog.action).startswith(prefix + ".")))
    if query.target_type.strip():
        found.append(col(AuditLog.target_type) == query.target_type.strip())
    if query.target_id.strip():
        found.append(col(AuditLog.target_id) == query.target_id.strip())
    if query.source.strip():
        found.append(col(AuditLog.source) == query.source.strip())
    if query.since is not None:
        found.append(col(AuditLog.at) >= query.since)
    if query.until is not None:
        found.append(col(AuditLog.at) < query.until)
    return found


def search(session: Session, query: AuditQuery, *, limit: int = 100, offset: int = 0) -> list[AuditLog]:
    """The entries matching `query`, newest first, one page of them."""
    where = and_(true(), *_conditions(query))
    rows = session.exec(
        select(AuditLog).where(where).order_by(col(AuditLog.id).desc()).offset(max(0, offset))
        .limit(max(1, min(limit, EXPORT_MAX)))
    )  # fmt: skip
    return list(rows)


def count(session: Session, query: AuditQuery) -> int:
    """How many entries match `query`."""
    return session.exec(
        select(func.count()).select_from(AuditLog).where(and_(true(), *_conditions(query)))
    ).one()


def record_export(
    db: Connection | Session, query: AuditQuery, *, kind: str, entries: int, who: Who | None = None
) -> None:
    """Who took a copy of the log, and of which part: an export is itself on record."""
    filters = {"actor": query.actor, "action": query.action, "target_type": query.target_type,
               "target_id": query.target_id, "source": query.source, "since": query.since, "until": query.until}  # fmt: skip
    details = {"format": kind, "entries": entries, **{k: str(v) for k, v in filters.items() if v}}
    record(db, action="audit.exported", target_type="audit_log", details=details, who=who)


def entries(session: Session, *, limit: int = 100, action: str = "", actor: str = "") -> list[AuditLog]:
    """The newest entries first, optionally for one exact action or actor."""
    query = select(AuditLog)
    if action:
        query = query.where(AuditLog.action == action)
    if actor:
        query = query.where(AuditLog.actor == actor)
    return list(session.exec(query.order_by(col(AuditLog.id).desc()).limit(limit)))


def facets(session: Session) -> tuple[list[str], list[str]]:
    """Every action and every object kind the log holds, for a filter's choices."""
    found = session.exec(select(AuditLog.action, AuditLog.target_type).distinct()).all()
    return sorted({a for a, _ in found}), sorted({t for _, t in found if t})


def as_dict(entry: AuditLog) -> dict[str, Any]:
    """One entry as JSON-ready data (the export's and the API's shape)."""
    return {
        "id": entry.id, "at": entry.at.isoformat(), "actor": entry.actor, "source": entry.source,
        "ip": entry.ip, "action": entry.action, "target_type": entry.target_type,
        "target_id": entry.target_id, "details": entry.details, "before": entry.before, "after": entry.after,
    }  # fmt: skip


def _cell(value: Any) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, default=str)
    # A spreadsheet runs a cell that starts like a formula: quote it (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(rows: Sequence[AuditLog]) -> str:
    """The entries as CSV with a header line; JSON columns as JSON text, formulas defused."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for entry in rows:
        data = as_dict(entry)
        writer.writerow([_cell(data[c]) if c != "id" else data[c] for c in EXPORT_COLUMNS])
    return out.getvalue()


def json_text(rows: Sequence[AuditLog]) -> str:
    """The entries as a JSON array."""
    return json.dumps([as_dict(e) for e in rows], indent=1, default=str)

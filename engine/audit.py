"""The audit log, its one writer and its listing.

Sign-ins, role changes, keys, secrets, run starts and cancels, approval votes, decisions, expiries:
every entry is written by `record`, in the transaction of the change it describes (a run started
from the CLI or a trigger is audited like one from the UI or the API). `record_now` is for events
that change nothing else (a refused sign-in).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import Connection, func, insert, null
from sqlmodel import Session, col, select

from engine.settings import get_settings
from models.auth import AuditLog
from models.core_tables import table_of
from models.db import get_engine

log = logging.getLogger("flowloom.audit")

# Detail keys that never reach the log, whatever a caller passes.
_SECRET_WORDS = ("secret", "password", "token", "key_hash", "api_key", "cookie", "authorization")
_TABLE = table_of(AuditLog)


def _scrub(details: dict[str, Any] | None) -> Any:
    if not details:
        return null()  # SQL NULL, not the JSON value null
    kept = {k: v for k, v in details.items() if not any(w in k.lower() for w in _SECRET_WORDS)}
    return json.loads(json.dumps(kept, default=str))  # ids and times as the strings people read


def record(
    db: Connection | Session,
    *,
    actor: str,
    action: str,
    target_type: str = "",
    target_id: str = "",
    details: dict[str, Any] | None = None,
    ip: str = "",
) -> None:
    """Add an entry in the caller's transaction (it commits, or rolls back, with the change it describes)."""
    db.execute(
        insert(_TABLE)
        .values(
            at=func.now(),
            actor=actor[:320],
            action=action[:100],
            target_type=target_type[:50],
            target_id=str(target_id)[:100],
            details=_scrub(details),
            ip=ip[:64],
        )
        .inline()  # no RETURNING of the generated id
    )
    log.info("audit: %s %s %s:%s", actor, action, target_type, target_id)


def record_now(*, database_url: str | None = None, **entry: Any) -> None:
    """Add an entry in a transaction of its own."""
    with get_engine(database_url or get_settings().database_url).begin() as conn:
        record(conn, **entry)


def entries(session: Session, *, limit: int = 100, action: str = "", actor: str = "") -> list[AuditLog]:
    """The newest entries first, optionally for one action or actor."""
    query = select(AuditLog)
    if action:
        query = query.where(AuditLog.action == action)
    if actor:
        query = query.where(AuditLog.actor == actor)
    return list(session.exec(query.order_by(col(AuditLog.id).desc()).limit(limit)))

"""The audit log: sign-ins, role changes, key creation and revocation, approval decisions.

Run starts and cancels (`run.started`, `run.cancelled`: actor, workflow, version, via) and approval
votes are written by engine.runs / engine.approvals in the transaction of the change itself, so a
run from the CLI or a trigger is audited like one from the UI or the API.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session, col, select

from app.db import db_session
from models.auth import AuditLog

log = logging.getLogger(__name__)

# Detail keys that never reach the log, whatever a caller passes.
_SECRET_WORDS = ("secret", "password", "token", "key_hash", "api_key", "cookie", "authorization")


def _scrub(details: dict[str, Any] | None) -> dict[str, Any] | None:
    if not details:
        return None
    return {k: v for k, v in details.items() if not any(w in k.lower() for w in _SECRET_WORDS)}


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str = "",
    target_id: str = "",
    details: dict[str, Any] | None = None,
    ip: str = "",
) -> None:
    """Add an entry in the caller's transaction (it commits with the change it describes)."""
    session.add(
        AuditLog(
            actor=actor[:320],
            action=action[:100],
            target_type=target_type[:50],
            target_id=str(target_id)[:100],
            details=_scrub(details),
            ip=ip[:64],
        )
    )
    log.info("audit: %s %s %s:%s", actor, action, target_type, target_id)


def record_now(**entry: Any) -> None:
    """Add an entry in a transaction of its own."""
    with db_session() as session:
        record(session, **entry)


def entries(session: Session, *, limit: int = 100, action: str = "", actor: str = "") -> list[AuditLog]:
    """The newest entries first, optionally for one action or actor."""
    query = select(AuditLog)
    if action:
        query = query.where(AuditLog.action == action)
    if actor:
        query = query.where(AuditLog.actor == actor)
    return list(session.exec(query.order_by(col(AuditLog.id).desc()).limit(limit)))

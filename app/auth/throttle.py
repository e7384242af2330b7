"""Back-off for failed sign-ins and API-key attempts, kept in PostgreSQL (`auth_throttle`).

Each attempt is counted under several keys at once (the client's address and the account, or
the address and the key's prefix). After `FLOWLOOM_AUTH_FAILURES_BEFORE_BACKOFF` failures a key
is blocked for 5 s, then 10 s, 20 s, ... up to 15 minutes per further failure; while any key of an
attempt is blocked the attempt is refused unchecked. A key forgets its failures after a quiet
window. The table is shared, so every web process sees the same counts.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session

from engine.errors import ErrorCode, FlowloomError
from engine.settings import get_settings
from models.auth import AuthThrottle

QUIET_WINDOW = timedelta(minutes=15)  # failures are forgotten after this long without a block
FIRST_BACKOFF_S = 5.0
MAX_BACKOFF_S = 900.0
STALE_AFTER = timedelta(days=1)  # rows this old (and not blocked) are deleted now and then


class Throttled(FlowloomError):
    """Too many failed attempts: refused without checking; `retry_after` seconds to wait."""

    code = ErrorCode.TOO_MANY_ATTEMPTS

    def __init__(self, retry_after: float, message: str) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message)


def client_key(kind: str, client_ip: str) -> str:
    """The throttle key of one client address for one kind of attempt ("login", "api-key")."""
    return f"{kind}-ip:{client_ip[:64]}"


def subject_key(kind: str, subject: str) -> str:
    """The throttle key of what was tried: an account's e-mail or a key prefix (hashed, fixed size)."""
    digest = hashlib.sha256(subject.strip().lower().encode()).hexdigest()[:40]
    return f"{kind}:{digest}"


def backoff_s(failures: int, threshold: int) -> float:
    """Seconds blocked after `failures` failures (0 below `threshold`)."""
    if failures < threshold:
        return 0.0
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** min(failures - threshold, 20))


def _now() -> datetime:
    return datetime.now(UTC)


def blocked_for(session: Session, keys: list[str]) -> float:
    """Seconds until none of `keys` is blocked any more (0 when none is)."""
    if not keys:
        return 0.0
    now = _now()
    table = AuthThrottle.__table__
    latest = session.execute(
        select(func.max(table.c.blocked_until)).where(table.c.key.in_(keys), table.c.blocked_until > now)
    ).scalar_one_or_none()
    return (latest - now).total_seconds() if latest is not None else 0.0


def check(session: Session, keys: list[str], what: str, subject: str) -> None:
    """Raise `Throttled` when any of `keys` is blocked; `what` and `subject` name them in the message."""
    wait = blocked_for(session, keys)
    if wait > 0:
        raise Throttled(
            wait,
            f"too many failed {what} attempts from this address or for this {subject}; "
            f"wait {max(1, math.ceil(wait))} s and try again",
        )


def record_failure(session: Session, keys: list[str]) -> float:
    """Count one failure under each of `keys`; the longest block it caused, in seconds."""
    now = _now()
    threshold = get_settings().auth_failures_before_backoff
    table = AuthThrottle.__table__
    quiet = and_(
        table.c.first_failure_at < now - QUIET_WINDOW,
        or_(table.c.blocked_until.is_(None), table.c.blocked_until < now - QUIET_WINDOW),
    )
    longest = 0.0
    for key in sorted(set(keys)):  # a fixed order: two processes never wait on each other's rows
        upsert = insert(table).values(key=key, failures=1, first_failure_at=now, blocked_until=None)
        upsert = upsert.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "failures": case((quiet, 1), else_=table.c.failures + 1),
                "first_failure_at": case((quiet, now), else_=table.c.first_failure_at),
            },
        ).returning(table.c.failures)
        failures = session.execute(upsert).scalar_one()
        wait = backoff_s(failures, threshold)
        if wait:
            session.execute(
                update(table).where(table.c.key == key).values(blocked_until=now + timedelta(seconds=wait))
            )
            longest = max(longest, wait)
    if secrets.randbelow(100) == 0:  # now and then, not on every failure: the delete scans the table
        session.execute(
            delete(table).where(
                table.c.first_failure_at < now - STALE_AFTER,
                or_(table.c.blocked_until.is_(None), table.c.blocked_until < now),
            )
        )
    return longest


def clear(session: Session, keys: list[str]) -> None:
    """Forget the failures of `keys` (after a success for that account or key)."""
    if keys:
        table = AuthThrottle.__table__
        session.execute(delete(table).where(table.c.key.in_(keys)))

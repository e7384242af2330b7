"""API keys for the REST API: shown once, stored as a SHA-256 hash, scoped to a role, revocable,
each with its own rate limit.

The default limit, 600 requests a minute, lets a client follow a run by polling it every 250 ms
with room to spare. Failed attempts are throttled apart from that, per client address and per key
prefix, with back-off (app.auth.throttle), in every web process alike.

A key reads `flk_<prefix>_<secret>`: the prefix (stored in clear, indexed) finds the row and tells
keys apart in lists; the whole key's hash is compared in constant time. 32 random bytes make a
slow hash unnecessary.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
import uuid
from datetime import timedelta

from sqlmodel import Session, col, select

from app.auth import throttle
from app.auth.policy import RANK, Role, allows, is_role, lower_role
from engine.errors import ErrorCode, FlowloomError
from models.auth import ApiKey, User
from models.tables import utcnow

KEY_MARK = "flk_"
PREFIX_LENGTH = 8
MAX_RATE_PER_MIN = 6000
DEFAULT_RATE_PER_MIN = 600  # a client polling a run every 250 ms uses 240
THROTTLE_KIND = "api-key"
_LAST_USED_EVERY = timedelta(seconds=60)


class ApiKeyError(FlowloomError):
    """A key request was refused; the message says why."""

    code = ErrorCode.API_KEY_INVALID


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(value: str) -> bool:
    """True when `value` has the shape of a Flowloom key (for scrubbing and quick refusal)."""
    return value.startswith(KEY_MARK) and value.count("_") >= 2


def create(
    session: Session,
    owner: User,
    *,
    name: str,
    role: str,
    rate_limit_per_min: int = DEFAULT_RATE_PER_MIN,
    workspace_id: uuid.UUID | str | None = None,
    owner_role: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key for `owner` acting in workspace `workspace_id` only (None: the default one), with a
    role up to what the owner can do there: the lower of `owner_role` (their role there; None: their
    instance role) and their instance role, as a key acts (`verify`, `lower_role`). Returns the row
    and the key itself, which is never shown again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ApiKeyError("name: give the key a name of 1 to 100 characters", field="name")
    if not is_role(role):
        raise ApiKeyError(f"role: {role!r} is not one of admin, editor, operator, viewer", field="role")
    ceiling = lower_role(owner_role, owner.role) if owner_role else owner.role
    if not allows(ceiling, role):
        raise ApiKeyError(
            f"role: your keys here act as {ceiling} at most (the lower of your role in this workspace"
            f" and your instance role), so you cannot create a key with the {role} role",
            field="role",
        )
    if not 1 <= rate_limit_per_min <= MAX_RATE_PER_MIN:
        raise ApiKeyError(f"rate_limit_per_min: between 1 and {MAX_RATE_PER_MIN}", field="rate_limit_per_min")
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    key = f"{KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        user_id=owner.id, name=name, prefix=prefix, key_hash=hash_key(key), role=role,
        rate_limit_per_min=rate_limit_per_min,
    )  # fmt: skip
    if workspace_id is not None:
        row.workspace_id = uuid.UUID(str(workspace_id))
    session.add(row)
    session.flush()
    return row, key


def _prefix(presented: str) -> str:
    """The prefix part of something shaped like a key ("" when it has none)."""
    if not looks_like_key(presented) or len(presented) > 200:
        return ""
    prefix = presented[len(KEY_MARK) :].split("_", 1)[0]
    return prefix if len(prefix) == PREFIX_LENGTH else ""


def throttle_keys(presented: str, client_ip: str) -> list[str]:
    """What a failed attempt with `presented` counts against: the client's address and the key prefix."""
    keys = [throttle.client_key(THROTTLE_KIND, client_ip)] if client_ip else []
    prefix = _prefix(presented)
    if prefix:
        keys.append(throttle.subject_key(f"{THROTTLE_KIND}-prefix", prefix))
    return keys


def verify_throttled(session: Session, presented: str, client_ip: str) -> tuple[ApiKey, User, str] | None:
    """`verify`, refused unchecked (`throttle.Throttled`) after too many failures from this client or
    for this key prefix; a failure here counts toward both."""
    keys = throttle_keys(presented, client_ip)
    throttle.check(session, keys, "API key", "key")
    found = verify(session, presented)
    if found is None:
        throttle.record_failure(session, keys)
    return found


def verify(session: Session, presented: str) -> tuple[ApiKey, User, str] | None:
    """(key row, owner, effective role) for a valid, unrevoked key of an active user; else None.

    The effective role is the lower of the key's role and its owner's current role.
    """
    prefix = _prefix(presented)
    if not prefix:
        return None
    digest = hash_key(presented)
    rows = session.exec(
        select(ApiKey, User).join(User, col(User.id) == col(ApiKey.user_id)).where(ApiKey.prefix == prefix)
    ).all()
    found = None
    for key_row, user in rows:  # compare every candidate, so timing says nothing about which matched
        if hmac.compare_digest(key_row.key_hash, digest):
            found = (key_row, user)
    if found is None:
        return None
    key_row, user = found
    if key_row.revoked_at is not None or not user.is_active or user.role not in RANK:
        return None
    now = utcnow()
    if key_row.last_used_at is None or now - key_row.last_used_at > _LAST_USED_EVERY:
        key_row.last_used_at = now
        session.add(key_row)
    return key_row, user, lower_role(key_row.role, user.role)


def _workspace_key(workspace_id: uuid.UUID | str) -> uuid.UUID:
    try:
        return uuid.UUID(str(workspace_id))
    except ValueError:
        return uuid.UUID(int=0)  # names no workspace: matches nothing


def list_keys(
    session: Session, user_id: uuid.UUID | None = None, *, workspace_id: uuid.UUID | str | None = None
) -> list[ApiKey]:
    """Keys of one user (all keys when `user_id` is None), of one workspace when given, newest first."""
    query = select(ApiKey)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    if workspace_id is not None:
        query = query.where(col(ApiKey.workspace_id) == _workspace_key(workspace_id))
    return list(session.exec(query.order_by(col(ApiKey.created_at).desc())))


def revoke(
    session: Session,
    key_id: uuid.UUID,
    *,
    by_user: uuid.UUID,
    by_role: str,
    workspace_id: uuid.UUID | str | None = None,
) -> ApiKey | None:
    """Revoke a key of `by_user` (an admin may revoke any); None when the caller may not see it
    (also a key of another workspace than `workspace_id`, when given)."""
    row = session.get(ApiKey, key_id)
    if row is None or (row.user_id != by_user and by_role != Role.ADMIN):
        return None
    if workspace_id is not None and row.workspace_id != _workspace_key(workspace_id):
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        session.flush()
    return row


class RateLimiter:
    """A token bucket per key, in this process: `per_min` requests a minute, bursts up to `per_min`.

    Each web process keeps its own buckets, so N processes allow up to N times the rate.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, per_min: int) -> float:
        """Spend one token; returns 0 when allowed, else the seconds until a token is back."""
        now = time.monotonic()
        rate = per_min / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key, (float(per_min), now))
            tokens = min(float(per_min), tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return math.ceil((1 - tokens) / rate * 10) / 10

    def reset(self) -> None:
        """Forget every bucket (tests)."""
        with self._lock:
            self._buckets.clear()


rate_limiter = RateLimiter()

"""Who is calling: a signed-in user (session cookie) or an API key, with the role that applies."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from app.auth import api_keys, sessions
from app.auth.policy import RANK
from app.auth.users import get_user
from app.db import db_session
from engine.approvers import Approver

# A session's user row is re-read at most this often per process (role changes apply this fast);
# whether the session was signed out is asked on every request.
SESSION_CACHE_S = 3.0


@dataclass(frozen=True)
class Principal:
    """The caller of a request or event."""

    user_id: str
    email: str
    name: str
    role: str
    via: str  # "session" or "api_key"
    session: sessions.SessionData | None = None
    key_id: str | None = None
    key_rate_per_min: int = 0
    # From the user row: the provider verified the address (or it is the local account).
    email_verified: bool = False

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        suffix = f" (key {self.key_id})" if self.key_id else ""
        return f"{self.email or self.user_id}{suffix}"

    @property
    def started_by(self) -> str:
        """How a run records who started it: "api_key:<key id>" or "user:<user id>"."""
        return f"api_key:{self.key_id}" if self.key_id else f"user:{self.user_id}"

    @property
    def approver(self) -> Approver:
        """This caller as engine.approvals sees a decider (the e-mail counts only when verified)."""
        return Approver(self.user_id, self.email, self.role, email_verified=self.email_verified)


def _from_session(token: str) -> Principal | None:
    data = sessions.decode(token)
    if data is None:
        return None
    with db_session() as session:
        user = get_user(session, data.user_id)
        if user is None or not user.is_active or user.role not in RANK:
            return None
        return Principal(
            str(user.id), user.email, user.name, user.role, "session", session=data,
            email_verified=user.email_verified,
        )  # fmt: skip


class _SessionCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            cached = hit[1]
            # A sign-out in another process applies at once: only the user row is cached.
            if (
                cached is not None
                and cached.session
                and sessions.revocations.is_revoked(cached.session.session_id)
            ):
                self.forget(token)
                return None
            return cached
        principal = _from_session(token)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (now + SESSION_CACHE_S, principal)
        return principal

    def forget(self, token: str) -> None:
        with self._lock:
            self._entries.pop(hashlib.sha256(token.encode()).hexdigest(), None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


session_cache = _SessionCache()


def from_session_token(token: str) -> Principal | None:
    """The user a session cookie value stands for; None when missing, forged, expired or revoked."""
    return session_cache.get(token) if token else None


def from_cookie_header(cookie_header: str) -> Principal | None:
    """The user of the session cookie in a raw Cookie header (the event socket's handshake)."""
    return from_session_token(sessions.cookie_from_header(cookie_header))


def from_api_key(key: str, client_ip: str = "") -> Principal | None:
    """The key's owner with the key's (possibly lower) role; None for unknown or revoked keys.

    Raises `app.auth.throttle.Throttled` after too many failures from `client_ip` or for the key's prefix.
    """
    with db_session() as session:
        found = api_keys.verify_throttled(session, key, client_ip)
        if found is None:
            return None
        row, user, role = found
        return Principal(
            str(user.id), user.email, user.name, role, "api_key",
            key_id=str(row.id), key_rate_per_min=row.rate_limit_per_min, email_verified=user.email_verified,
        )  # fmt: skip


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header ("" otherwise)."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""

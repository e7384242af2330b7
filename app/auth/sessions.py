"""The session cookie: signed, HttpOnly, SameSite=Lax (Secure over https), revocable on sign-out.

The cookie holds a user id, a random session id and the time it was issued; nothing secret. The
user row is read again on every request, so a role change or a deactivation applies at once.
Sign-out records the session id in PostgreSQL (`revoked_sessions`), which every web process
checks; when the database cannot be asked, the session is refused (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from app.db import db_session
from engine.errors import ConfigError
from engine.key_files import SESSION_KEY_FILE, require_private
from engine.settings import get_settings
from models.auth import RevokedSession

log = logging.getLogger(__name__)

COOKIE_NAME = "flowloom_session"
MAX_AGE_S = 12 * 3600
SECRET_FILE = SESSION_KEY_FILE
MIN_SECRET_LENGTH = 32
_SALT = "flowloom.session.v1"


def _read_secret(path: Path) -> str:
    require_private(path)
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{path} holds a key shorter than {MIN_SECRET_LENGTH} characters; delete it")
    return key


def _read_or_create_secret(path: Path) -> str:
    """The key in `path`, created (0600, exclusively) when it does not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    log.info("generated a new session signing key in %s", path)
    return key


_secret_lock = threading.Lock()
_secret_cache: dict[str, str] = {}


def secret_key() -> str:
    """FLOWLOOM_SECRET_KEY, or a key generated once in the data directory (mode 0600)."""
    settings = get_settings()
    configured = settings.secret_key.get_secret_value()
    if configured:
        if len(configured) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"FLOWLOOM_SECRET_KEY: use at least {MIN_SECRET_LENGTH} random characters "
                '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        return configured
    path = settings.resolved_data_dir / SECRET_FILE
    with _secret_lock:
        if str(path) not in _secret_cache:
            _secret_cache[str(path)] = _read_or_create_secret(path)
        return _secret_cache[str(path)]


def derived_key(purpose: str) -> str:
    """A key for one purpose (the OAuth state cookie, say), derived from the secret key."""
    return hmac.new(secret_key().encode(), purpose.encode(), hashlib.sha256).hexdigest()


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key(), salt=_SALT)


@dataclass(frozen=True)
class SessionData:
    """What a valid session cookie says."""

    user_id: str
    session_id: str
    issued_at: float


def issue(user_id: str) -> tuple[str, SessionData]:
    """A new signed cookie value for `user_id`, and what it holds."""
    data = SessionData(user_id=str(user_id), session_id=secrets.token_urlsafe(16), issued_at=time.time())
    token = _serializer().dumps({"u": data.user_id, "s": data.session_id})
    return token, data


def decode(token: str) -> SessionData | None:
    """The session a cookie value stands for; None when forged, expired or revoked."""
    if not token or len(token) > 1024:
        return None
    try:
        payload, issued = _serializer().loads(token, max_age=MAX_AGE_S, return_timestamp=True)
    except BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), str):
        return None
    if not isinstance(payload.get("s"), str) or not payload["s"]:
        return None  # a session without an id could never be signed out
    data = SessionData(user_id=payload["u"], session_id=payload["s"], issued_at=issued.timestamp())
    if revocations.is_revoked(data.session_id):
        return None
    return data


def cookie_from_header(cookie_header: str) -> str:
    """The session cookie's value in a raw Cookie header ("" when absent)."""
    if not cookie_header or COOKIE_NAME not in cookie_header:
        return ""
    jar = SimpleCookie()
    try:
        jar.load(cookie_header)
    except Exception:  # a malformed header from someone else's cookie: no session
        return ""
    morsel = jar.get(COOKIE_NAME)
    return morsel.value if morsel else ""


def cookie_attributes(secure: bool) -> dict[str, object]:
    """Keyword arguments for Starlette's `set_cookie` and `delete_cookie`."""
    return {"key": COOKIE_NAME, "path": "/", "httponly": True, "samesite": "lax", "secure": secure}


class Revocations:
    """Session ids signed out before they expired, in PostgreSQL; every process asks the table.

    Ids found revoked are remembered in this process (a revocation is never undone); a session
    that is not revoked is asked about again on every check.
    """

    def __init__(self) -> None:
        self._known: dict[str, float] = {}
        self._lock = threading.Lock()

    def revoke(self, session_id: str, until: float) -> None:
        """Refuse `session_id` from now until `until` (a Unix time), in every process.

        Raises the database's error when the revocation cannot be recorded: the caller must not
        tell the user they are signed out everywhere when they are not.
        """
        if not session_id:
            return
        expires = datetime.fromtimestamp(until, UTC)
        with db_session() as session:
            session.execute(
                insert(RevokedSession)
                .values(session_id=session_id[:64], expires_at=expires)
                .on_conflict_do_nothing(index_elements=["session_id"])
            )
            # Rows past their session's lifetime guard nothing: drop them while here.
            session.execute(delete(RevokedSession).where(RevokedSession.expires_at < datetime.now(UTC)))
        with self._lock:
            self._known[session_id] = until

    def is_revoked(self, session_id: str) -> bool:
        """True when `session_id` was signed out; raises the database's error when it cannot tell."""
        now = time.time()
        with self._lock:
            until = self._known.get(session_id)
            if until is not None and until > now:
                return True
            self._known.pop(session_id, None)
        with db_session() as session:
            found = session.execute(
                select(RevokedSession.expires_at).where(RevokedSession.session_id == session_id[:64])
            ).scalar_one_or_none()
        if found is None:
            return False
        with self._lock:
            if len(self._known) > 100_000:
                self._known.clear()
            self._known[session_id] = found.timestamp()
        return True

    def forget_local(self) -> None:
        """Drop this process's memory of revoked ids (tests: act as a fresh process)."""
        with self._lock:
            self._known.clear()


revocations = Revocations()


def revoke(data: SessionData) -> None:
    """Sign a session out for good."""
    revocations.revoke(data.session_id, data.issued_at + MAX_AGE_S)

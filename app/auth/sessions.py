"""The session cookie: signed, HttpOnly, SameSite=Lax (Secure over https), revocable on sign-out.

The cookie holds a user id, a random session id and the time it was issued; nothing secret. The
user row is read again on every request, so a role change or a deactivation applies at once.
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
from functools import lru_cache
from http.cookies import SimpleCookie
from pathlib import Path

import redis
from itsdangerous import BadSignature, URLSafeTimedSerializer

from engine.errors import ConfigError
from engine.settings import get_settings

log = logging.getLogger(__name__)

COOKIE_NAME = "flowloom_session"
MAX_AGE_S = 12 * 3600
SECRET_FILE = "secret_key"
MIN_SECRET_LENGTH = 32
_SALT = "flowloom.session.v1"


def _read_secret(path: Path) -> str:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")
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
    data = SessionData(
        user_id=payload["u"], session_id=str(payload.get("s", "")), issued_at=issued.timestamp()
    )
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


@lru_cache(maxsize=4)
def _redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


class Revocations:
    """Session ids signed out before they expired: in Redis when configured, else in this process."""

    def __init__(self) -> None:
        self._local: dict[str, float] = {}
        self._lock = threading.Lock()

    def _redis(self) -> redis.Redis | None:
        url = get_settings().redis_url
        return _redis_client(url) if url else None

    def revoke(self, session_id: str, until: float) -> None:
        """Refuse `session_id` from now until `until` (a Unix time)."""
        if not session_id:
            return
        with self._lock:
            self._local[session_id] = until
        client = self._redis()
        if client is None:
            return
        try:
            client.set(f"flowloom:revoked-session:{session_id}", "1", exat=int(until) + 1)
        except Exception:
            log.warning(
                "could not record a signed-out session in Redis; other processes accept it until it expires"
            )

    def is_revoked(self, session_id: str) -> bool:
        now = time.time()
        with self._lock:
            until = self._local.get(session_id)
            if until is not None:
                if until > now:
                    return True
                self._local.pop(session_id, None)
        client = self._redis()
        if client is None:
            return False
        try:
            return bool(client.exists(f"flowloom:revoked-session:{session_id}"))
        except Exception:
            # Redis away: sessions stay valid (they still expire); sign-in itself does not need Redis.
            log.warning("could not check signed-out sessions in Redis")
            return False


revocations = Revocations()


def revoke(data: SessionData) -> None:
    """Sign a session out for good."""
    revocations.revoke(data.session_id, data.issued_at + MAX_AGE_S)

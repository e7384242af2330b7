"""Who is calling: a signed-in user (session cookie) or an API key, in which workspace, with which role.

A caller acts in one workspace at a time: a session in the one its `flowloom_workspace` cookie (or
an `X-Flowloom-Workspace` header) names when they are a member, else their first; an API key in
the workspace it was made in. `role` is the caller's role in that workspace (for a key, the lower
of the key's and its owner's there).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from app.auth import api_keys, sessions
from app.auth.policy import RANK, Role, allows, lower_role
from app.auth.users import get_user
from app.db import db_session
from engine import workspaces
from engine.approvers import Approver

# A session's user row is re-read at most this often per process (role changes apply this fast);
# whether the session was signed out is asked on every request.
SESSION_CACHE_S = 3.0

WORKSPACE_COOKIE = "flowloom_workspace"
WORKSPACE_HEADER = "x-flowloom-workspace"
NO_ROLE = "none"  # a caller who is a member of no workspace: every role check refuses it


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
    # The workspace the caller acts in ("" when they belong to none) and the ones they may enter.
    workspace_id: str = ""
    workspace_slug: str = ""
    workspace_name: str = ""
    workspaces: tuple[workspaces.Membership, ...] = ()
    instance_role: str = ""  # users.role: instance admins manage workspaces

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        suffix = f" (key {self.key_id})" if self.key_id else ""
        return f"{self.email or self.user_id}{suffix}"

    @property
    def is_instance_admin(self) -> bool:
        """An instance admin (users.role admin) acting as admin: a workspace's admin is not one, nor
        an instance admin's key made with a lower role."""
        return self.instance_role == Role.ADMIN and allows(self.role, Role.ADMIN)

    @property
    def started_by(self) -> str:
        """How a run records who started it: "api_key:<key id>" or "user:<user id>"."""
        return f"api_key:{self.key_id}" if self.key_id else f"user:{self.user_id}"

    @property
    def approver(self) -> Approver:
        """This caller as engine.approvals sees a decider (the e-mail counts only when verified)."""
        return Approver(self.user_id, self.email, self.role, email_verified=self.email_verified)

    @property
    def workspace_roles(self) -> dict[str, str]:
        """The caller's role in each workspace they may act in (an API key: its own, at the key's role)."""
        if self.via == "api_key":
            return {self.workspace_id: self.role} if self.workspace_id else {}
        return {m.workspace_id: m.role for m in self.workspaces}


def _workspace_fields(found: list[workspaces.Membership], wanted: str) -> dict[str, object]:
    current = workspaces.pick_current(found, wanted)
    if current is None:
        return {"role": NO_ROLE, "workspaces": ()}
    return {
        "role": current.role, "workspace_id": current.workspace_id, "workspace_slug": current.slug,
        "workspace_name": current.name, "workspaces": tuple(found),
    }  # fmt: skip


def _from_session(token: str, wanted_workspace: str = "") -> Principal | None:
    data = sessions.decode(token)
    if data is None:
        return None
    with db_session() as session:
        user = get_user(session, data.user_id)
        if user is None or not user.is_active or user.role not in RANK:
            return None
        fields = _workspace_fields(workspaces.memberships(session, user), wanted_workspace)
        return Principal(
            str(user.id), user.email, user.name, via="session", session=data,
            email_verified=user.email_verified, instance_role=user.role, **fields,  # type: ignore[arg-type]
        )  # fmt: skip


class _SessionCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, wanted_workspace: str = "") -> Principal | None:
        digest = hashlib.sha256(f"{token}\0{wanted_workspace}".encode()).hexdigest()
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
        principal = _from_session(token, wanted_workspace)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (now + SESSION_CACHE_S, principal)
        return principal

    def forget(self, token: str) -> None:
        # Every workspace's entry of this token goes (signing out, a role change).
        with self._lock:
            self._entries.clear()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


session_cache = _SessionCache()


def from_session_token(token: str, wanted_workspace: str = "") -> Principal | None:
    """The user a session cookie value stands for, acting in `wanted_workspace` (an id or short name)
    when they are a member of it, else in their first workspace; None when the token is missing,
    forged, expired or revoked."""
    return session_cache.get(token, wanted_workspace) if token else None


def workspace_from_cookie_header(cookie_header: str) -> str:
    """The workspace the `flowloom_workspace` cookie of a raw Cookie header names ("" when none)."""
    if not cookie_header or WORKSPACE_COOKIE not in cookie_header:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return ""
    morsel = jar.get(WORKSPACE_COOKIE)
    return morsel.value[:100] if morsel else ""


def from_cookie_header(cookie_header: str) -> Principal | None:
    """The user of the session cookie in a raw Cookie header (the event socket's handshake)."""
    return from_session_token(
        sessions.cookie_from_header(cookie_header), workspace_from_cookie_header(cookie_header)
    )


def from_api_key(key: str, client_ip: str = "") -> Principal | None:
    """The key's owner with the key's (possibly lower) role; None for unknown or revoked keys.

    Raises `app.auth.throttle.Throttled` after too many failures from `client_ip` or for the key's prefix.
    """
    with db_session() as session:
        found = api_keys.verify_throttled(session, key, client_ip)
        if found is None:
            return None
        row, user, role = found
        # The key acts in its own workspace only, and never above its owner's role there.
        current = workspaces.pick_current(workspaces.memberships(session, user), str(row.workspace_id))
        if current is None or current.workspace_id != str(row.workspace_id):
            return None
        return Principal(
            str(user.id), user.email, user.name, lower_role(role, current.role), "api_key",
            key_id=str(row.id), key_rate_per_min=row.rate_limit_per_min, email_verified=user.email_verified,
            workspace_id=current.workspace_id, workspace_slug=current.slug, workspace_name=current.name,
            workspaces=(current,), instance_role=user.role,
        )  # fmt: skip


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header ("" otherwise)."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""

"""State of the Settings page: my API keys, and (for instance admins) every user's instance role.

Revoking a key, changing a role and deactivating a user are asked first (`ask_*`): the page shows a
confirmation saying what will happen, and only `confirm` sends the change, as its own event, to the
handler that makes it (which checks the caller's role again).

A new key is never a state var: Reflex keeps state (backend-only vars too) in its state manager
(Redis in production) between events. The key goes to the browser once, as the value of a
read-only field set by the event's return value (`rx.set_value`), and lives only there.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import reflex as rx
from reflex.event import EventSpec

from app import db
from app.auth import api_keys, users
from app.auth.guard import audit_who, caller_of, requires
from app.auth.policy import Role
from app.auth.principal import session_cache
from app.pages.formatting import format_time, time_ago
from engine import audit
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import user_message

log = logging.getLogger(__name__)

ROLES = [r.value for r in Role]
CREATED_KEY_ID = "created-key"  # the read-only field the new key is written into, in the browser


@dataclass
class KeyRow:
    """One of my API keys (never the key itself)."""

    id: str
    name: str
    prefix: str
    role: str
    created: str
    last_used: str
    revoked: bool


@dataclass
class UserRow:
    """One user of the instance, for instance admins."""

    id: str
    email: str
    name: str
    issuer: str
    role: str
    active: bool


class SettingsState(rx.State):
    """My keys; every user's instance role for instance admins (a workspace's admin is not one)."""

    keys: list[KeyRow] = []
    users: list[UserRow] = []
    instance_admin: bool = False  # whether the user list shows (users are the whole instance's)
    new_key_name: str = ""
    new_key_role: str = Role.VIEWER.value
    key_shown: bool = False  # whether the field holding a new key is visible (never the key)
    error: str = ""
    # The change waiting for confirmation: revoke | role | deactivate ("" = none), its target and text.
    confirm_kind: str = ""
    confirm_target: str = ""
    confirm_role: str = ""
    confirm_title: str = ""
    confirm_text: str = ""
    confirm_button: str = ""

    @rx.var
    def confirm_open(self) -> bool:
        return self.confirm_kind != ""

    def _reload(self) -> None:
        principal = caller_of(self)
        self.instance_admin = principal is not None and principal.is_instance_admin
        if principal is None:
            self.keys, self.users = [], []
            return
        with db.db_session() as session:
            self.keys = [
                KeyRow(
                    str(k.id),
                    k.name,
                    k.prefix,
                    k.role,
                    format_time(k.created_at),
                    time_ago(k.last_used_at) if k.last_used_at else "never",
                    k.revoked_at is not None,
                )  # fmt: skip
                for k in api_keys.list_keys(
                    session, uuid.UUID(principal.user_id), workspace_id=principal.workspace_id
                )
            ]
            self.users = (
                [
                    UserRow(str(u.id), u.email, u.name, u.issuer, u.role, u.is_active)
                    for u in users.list_users(session)
                ]
                if self.instance_admin
                else []
            )
        self.error = ""

    def _refresh(self) -> None:
        try:
            self._reload()
        except DB_ERRORS as exc:
            log.warning("loading settings failed: %s", exc)
            self.error = describe_db_error(exc)

    @rx.event
    @requires(Role.VIEWER)
    def load(self) -> EventSpec:
        """Fetch my keys (and the users, for instance admins)."""
        self.key_shown = False
        self._refresh()
        return rx.set_value(CREATED_KEY_ID, "")

    @rx.event
    @requires(Role.VIEWER)
    def set_new_key_name(self, value: str) -> None:
        self.new_key_name = value[:100]

    @rx.event
    @requires(Role.VIEWER)
    def set_new_key_role(self, value: str) -> None:
        self.new_key_role = value if value in ROLES else Role.VIEWER.value

    @rx.event
    @requires(Role.VIEWER)
    def create_key(self) -> EventSpec | None:
        """Create a key with a role up to mine; it is shown once, in the browser only."""
        principal = caller_of(self)
        if principal is None:
            return None
        try:
            with db.db_session() as session:
                owner = users.get_user(session, principal.user_id)
                row, key = api_keys.create(
                    session, owner, name=self.new_key_name, role=self.new_key_role,
                    workspace_id=principal.workspace_id or None, owner_role=principal.role,
                )  # fmt: skip
                audit.record(session, actor=principal.actor, action="api_key.created", target_type="api_key",
                             target_id=str(row.id), details={"name": row.name, "prefix": row.prefix, "role": row.role},
                             who=audit_who(self, principal))  # fmt: skip
        except api_keys.ApiKeyError as exc:
            return rx.toast.error(user_message(exc))
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        self.key_shown, self.new_key_name = True, ""
        self._refresh()
        return rx.set_value(CREATED_KEY_ID, key)

    @rx.event
    @requires(Role.VIEWER)
    def dismiss_key(self) -> EventSpec:
        """Hide the key shown once and wipe it from the page."""
        self.key_shown = False
        return rx.set_value(CREATED_KEY_ID, "")

    @rx.event
    @requires(Role.VIEWER)
    def revoke_key(self, key_id: str) -> EventSpec | None:
        """Revoke one of my keys; it stops working at once."""
        principal = caller_of(self)
        try:
            with db.db_session() as session:
                row = api_keys.revoke(session, uuid.UUID(key_id), by_user=uuid.UUID(principal.user_id),
                                      by_role=principal.role, workspace_id=principal.workspace_id)  # fmt: skip
                if row is not None:
                    audit.record(session, actor=principal.actor, action="api_key.revoked", target_type="api_key",
                                 target_id=str(row.id), details={"prefix": row.prefix},
                                 who=audit_who(self, principal))  # fmt: skip
        except (ValueError, *DB_ERRORS) as exc:
            return rx.toast.error(f"Could not revoke the key ({type(exc).__name__})")
        self._refresh()
        return rx.toast.success("Key revoked") if row is not None else rx.toast.error("No such key")

    @rx.event
    @requires(Role.ADMIN)
    def set_user_role(self, user_id: str, role: str) -> EventSpec | None:
        """Change a user's instance role (instance admins only); it applies at once."""
        return self._change(user_id, role=role)

    @rx.event
    @requires(Role.ADMIN)
    def set_user_active(self, user_id: str, active: bool) -> EventSpec | None:
        """Deactivate or reactivate a user (instance admins only)."""
        return self._change(user_id, is_active=active)

    def _change(self, user_id: str, **change: object) -> EventSpec | None:
        principal = caller_of(self)
        # Users and their instance roles are the whole instance's: a workspace's admin changes neither.
        if principal is None or not principal.is_instance_admin:
            return rx.toast.error("Changing a user needs the instance admin role")
        try:
            with db.db_session() as session:
                changed = users.change_user(session, uuid.UUID(user_id), **change)  # type: ignore[arg-type]
                if changed and changed[1]:
                    audit.record(session, actor=principal.actor,
                                 action="user.role_changed" if "role" in changed[1] else "user.updated",
                                 target_type="user", target_id=user_id, details=changed[1],
                                 **audit.before_after(changed[1]), who=audit_who(self, principal))  # fmt: skip
        except users.UserError as exc:
            return rx.toast.error(user_message(exc))
        except (ValueError, *DB_ERRORS) as exc:
            return rx.toast.error(f"Could not change the user ({type(exc).__name__})")
        session_cache.clear()
        self._refresh()
        return rx.toast.success("Saved") if changed else rx.toast.error("No such user")

    def _ask(self, kind: str, target: str, title: str, text: str, button: str, role: str = "") -> None:
        self.confirm_kind, self.confirm_target, self.confirm_role = kind, target, role
        self.confirm_title, self.confirm_text, self.confirm_button = title, text, button

    @rx.event
    @requires(Role.VIEWER)
    def ask_revoke_key(self, key_id: str) -> None:
        """Ask before one of my keys is revoked."""
        key = next((k for k in self.keys if k.id == key_id and not k.revoked), None)
        if key is not None:
            self._ask("revoke", key.id, "Revoke API key",
                      f"Revoke the key “{key.name}” (flk_{key.prefix}_…)? Anything that uses it is refused "
                      "from the next request on. This cannot be undone.", "Revoke key")  # fmt: skip

    @rx.event
    @requires(Role.ADMIN)
    def ask_user_role(self, user_id: str, role: str) -> None:
        """Ask before a user's role changes (admins only)."""
        user = next((u for u in self.users if u.id == user_id), None)
        if user is not None and role in ROLES and role != user.role:
            self._ask("role", user.id, "Change role",
                      f"Change the role of {user.email} from {user.role} to {role}? It applies at once, "
                      "to their open sessions and their API keys too.", "Change role", role)  # fmt: skip

    @rx.event
    @requires(Role.ADMIN)
    def ask_user_active(self, user_id: str, active: bool) -> EventSpec | None:
        """Ask before a user is deactivated (admins only); reactivating needs no confirmation."""
        user = next((u for u in self.users if u.id == user_id), None)
        if user is None:
            return None
        if active:
            return SettingsState.set_user_active(user_id, True)
        self._ask("deactivate", user.id, "Deactivate user",
                  f"Deactivate {user.email}? They are signed out everywhere, cannot sign in again and their "
                  "API keys stop working, until an admin reactivates them.", "Deactivate")  # fmt: skip
        return None

    @rx.event
    @requires(Role.VIEWER)
    def cancel_confirm(self) -> None:
        """Drop the change that waited for confirmation."""
        self._ask("", "", "", "", "")

    @rx.event
    @requires(Role.VIEWER)
    def set_confirm_open(self, is_open: bool) -> None:
        """The dialog closed (Escape, Cancel, outside click): nothing changes."""
        if not is_open:
            self._ask("", "", "", "", "")

    @rx.event
    @requires(Role.VIEWER)
    def confirm(self) -> EventSpec | None:
        """Make the confirmed change, through the handler that checks the caller's role for it."""
        kind, target, role = self.confirm_kind, self.confirm_target, self.confirm_role
        self._ask("", "", "", "", "")
        if kind == "revoke":
            return SettingsState.revoke_key(target)
        if kind == "role":
            return SettingsState.set_user_role(target, role)
        if kind == "deactivate":
            return SettingsState.set_user_active(target, False)
        return None

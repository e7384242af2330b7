"""State of the Workspaces page: the current workspace's members (its admins manage them) and, for
instance admins, every workspace and a form to create one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import reflex as rx
from reflex.event import EventSpec
from sqlmodel import Session

from app.auth.guard import caller_of, requires
from app.auth.principal import Principal, session_cache
from app.db import db_session
from engine import workspaces
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import FlowloomError, user_message
from engine.roles import Role

log = logging.getLogger(__name__)

ROLE_CHOICES = ["instance role", Role.VIEWER, Role.OPERATOR, Role.EDITOR, Role.ADMIN]


@dataclass
class MemberView:
    """One member as the table shows them."""

    user_id: str
    email: str
    name: str
    role: str
    choice: str  # what the role menu shows: an explicit role or "instance role"


@dataclass
class WorkspaceView:
    """One workspace in the instance admins' list."""

    id: str
    slug: str
    name: str
    current: bool


def _role_of(choice: str) -> str | None:
    return None if choice == "instance role" else choice


class WorkspacesState(rx.State):
    """Members of the current workspace, the instance's workspaces, and the forms of the page."""

    workspace_name: str = ""
    members: list[MemberView] = []
    all_workspaces: list[WorkspaceView] = []
    is_instance_admin: bool = False
    new_member_email: str = ""
    new_member_role: str = Role.VIEWER
    new_slug: str = ""
    new_name: str = ""
    error: str = ""
    loaded: bool = False

    def _workspace(self) -> tuple[Principal, str] | None:
        principal = caller_of(self)
        if principal is None or not principal.workspace_id:
            self.error = "You are a member of no workspace."
            return None
        return principal, principal.workspace_id

    def _refresh(self) -> None:
        found = self._workspace()
        if found is None:
            return
        principal, workspace_id = found
        try:
            with db_session() as session:
                self.members = [
                    MemberView(m.user_id, m.email, m.name, m.role, m.explicit_role or "instance role")
                    for m in workspaces.list_members(session, workspace_id)
                ]
                self.is_instance_admin = principal.instance_role == Role.ADMIN
                self.all_workspaces = (
                    [
                        WorkspaceView(str(w.id), w.slug, w.name, str(w.id) == workspace_id)
                        for w in workspaces.list_workspaces(session)
                    ]
                    if self.is_instance_admin
                    else []
                )
            self.workspace_name, self.error = principal.workspace_name, ""
        except DB_ERRORS as exc:
            log.warning("loading workspace members failed: %s", exc)
            self.error = describe_db_error(exc)
        self.loaded = True

    def _change(self, action: str, fn, *args: object) -> EventSpec | None:  # noqa: ANN001 - a door function
        found = self._workspace()
        if found is None:
            return None
        principal, workspace_id = found
        failed = self._commit(lambda session: fn(session, workspace_id, *args, actor=principal.actor))
        if failed is not None:
            return failed
        self._refresh()
        return rx.toast.success(action)

    def _commit(self, write: Callable[[Session], object]) -> EventSpec | None:
        """Make `write` in one committed transaction and forget the cached sign-ins (roles and
        workspaces may have changed); the error toast of a refusal or a database failure instead."""
        try:
            with db_session() as session:
                write(session)
                session.commit()
        except FlowloomError as exc:
            return rx.toast.error(user_message(exc))
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        session_cache.clear()
        return None

    @rx.event
    @requires(Role.ADMIN)
    def load(self) -> None:
        """The members of the current workspace (on page load)."""
        self._refresh()

    @rx.event
    @requires(Role.ADMIN)
    def set_new_member_email(self, value: str) -> None:
        self.new_member_email = value[:320]

    @rx.event
    @requires(Role.ADMIN)
    def set_new_member_role(self, value: str) -> None:
        self.new_member_role = value if value in ROLE_CHOICES else Role.VIEWER

    @rx.event
    @requires(Role.ADMIN)
    def add_member(self) -> EventSpec | None:
        """Add the user with the typed e-mail address to this workspace with the chosen role."""
        with db_session() as session:
            user = workspaces.find_user(session, self.new_member_email)
        if user is None:
            return rx.toast.error("Nobody with that e-mail address has signed in yet.")
        done = self._change(
            f"{user.email} added", workspaces.set_member, user.id, _role_of(self.new_member_role)
        )
        self.new_member_email = ""
        return done

    @rx.event
    @requires(Role.ADMIN)
    def set_role(self, user_id: str, choice: str) -> EventSpec | None:
        """Change a member's role in this workspace."""
        if choice not in ROLE_CHOICES:
            return rx.toast.error("Unknown role.")
        return self._change("Role changed", workspaces.set_member, user_id, _role_of(choice))

    @rx.event
    @requires(Role.ADMIN)
    def remove(self, user_id: str) -> EventSpec | None:
        """Take a member out of this workspace."""
        principal = caller_of(self)
        if principal is not None and principal.user_id == user_id:
            return rx.toast.error("You cannot remove yourself; ask another admin.")
        return self._change("Member removed", workspaces.remove_member, user_id)

    @rx.event
    @requires(Role.ADMIN)
    def set_new_slug(self, value: str) -> None:
        self.new_slug = value[:60]

    @rx.event
    @requires(Role.ADMIN)
    def set_new_name(self, value: str) -> None:
        self.new_name = value[:200]

    @rx.event
    @requires(Role.ADMIN)
    def create_workspace(self) -> EventSpec | None:
        """Create a workspace (instance admins only)."""
        principal = caller_of(self)
        if principal is None or principal.instance_role != Role.ADMIN:
            return rx.toast.error("Only instance admins create workspaces.")
        failed = self._commit(
            lambda session: workspaces.create_workspace(
                session, slug=self.new_slug, name=self.new_name, actor=principal.actor
            )
        )
        if failed is not None:
            return failed
        created, self.new_slug, self.new_name = self.new_name, "", ""
        self._refresh()
        return rx.toast.success(
            f"Workspace {created} created: switch to it in the sidebar (reload to see it)."
        )

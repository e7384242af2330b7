"""State of the Workflows page: the list (with the workflows shared with the caller), the search box
and the create/rename/delete/share dialogs."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import reflex as rx
from pydantic import ValidationError as PydanticValidationError
from reflex.event import EventSpec
from sqlmodel import Session

from app import db
from app.api.schemas import WorkflowCreate
from app.auth.guard import audit_who, caller_of
from app.pages.formatting import format_time, time_ago
from app.pages.workspace_scope import current_workspace
from engine import shares, workflows, workspaces
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import FlowloomError, user_message
from models.tables import Workflow

log = logging.getLogger(__name__)

T = TypeVar("T")
# What a share's grant or revoke refuses with a message of its own (an unknown user, not yours, ...).
_SHARE_REFUSALS = (FlowloomError, ValueError)


@dataclass
class WorkflowRow:
    """One line of the workflow list, as the browser sees it."""

    id: str
    name: str
    description: str
    version: str
    updated: str
    updated_exact: str
    permission: str = ""  # "" = the workspace's own; "read" or "edit" = shared with the caller
    owner: str = ""  # the owning workspace's name, for shared ones


def _row(workflow: Workflow, permission: str = "", owner: str = "") -> WorkflowRow:
    return WorkflowRow(
        id=str(workflow.id),
        name=workflow.name,
        description=workflow.description,
        version=f"v{workflow.latest_version}" if workflow.latest_version else "Draft",
        updated=time_ago(workflow.updated_at),
        updated_exact=format_time(workflow.updated_at),
        permission=permission,
        owner=owner,
    )


@dataclass
class ShareRow:
    """One share of the workflow in the Share dialog."""

    id: str
    kind: str  # user | workspace
    target: str
    target_name: str
    permission: str
    granted: str


def _first_problem(exc: PydanticValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "form"
    return f"{field.capitalize()}: {error['msg']}"


class WorkflowsState(rx.State):
    """The workflow list and its dialogs."""

    rows: list[WorkflowRow] = []
    search: str = ""
    loaded: bool = False
    error: str = ""

    create_open: bool = False
    rename_open: bool = False
    rename_id: str = ""
    rename_name: str = ""
    delete_open: bool = False
    delete_id: str = ""
    delete_name: str = ""
    share_open: bool = False
    share_id: str = ""
    share_name: str = ""
    share_rows: list[ShareRow] = []
    share_kind: str = "user"  # whom the dialog shares with: a user (by e-mail) or a workspace
    share_target: str = ""
    share_permission: str = shares.READ

    @rx.var
    def has_workflows(self) -> bool:
        return len(self.rows) > 0

    def _caller_id(self) -> str | None:
        caller = caller_of(self)
        return caller.user_id if caller else None

    def _reload(self) -> None:
        workspace_id, user_id = current_workspace(self), self._caller_id()
        with db.db_session() as session:
            found = workflows.list_workflows(
                session, self.search, workspace_id=workspace_id, user_id=user_id, shared=True
            )
            others = [w.id for w in found if str(w.workspace_id) != workspace_id]
            shared = shares.shared_permissions(session, others, workspace_id=workspace_id, user_id=user_id)
            owners = {w.workspace_id for w in found if w.id in shared}
            names = {o: ws.name for o in owners if (ws := workspaces.get_workspace(session, o)) is not None}
            self.rows = [_row(w, shared.get(w.id, ""), names.get(w.workspace_id, "")) for w in found]
        self.error = ""

    def _write(
        self,
        change: Callable[[Session], T],
        then: Callable[[], None],
        refusals: tuple[type[Exception], ...] = (),
    ) -> T | EventSpec:
        """Make `change` in one transaction, then `then()` (read the list or shares again); what it
        returns, or the error toast of a database failure or of one of `refusals` instead."""
        try:
            with db.db_session() as session:
                done = change(session)
            then()
        except refusals as exc:
            return rx.toast.error(user_message(exc))
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        return done

    def _refresh(self) -> None:
        """Reload, turning a database failure into the page's error callout."""
        try:
            self._reload()
        except DB_ERRORS as exc:
            log.warning("loading workflows failed: %s", exc)
            self.rows = []
            self.error = describe_db_error(exc)
        self.loaded = True

    @rx.event
    def load(self) -> None:
        """Fetch the list (on page load)."""
        self._refresh()

    @rx.event
    def set_search(self, value: str) -> None:
        """Filter by name (server side)."""
        self.search = value
        self._refresh()

    @rx.event
    def set_create_open(self, value: bool) -> None:
        self.create_open = value

    @rx.event
    def create(self, form: dict[str, Any]) -> EventSpec | None:
        """Create a workflow from the dialog's form."""
        try:
            # The form also reports each input under its element id; take only the fields.
            data = WorkflowCreate(name=form.get("name", ""), description=form.get("description", ""))
        except PydanticValidationError as exc:
            return rx.toast.error(_first_problem(exc))
        created = self._write(
            lambda session: workflows.create_workflow(
                session,
                data.name,
                data.description,
                who=audit_who(self),
                workspace_id=current_workspace(self),
            ),
            self._reload,
        )
        if isinstance(created, EventSpec):
            return created
        self.create_open = False
        return rx.toast.success(f'Workflow "{data.name}" created')

    @rx.event
    def open_rename(self, workflow_id: str, name: str) -> None:
        self.rename_id, self.rename_name, self.rename_open = workflow_id, name, True

    @rx.event
    def set_rename_open(self, value: bool) -> None:
        self.rename_open = value

    @rx.event
    def set_rename_name(self, value: str) -> None:
        self.rename_name = value

    @rx.event
    def rename(self) -> EventSpec | None:
        """Save the name typed in the rename dialog."""
        try:
            data = WorkflowCreate(name=self.rename_name)
        except PydanticValidationError as exc:
            return rx.toast.error(_first_problem(exc))
        renamed = self._write(
            lambda session: workflows.rename_workflow(
                session,
                uuid.UUID(self.rename_id),
                data.name,
                who=audit_who(self),
                workspace_id=current_workspace(self),
                user_id=self._caller_id(),
                need=shares.EDIT,  # an edit share may rename it too
            ),
            self._reload,
        )
        if isinstance(renamed, EventSpec):
            return renamed
        self.rename_open = False
        if renamed is None:
            return rx.toast.warning("That workflow no longer exists")
        return rx.toast.success(f'Renamed to "{data.name}"')

    @rx.event
    def duplicate(self, workflow_id: str) -> EventSpec | None:
        """Copy a workflow with its latest definition."""
        copy = self._write(
            lambda session: workflows.duplicate_workflow(
                session, uuid.UUID(workflow_id), who=audit_who(self), workspace_id=current_workspace(self)
            ),
            self._reload,
        )
        if isinstance(copy, EventSpec):
            return copy
        if copy is None:
            return rx.toast.warning("That workflow no longer exists")
        return rx.toast.success(f'Created "{copy.name}"')

    @rx.event
    def open_delete(self, workflow_id: str, name: str) -> None:
        self.delete_id, self.delete_name, self.delete_open = workflow_id, name, True

    @rx.event
    def set_delete_open(self, value: bool) -> None:
        self.delete_open = value

    @rx.event
    def delete(self) -> EventSpec | None:
        """Delete the workflow named in the confirmation dialog."""
        deleted = self._write(
            lambda session: workflows.delete_workflow(
                session, uuid.UUID(self.delete_id), who=audit_who(self), workspace_id=current_workspace(self)
            ),
            self._reload,
        )
        if isinstance(deleted, EventSpec):
            return deleted
        self.delete_open = False
        return rx.toast.success(f'Deleted "{self.delete_name}"')

    # Sharing (engine/shares.py): the owning workspace lists, grants and revokes

    def _load_shares(self) -> None:
        with db.db_session() as session:
            found = shares.list_shares(
                session,
                uuid.UUID(self.share_id),
                workspace_id=current_workspace(self),
                user_id=self._caller_id(),
            )
        self.share_rows = [
            ShareRow(s.id, s.kind, s.target, s.target_name, s.permission, time_ago(s.granted_at))
            for s in found
        ]

    @rx.event
    def open_share(self, workflow_id: str, name: str) -> EventSpec | None:
        """Open the Share dialog of a workflow with its current shares."""
        self.share_id, self.share_name, self.share_target = workflow_id, name, ""
        try:
            self._load_shares()
        except _SHARE_REFUSALS as exc:
            return rx.toast.error(user_message(exc))
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        self.share_open = True
        return None

    @rx.event
    def set_share_open(self, value: bool) -> None:
        self.share_open = value

    @rx.event
    def set_share_kind(self, value: str) -> None:
        self.share_kind = "workspace" if value == "workspace" else "user"

    @rx.event
    def set_share_target(self, value: str) -> None:
        self.share_target = value[:320]

    @rx.event
    def set_share_permission(self, value: str) -> None:
        self.share_permission = value if value in shares.PERMISSIONS else shares.READ

    @rx.event
    def grant_share(self) -> EventSpec | None:
        """Share the dialog's workflow with the typed user or workspace."""
        target = self.share_target.strip()
        if not target:
            return rx.toast.error(
                "Type an e-mail address" if self.share_kind == "user" else "Type a workspace"
            )
        recipient = {"email": target} if self.share_kind == "user" else {"workspace": target}
        info = self._write(
            lambda session: shares.grant(
                session, uuid.UUID(self.share_id), workspace_id=current_workspace(self),
                permission=self.share_permission, who=audit_who(self), granted_by_user_id=self._caller_id(),
                **recipient,
            ),
            self._load_shares,
            _SHARE_REFUSALS,
        )  # fmt: skip
        if isinstance(info, EventSpec):
            return info
        self.share_target = ""
        return rx.toast.success(f"Shared with {info.target} ({info.permission})")

    @rx.event
    def revoke_share(self, share_id: str) -> EventSpec | None:
        """Revoke one share: its recipient no longer reaches the workflow."""
        info = self._write(
            lambda session: shares.revoke(
                session, uuid.UUID(self.share_id), uuid.UUID(share_id), workspace_id=current_workspace(self),
                user_id=self._caller_id(), who=audit_who(self),
            ),
            self._load_shares,
            _SHARE_REFUSALS,
        )  # fmt: skip
        if isinstance(info, EventSpec):
            return info
        return rx.toast.success(f"{info.target} no longer has access")

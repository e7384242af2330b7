"""State of the Workflows page: the list, the search box and the create/rename/delete dialogs."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import reflex as rx
from pydantic import ValidationError as PydanticValidationError
from reflex.event import EventSpec

from app import db
from app.api.schemas import WorkflowCreate
from app.auth.guard import audit_who
from app.pages.formatting import format_time, time_ago
from app.pages.workspace_scope import current_workspace
from engine import workflows
from engine.db_errors import DB_ERRORS, describe_db_error
from models.tables import Workflow

log = logging.getLogger(__name__)


@dataclass
class WorkflowRow:
    """One line of the workflow list, as the browser sees it."""

    id: str
    name: str
    description: str
    version: str
    updated: str
    updated_exact: str


def _row(workflow: Workflow) -> WorkflowRow:
    return WorkflowRow(
        id=str(workflow.id),
        name=workflow.name,
        description=workflow.description,
        version=f"v{workflow.latest_version}" if workflow.latest_version else "Draft",
        updated=time_ago(workflow.updated_at),
        updated_exact=format_time(workflow.updated_at),
    )


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

    @rx.var
    def has_workflows(self) -> bool:
        return len(self.rows) > 0

    def _reload(self) -> None:
        with db.db_session() as session:
            self.rows = [
                _row(w)
                for w in workflows.list_workflows(session, self.search, workspace_id=current_workspace(self))
            ]
        self.error = ""

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
        try:
            with db.db_session() as session:
                workflows.create_workflow(
                    session,
                    data.name,
                    data.description,
                    who=audit_who(self),
                    workspace_id=current_workspace(self),
                )
            self._reload()
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
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
        try:
            with db.db_session() as session:
                renamed = workflows.rename_workflow(
                    session,
                    uuid.UUID(self.rename_id),
                    data.name,
                    who=audit_who(self),
                    workspace_id=current_workspace(self),
                )
            self._reload()
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        self.rename_open = False
        if renamed is None:
            return rx.toast.warning("That workflow no longer exists")
        return rx.toast.success(f'Renamed to "{data.name}"')

    @rx.event
    def duplicate(self, workflow_id: str) -> EventSpec | None:
        """Copy a workflow with its latest definition."""
        try:
            with db.db_session() as session:
                copy = workflows.duplicate_workflow(
                    session, uuid.UUID(workflow_id), who=audit_who(self), workspace_id=current_workspace(self)
                )
            self._reload()
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
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
        try:
            with db.db_session() as session:
                workflows.delete_workflow(
                    session,
                    uuid.UUID(self.delete_id),
                    who=audit_who(self),
                    workspace_id=current_workspace(self),
                )
            self._reload()
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        self.delete_open = False
        return rx.toast.success(f'Deleted "{self.delete_name}"')

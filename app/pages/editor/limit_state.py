"""The editor's "Runs at once" for the open workflow: its own concurrency limit (workflows.max_concurrent_runs).

Not part of a version: it applies at once, like `PATCH /api/workflows/{id}` with `max_concurrent_runs`,
through the same engine call (engine.workspace_limits.set_workflow_limit: its validation, its
`workflow.limit_changed` audit entry, and the waiting runs a looser limit lets start). Editors of
the workflow's own workspace only: a share never changes it.
"""

from __future__ import annotations

import logging

import reflex as rx
from reflex.event import EventSpec

from app import db
from app.auth.guard import audit_who, requires
from app.auth.policy import Role
from app.pages.editor.core_state import EditorCore
from engine import dispatch, workspace_limits
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import FlowloomError, user_message
from models.tables import Workflow

log = logging.getLogger(__name__)


def _number(text: str) -> int | None | str:
    """The field as a whole number, None when empty, or the text back (the engine refuses it, naming the field)."""
    text = text.strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text


class EditorLimit(EditorCore):
    """The open workflow's own limit of runs at once ("" = none: only the workspace's limit applies)."""

    run_limit_text: str = ""
    run_limit_error: str = ""
    run_limit_saved: str = ""

    def _load_run_limit(self) -> None:
        """Show the open workflow's limit (nothing for a workflow of another workspace); EditorState.load
        calls it when it opens a workflow."""
        self.run_limit_error, self.run_limit_saved, self.run_limit_text = "", "", ""
        workflow_id = self._workflow_uuid()
        if workflow_id is None:
            return
        try:
            with db.db_session() as session:
                row = session.get(Workflow, workflow_id)
                value = row.max_concurrent_runs if row is not None else None
        except DB_ERRORS as exc:
            log.warning("loading the run limit of %s failed: %s", workflow_id, exc)
            self.run_limit_error = describe_db_error(exc)
            return
        self.run_limit_text = "" if value is None else str(value)

    @rx.event
    @requires(Role.EDITOR)
    def set_run_limit_text(self, value: str) -> None:
        self.run_limit_text, self.run_limit_saved = value[:10], ""

    @rx.event
    @requires(Role.EDITOR)
    def save_run_limit(self) -> EventSpec | None:
        """Store the field as the workflow's own limit (audited); empty clears it."""
        workflow_id = self._workflow_uuid()  # its own workspace's only: a share never sets it
        if workflow_id is None:
            self.run_limit_error = "Only the workflow's own workspace sets its limit"
            return None
        who = audit_who(self)
        try:
            with db.db_session() as session:
                admitted = workspace_limits.set_workflow_limit(
                    session.connection(), workflow_id, _number(self.run_limit_text),  # type: ignore[arg-type]
                    actor=who.actor, source=who.source,
                )  # fmt: skip
        except FlowloomError as exc:
            self.run_limit_error, self.run_limit_saved = user_message(exc), ""
            return None
        except DB_ERRORS as exc:
            self.run_limit_error, self.run_limit_saved = describe_db_error(exc), ""
            return None
        dispatch.send(admitted)  # after the commit: runs a looser limit lets start
        self._load_run_limit()
        self.run_limit_saved = "Saved."
        return rx.toast.success("Limit saved" if self.run_limit_text else "Limit removed")

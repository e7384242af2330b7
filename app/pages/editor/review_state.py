"""The editor's four-eyes publishing: submit a version for review, review it (the diff against the
published version on the canvas, then approve or reject), publish it; rollback is publishing an
earlier version. The rules are engine/publishing.py's; this state only asks and shows the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import reflex as rx
from reflex.event import EventSpec
from sqlmodel import Session

from app import db
from app.auth.guard import audit_who, caller_of, requires
from app.auth.policy import Role
from app.pages.editor.diff_state import EditorDiff
from app.pages.editor.tools_state import EditorTools
from engine import publishing
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import FlowloomError, user_message
from engine.ids import parse_id

log = logging.getLogger(__name__)
_DONE = {
    "submit": "submitted for review",
    "approve": "approved",
    "reject": "sent back",
    "publish": "published",
}


class EditorReview(EditorDiff):
    """One version under review, its diff on the canvas."""

    review_version: int = 0  # the version being reviewed (0: none)
    review_against: int = 0  # the published version it is compared with (0: none published)
    review_note: str = ""
    _last_ok: bool = False  # whether the last transition went through

    @rx.event
    @requires(Role.EDITOR)
    def set_review_note(self, value: str) -> None:
        self.review_note = value[: publishing.NOTE_MAX_LENGTH]

    @rx.event
    @requires(Role.EDITOR)
    def submit_version(self, version: int) -> EventSpec | list[EventSpec]:
        """Ask another editor to review `version`."""
        return self._step("submit", version, lambda s, a: publishing.submit(s, self._uuid(), version, a))

    @rx.event
    @requires(Role.EDITOR)
    def publish_version(self, version: int) -> EventSpec | list[EventSpec]:
        """Make `version` the published one (an earlier one: a rollback)."""
        return self._step("publish", version, lambda s, a: publishing.publish(s, self._uuid(), version, a))

    @rx.event
    @requires(Role.EDITOR)
    def open_review(self, version: int) -> EventSpec | list[EventSpec]:
        """Show what `version` changes against the published version, with Approve and Reject."""
        workflow_id = self._uuid()
        try:
            with db.db_session() as session:
                state = publishing.review_state(session, workflow_id, version) if workflow_id else None
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        if state is None:
            return rx.toast.error(f"Version {version} no longer exists")
        against = state.published_version or 0
        # Nothing published yet: the version against itself shows every node as it is.
        if not self._compare(against or version, version):
            return rx.toast.error(self.diff_error)
        self.diff_title = (
            f"v{version} against published v{against}" if against else f"v{version} (nothing published)"
        )
        self.review_version, self.review_against, self.review_note = version, against, ""
        return EditorTools.set_versions_open(False)

    @rx.event
    @requires(Role.EDITOR)
    def approve_review(self) -> EventSpec | list[EventSpec]:
        version, note = self.review_version, self.review_note
        return self._decided(
            "approve", version, lambda s, a: publishing.approve(s, self._uuid(), version, a, note)
        )

    @rx.event
    @requires(Role.EDITOR)
    def reject_review(self) -> EventSpec | list[EventSpec]:
        version, note = self.review_version, self.review_note
        return self._decided(
            "reject", version, lambda s, a: publishing.reject(s, self._uuid(), version, a, note)
        )

    @rx.event
    @requires(Role.VIEWER)
    def close_review(self) -> None:
        self._end_review()

    def _end_review(self) -> None:
        self.review_version, self.review_against, self.review_note = 0, 0, ""
        self.canvas_diff, self.diff_rows, self.diff_workflow = {}, [], ""
        self._sync_canvas()
        self._fit(everything=True)

    def _decided(self, verb: str, version: int, step: Callable) -> EventSpec | list[EventSpec]:
        if not version:
            return rx.toast.error("Open a version in review first")
        answer = self._step(verb, version, step, refresh=False)
        if self._last_ok:
            self._end_review()
        return answer

    def _step(
        self,
        verb: str,
        version: int,
        step: Callable[[Session, publishing.Actor], object],
        *,
        refresh: bool = True,
    ) -> EventSpec | list[EventSpec]:
        self._last_ok = False
        if self.share_permission:  # engine/shares.py: publishing stays with the workflow's own workspace
            return rx.toast.error(
                "This workflow is shared with you: only its own workspace reviews and publishes it"
            )
        caller = caller_of(self)
        if caller is None or self._uuid() is None:
            return rx.toast.error("Sign in and open a workflow first")
        actor = publishing.Actor(parse_id(caller.user_id), caller.role, audit_who(self))
        try:
            with db.db_session() as session:
                step(session, actor)
        except FlowloomError as exc:
            return rx.toast.error(user_message(exc))
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        self._last_ok = True
        done = rx.toast.success(f"v{version} {_DONE[verb]}")
        return [EditorTools.set_versions_open(True), done] if refresh else done

    def _uuid(self):
        # The open workflow only when it is the caller's workspace's: a tab whose wf_id names another
        # workspace's workflow (its URL, or a forged var) reviews and publishes nothing of it.
        return self._workflow_uuid()

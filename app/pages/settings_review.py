"""The Settings page's "Publishing" section: whether the current workspace requires review.

Workspace admins switch it; when on, a saved version is a draft until another editor approves it
(engine/publishing.py). The change is audited.
"""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec

from app import db
from app.auth.guard import audit_who, caller_of, requires
from app.auth.policy import Role, allows
from engine import publishing
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import FlowloomError, user_message
from engine.ids import parse_id


class ReviewSettingState(rx.State):
    """The current workspace's review rule."""

    review_admin: bool = False
    require_review: bool = False

    @rx.event
    @requires(Role.VIEWER)
    def load_review(self) -> EventSpec | None:
        principal = caller_of(self)
        self.review_admin = principal is not None and allows(principal.role, Role.ADMIN)
        workspace_id = parse_id(principal.workspace_id) if principal else None
        if workspace_id is None:
            return None
        try:
            with db.db_session() as session:
                self.require_review = publishing.requires_review_in(session, workspace_id)
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        return None

    @rx.event
    @requires(Role.ADMIN)
    def set_require_review(self, value: bool) -> EventSpec:
        principal = caller_of(self)
        workspace_id = parse_id(principal.workspace_id) if principal else None
        if principal is None or workspace_id is None:
            return rx.toast.error("Enter a workspace first")
        try:
            with db.db_session() as session:
                publishing.set_require_review(
                    session, workspace_id, value, role=principal.role, who=audit_who(self)
                )
        except FlowloomError as exc:
            return rx.toast.error(user_message(exc))
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        self.require_review = value
        return rx.toast.success(
            "Versions now need a second editor's approval" if value else "Saving publishes"
        )


def review_section() -> rx.Component:
    """The switch, for workspace admins."""
    S = ReviewSettingState
    return rx.cond(
        S.review_admin,
        rx.card(
            rx.vstack(
                rx.heading("Publishing", size="4"),
                rx.hstack(
                    rx.switch(checked=S.require_review, on_change=S.set_require_review, id="require-review", aria_label="Require review before publishing"),
                    rx.text("Require review: another editor approves a version before it is published", size="2"),
                    align="center",
                ),
                rx.text("Off: saving a version publishes it. Triggers, forms, chats and operators always run the "
                        "published version.", size="1", color=rx.color("gray", 11)),
                width="100%",
            ),
            width="100%", margin_top="1.5rem", on_mount=S.load_review,
        ),
        rx.box(on_mount=S.load_review),
    )  # fmt: skip

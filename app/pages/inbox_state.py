"""State of the Inbox page: approvals waiting for a person."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import reflex as rx
from sqlmodel import col, select

from app import db
from app.pages.formatting import format_time, short_id, time_ago
from models.tables import Approval, Run, Workflow

log = logging.getLogger(__name__)

APPROVALS_SHOWN = 200


@dataclass
class ApprovalRow:
    """One pending approval."""

    id: str
    title: str
    workflow: str
    run: str
    created: str
    created_exact: str
    deadline: str
    overdue: bool


def _row(approval: Approval, workflow: str | None, now: datetime) -> ApprovalRow:
    deadline = approval.deadline
    return ApprovalRow(
        id=str(approval.id),
        title=approval.title or f'Approval at node "{approval.node_id}"',
        workflow=workflow or "(unsaved workflow)",
        run=short_id(approval.run_id),
        created=time_ago(approval.created_at, now),
        created_exact=format_time(approval.created_at),
        deadline=time_ago(deadline, now) if deadline else "No deadline",
        overdue=deadline is not None and deadline < now,
    )


class InboxState(rx.State):
    """Pending approvals, oldest first."""

    rows: list[ApprovalRow] = []
    loaded: bool = False
    error: str = ""

    @rx.var
    def has_approvals(self) -> bool:
        return len(self.rows) > 0

    @rx.event
    def load(self) -> None:
        """Fetch pending approvals (on page load)."""
        query = (
            select(Approval, Workflow.name)
            .join(Run, col(Approval.run_id) == col(Run.id))
            .join(Workflow, col(Run.workflow_id) == col(Workflow.id), isouter=True)
            .where(Approval.status == "pending")
            .order_by(col(Approval.created_at))
            .limit(APPROVALS_SHOWN)
        )
        now = datetime.now(UTC)
        try:
            with db.db_session() as session:
                self.rows = [_row(approval, name, now) for approval, name in session.exec(query)]
            self.error = ""
        except db.DB_ERRORS as exc:
            log.warning("loading approvals failed: %s", exc)
            self.rows, self.error = [], db.describe_db_error(exc)
        self.loaded = True

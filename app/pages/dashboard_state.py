"""State of the Dashboard page: counts of workflows, runs by status and pending approvals."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import reflex as rx

from app import db
from app.pages.formatting import status_color
from engine.approvals import count_pending
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.runs import count_by_status
from engine.workflows import count_workflows

log = logging.getLogger(__name__)


@dataclass
class StatusCount:
    """How many runs have one status."""

    status: str
    count: int
    color: str


class DashboardState(rx.State):
    """The numbers on the dashboard."""

    workflows: int = 0
    runs: int = 0
    pending_approvals: int = 0
    runs_by_status: list[StatusCount] = []
    loaded: bool = False
    error: str = ""

    @rx.event
    def load(self) -> None:
        """Count (on page load)."""
        try:
            with db.db_session() as session:
                self.workflows = count_workflows(session)
            by_status = count_by_status()
            self.pending_approvals = count_pending()
            self.runs_by_status = [
                StatusCount(status=status, count=count, color=status_color(status))
                for status, count in sorted(by_status.items(), key=lambda pair: (-pair[1], pair[0]))
            ]
            self.runs = sum(item.count for item in self.runs_by_status)
            self.error = ""
        except DB_ERRORS as exc:
            log.warning("loading the dashboard failed: %s", exc)
            self.error = describe_db_error(exc)
        self.loaded = True

"""State of the Runs page: the latest runs with their workflow's name and who started them from where."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import reflex as rx

from app.pages.formatting import format_time, short_id, status_color, time_ago
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.runs import list_runs

log = logging.getLogger(__name__)

RUNS_SHOWN = 100
VIA_LABELS = {"ui": "editor", "api": "API", "cli": "CLI", "trigger": "trigger"}


def started_by_label(started_by: str, email: str | None) -> str:
    """Who started a run, for people: the user's e-mail ("…, API key" for a key), else the raw value."""
    kind, _, _ = started_by.partition(":")
    if email and kind == "api_key":
        return f"{email} (API key)"
    if email and kind == "user":
        return email
    return started_by or "—"


@dataclass
class RunRow:
    """One line of the run list."""

    id: str
    short_id: str
    status: str
    color: str
    workflow: str
    started_by: str
    started_via: str
    created: str
    created_exact: str
    finished: str
    finished_exact: str


class RunsState(rx.State):
    """The latest runs."""

    rows: list[RunRow] = []
    loaded: bool = False
    error: str = ""

    @rx.var
    def has_runs(self) -> bool:
        return len(self.rows) > 0

    @rx.event
    def load(self) -> None:
        """Fetch the latest runs (on page load)."""
        try:
            self.rows = [
                RunRow(
                    id=run.id,
                    short_id=short_id(run.id),
                    status=run.status,
                    color=status_color(run.status),
                    workflow=run.workflow or "(unsaved workflow)",
                    started_by=started_by_label(run.started_by, run.starter_email),
                    started_via=VIA_LABELS.get(run.started_via, run.started_via or "—"),
                    created=time_ago(run.created_at),
                    created_exact=format_time(run.created_at),
                    finished=time_ago(run.finished_at) if run.finished_at else "—",
                    finished_exact=format_time(run.finished_at),
                )
                for run in list_runs(limit=RUNS_SHOWN)
            ]
            self.error = ""
        except DB_ERRORS as exc:
            log.warning("loading runs failed: %s", exc)
            self.rows, self.error = [], describe_db_error(exc)
        self.loaded = True

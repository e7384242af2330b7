"""State of the Runs page: the latest runs with their workflow's name and who started them from where."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import reflex as rx
from reflex.event import EventSpec

from app import routes
from app.auth.guard import requires
from app.auth.policy import Role
from app.pages.formatting import format_time, short_id, status_color, time_ago
from engine import run_watch
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.runs import RunSummary, list_runs

log = logging.getLogger(__name__)

RUNS_SHOWN = 100
REREAD_S = 30.0  # re-read this often even without an event (times like "2 min ago" move on too)
COALESCE_S = 0.5  # after a wake-up, wait this long before the next one may re-read the list
IDLE_STOP_S = 1800.0  # stop watching after this long without a change (a tab left open)
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


def _row(run: RunSummary) -> RunRow:
    return RunRow(
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


def _runs_of(rows: list[RunRow]) -> list[tuple[str, str, str]]:
    return [(r.id, r.status, r.finished_exact) for r in rows]


def _latest_rows() -> list[RunRow]:
    return [_row(run) for run in list_runs(limit=RUNS_SHOWN)]


class RunsState(rx.State):
    """The latest runs, kept current while the page is open."""

    rows: list[RunRow] = []
    loaded: bool = False
    error: str = ""

    _watch: int = 0  # the latest watcher of this tab; older ones stop

    @rx.var
    def has_runs(self) -> bool:
        return len(self.rows) > 0

    @rx.event
    def load(self) -> EventSpec:
        """Fetch the latest runs (on page load), then keep them current."""
        try:
            self.rows = _latest_rows()
            self.error = ""
        except DB_ERRORS as exc:
            log.warning("loading runs failed: %s", exc)
            self.rows, self.error = [], describe_db_error(exc)
        self.loaded = True
        self._watch += 1
        return RunsState.watch

    @rx.event(background=True)
    @requires(Role.VIEWER)
    async def watch(self) -> None:
        """Re-read the list when any run has a new event (engine.run_events), until the tab leaves
        the page, the page is loaded again, or nothing changes for IDLE_STOP_S."""
        async with self:
            me = self._watch
        changed_at = time.monotonic()
        while True:
            # Armed before the read: an event that commits while we read still wakes the wait.
            armed = await run_watch.arm([run_watch.ANY_RUN], REREAD_S)
            try:
                try:
                    rows = await asyncio.to_thread(_latest_rows)
                except DB_ERRORS as exc:
                    log.warning("refreshing runs failed: %s", exc)
                    rows = None
                async with self:
                    if self._watch != me or self.router.url.path.rstrip("/") != routes.RUNS:
                        return
                    if rows is not None and rows != self.rows:
                        if _runs_of(rows) != _runs_of(self.rows):  # not just "3 min ago" moving on
                            changed_at = time.monotonic()
                        self.rows, self.error = rows, ""
                if time.monotonic() - changed_at > IDLE_STOP_S:
                    return
                woken = await armed.wait()
            finally:
                armed.cancel()
            if woken:  # a burst of events (an agent's tokens) is one refresh, not one per event
                await asyncio.sleep(COALESCE_S)

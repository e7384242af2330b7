"""State of the Runs page: runs filtered and searched, a page at a time (keyset pages from
engine.runs.list_runs), each row opening its run's page; kept current by the runs' events."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import reflex as rx
from reflex.event import EventSpec

from app import routes
from app.auth.guard import caller_of, requires
from app.auth.policy import Role
from app.db import db_session
from app.pages.formatting import format_time, short_id, status_color, time_ago
from app.pages.run_filters import (
    ANY,
    ME,
    RANGE_LABELS,
    STATUSES,
    VIA_LABELS,
    FilterError,
    RunFilters,
    from_params,
)
from engine import run_watch, triggers, workflows
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import FlowloomError, user_message
from engine.runs import RunSummary, list_runs, run_cursor, run_starters

log = logging.getLogger(__name__)

PAGE_SIZE = 25
REREAD_S = 30.0  # re-read this often even without an event (times like "2 min ago" move on too)
COALESCE_S = 0.5  # after a wake-up, wait this long before the next one may re-read the list
IDLE_STOP_S = 1800.0  # stop watching after this long without a change (a tab left open)
OPTIONS_SHOWN = 300  # workflows and starters offered in the filters


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
    href: str
    status: str
    color: str
    workflow: str
    version: str
    started_by: str
    started_via: str
    created: str
    created_exact: str
    finished: str
    finished_exact: str


@dataclass
class Option:
    """One choice of a filter's select."""

    value: str
    label: str


def _row(run: RunSummary) -> RunRow:
    return RunRow(
        id=run.id,
        short_id=short_id(run.id),
        href=routes.run_page(run.id),
        status=run.status,
        color=status_color(run.status),
        workflow=run.workflow or "(unsaved workflow)",
        version=f"v{run.version}" if run.version else "",
        started_by=started_by_label(run.started_by, run.starter_email),
        started_via=VIA_LABELS.get(run.started_via, run.started_via or "—"),
        created=time_ago(run.created_at),
        created_exact=format_time(run.created_at),
        finished=time_ago(run.finished_at) if run.finished_at else "—",
        finished_exact=format_time(run.finished_at),
    )


def _runs_of(rows: list[RunRow]) -> list[tuple[str, str, str]]:
    return [(r.id, r.status, r.finished_exact) for r in rows]


@dataclass(frozen=True)
class Page:
    """One page of the list, and the cursor of the next (older) one ("" on the last page)."""

    rows: list[RunRow]
    next_cursor: str


def read_page(
    filters: RunFilters, user_id: str | None, workspace_id: str, cursor: str = "", size: int = PAGE_SIZE
) -> Page:
    """The runs of the workspace matching `filters` after `cursor`, newest first; FilterError or
    FlowloomError if refused."""
    found = list_runs(
        **filters.query(user_id), workspace_id=workspace_id, cursor=cursor or None, limit=size + 1
    )
    shown = found[:size]
    return Page([_row(r) for r in shown], run_cursor(shown[-1]) if len(found) > size else "")


def _workflow_options(workspace_id: str) -> list[Option]:
    with db_session() as session:
        found = [
            w
            for w in workflows.list_workflows(session, limit=OPTIONS_SHOWN)
            if str(w.workspace_id) == workspace_id
        ]
        return [Option(str(w.id), w.name) for w in sorted(found, key=lambda w: w.name.lower())]


def _trigger_options(workflow_id: str, workspace_id: str) -> list[Option]:
    wanted = workflows.parse_id(workflow_id) if workflow_id != ANY else None
    if wanted is None:
        return []
    with db_session() as session:
        # A workflow of another workspace has no triggers for this caller (as if unknown).
        if workflows.get_workflow(session, wanted, workspace_id=workspace_id) is None:
            return []
        found = triggers.list_for_workflow(session.connection(), wanted)
    return [Option(t.id, f"{t.key} ({t.kind})") for t in found]


def _who_options(workspace_id: str) -> list[Option]:
    found = run_starters(workspace_id=workspace_id, limit=OPTIONS_SHOWN)
    return [Option(ME, "Me"), *(Option(uid, email) for uid, email in found)]


def _reread(filters: RunFilters, user_id: str | None, workspace_id: str, cursor: str) -> Page | None:
    try:
        return read_page(filters, user_id, workspace_id, cursor)
    except (FilterError, FlowloomError, *DB_ERRORS) as exc:
        log.warning("refreshing runs failed: %s", exc)
        return None


class RunsState(rx.State):
    """The runs list with its filters, search and pages, kept current while the page is open."""

    rows: list[RunRow] = []
    loaded: bool = False
    error: str = ""
    # The filters (ANY: not filtered); see app/pages/run_filters.py.
    f_workflow: str = ANY
    f_status: str = ANY
    f_via: str = ANY
    f_trigger: str = ANY
    f_who: str = ANY
    f_range: str = ANY
    f_from: str = ""
    f_to: str = ""
    search: str = ""
    workflow_options: list[Option] = []
    trigger_options: list[Option] = []
    who_options: list[Option] = []
    filtered: bool = False  # some filter or a search narrows the list
    page_no: int = 0  # 0: the newest runs
    has_older: bool = False

    _cursors: list[str] = [""]  # the cursor of each page seen so far, page 0's is ""
    _next_cursor: str = ""
    _watch: int = 0  # the latest watcher of this tab; older ones stop

    @rx.var
    def has_runs(self) -> bool:
        return len(self.rows) > 0

    @rx.var
    def has_newer(self) -> bool:
        return self.page_no > 0

    @rx.var
    def page_label(self) -> str:
        if not self.rows:
            return ""
        first = self.page_no * PAGE_SIZE + 1
        return f"{first}–{first + len(self.rows) - 1}"

    def _filters(self) -> RunFilters:
        return RunFilters(
            workflow=self.f_workflow, status=self.f_status, via=self.f_via, trigger=self.f_trigger,
            who=self.f_who, range=self.f_range, date_from=self.f_from, date_to=self.f_to, search=self.search,
        )  # fmt: skip

    def _set_filters(self, filters: RunFilters) -> None:
        self.f_workflow, self.f_status, self.f_via = filters.workflow, filters.status, filters.via
        self.f_trigger, self.f_who, self.f_range = filters.trigger, filters.who, filters.range
        self.f_from, self.f_to, self.search = filters.date_from, filters.date_to, filters.search
        self.filtered = filters.active

    def _user_id(self) -> str | None:
        caller = caller_of(self)
        return caller.user_id if caller else None

    def _workspace(self) -> str:
        caller = caller_of(self)
        return caller.workspace_id if caller else ""

    def _read(self) -> None:
        """Read the current page (rows, whether an older one exists) or say why it cannot be read."""
        try:
            page = read_page(*self._shown())
        except FilterError as exc:
            page, self.error = Page([], ""), str(exc)
        except FlowloomError as exc:  # a cursor the engine refuses
            page, self.error = Page([], ""), user_message(exc)
        except DB_ERRORS as exc:
            log.warning("loading runs failed: %s", exc)
            page, self.error = Page([], ""), describe_db_error(exc)
        else:
            self.error = ""
        self.rows, self._next_cursor, self.has_older = page.rows, page.next_cursor, bool(page.next_cursor)

    def _first_page(self) -> None:
        self.page_no, self._cursors = 0, [""]
        self._read()

    def _load_options(self) -> None:
        try:
            self.workflow_options = _workflow_options(self._workspace())
            self.trigger_options = _trigger_options(self.f_workflow, self._workspace())
            self.who_options = _who_options(self._workspace())
        except DB_ERRORS as exc:
            log.warning("loading the runs filters failed: %s", exc)

    @rx.event
    @requires(Role.VIEWER)
    def load(self) -> EventSpec:
        """Open the page: the filters a link names (else those this tab had), its first page, then
        keep it current."""
        named = from_params(self.router.url.query_parameters)
        if named is not None:
            self._set_filters(named)
        self._load_options()
        self._first_page()
        self.loaded = True
        self._watch += 1
        return RunsState.watch

    @rx.event
    @requires(Role.VIEWER)
    def set_filter(self, name: str, value: str) -> EventSpec | None:
        """Change one filter and go back to the first page."""
        return self._change(name, value)

    @rx.event
    @requires(Role.VIEWER)
    def set_search(self, value: str) -> EventSpec | None:
        """Search run ids (their start) and workflow names."""
        return self._change("search", value)

    def _change(self, name: str, value: str) -> EventSpec | None:
        try:
            filters = self._filters().changed(name, value)
        except FilterError as exc:
            return rx.toast.error(str(exc))
        workflow_changed = filters.workflow != self.f_workflow
        self._set_filters(filters)
        if workflow_changed:
            try:
                self.trigger_options = _trigger_options(filters.workflow, self._workspace())
            except DB_ERRORS as exc:
                log.warning("listing triggers failed: %s", exc)
                self.trigger_options = []
        self._first_page()
        return None

    @rx.event
    @requires(Role.VIEWER)
    def clear_filters(self) -> None:
        """Every run again, newest first."""
        self._set_filters(RunFilters())
        self.trigger_options = []
        self._first_page()

    @rx.event
    @requires(Role.VIEWER)
    def older(self) -> None:
        """The next page: runs started before the last one shown."""
        if not self._next_cursor:
            return
        self._cursors = [*self._cursors[: self.page_no + 1], self._next_cursor]
        self.page_no += 1
        self._read()

    @rx.event
    @requires(Role.VIEWER)
    def newer(self) -> None:
        """The page before this one."""
        if self.page_no == 0:
            return
        self.page_no -= 1
        self._read()

    @rx.event
    @requires(Role.VIEWER)
    def open_run(self, run_id: str) -> EventSpec:
        """Open a run's page (a row was clicked)."""
        return rx.redirect(routes.run_page(run_id))

    def _shown(self) -> tuple[RunFilters, str | None, str, str]:
        """What the shown page is: its filters, the caller's user id (for "me") and workspace, its cursor."""
        return self._filters(), self._user_id(), self._workspace(), self._cursors[self.page_no]

    @rx.event(background=True)
    @requires(Role.VIEWER)
    async def watch(self) -> None:
        """Re-read the shown page when any run has a new event (engine.run_events), until the tab leaves
        the page, the page is loaded again, or nothing changes for IDLE_STOP_S."""
        async with self:
            me = self._watch
        changed_at = time.monotonic()
        while True:
            # Armed before the read: an event that commits while we read still wakes the wait.
            armed = await run_watch.arm([run_watch.ANY_RUN], REREAD_S)
            try:
                async with self:
                    shown = self._shown()
                page = await asyncio.to_thread(_reread, *shown)
                async with self:
                    if self._watch != me or self.router.url.path.rstrip("/") != routes.RUNS:
                        return
                    if page is not None and self._shown() == shown and page.rows != self.rows:
                        if _runs_of(page.rows) != _runs_of(self.rows):  # not just "3 min ago" moving on
                            changed_at = time.monotonic()
                        self.rows, self.error = page.rows, ""
                        self._next_cursor, self.has_older = page.next_cursor, bool(page.next_cursor)
                if time.monotonic() - changed_at > IDLE_STOP_S:
                    return
                woken = await armed.wait()
            finally:
                armed.cancel()
            if woken:  # a burst of events (an agent's tokens) is one refresh, not one per event
                await asyncio.sleep(COALESCE_S)


STATUS_OPTIONS = [Option(ANY, "Any status"), *(Option(s, s) for s in STATUSES)]
VIA_OPTIONS = [Option(ANY, "From anywhere"), *(Option(k, v) for k, v in VIA_LABELS.items())]
RANGE_OPTIONS = [Option(k, v) for k, v in RANGE_LABELS.items()]

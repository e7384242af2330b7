"""State of the Dashboard page: counts, and the charts of one period (engine/run_stats.py), kept
current while the page is open; every chart links to the runs list filtered to what it shows."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import reflex as rx
from reflex.event import EventSpec

from app import db, routes
from app.auth.guard import caller_of, requires
from app.auth.policy import Role
from app.pages.formatting import status_color
from app.pages.run_filters import ANY, RunFilters
from engine import circuit_breaker, run_watch
from engine.approvals import count_pending
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.run_stats import PERIODS, DashboardStats, dashboard_stats
from engine.runs import count_by_status
from engine.workflows import count_workflows
from models.db import get_engine

log = logging.getLogger(__name__)

DEFAULT_PERIOD = "24h"
PERIOD_LABELS = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
REFRESH_S = 15.0  # re-read at least this often (ages and "now" move on without any event)
COALESCE_S = 1.0  # after a wake-up by a run event, wait this long so a burst is one refresh
IDLE_STOP_S = 3600.0  # stop refreshing a tab left open this long without a change
CHART_STATUSES = ("succeeded", "failed", "cancelled", "running", "queued")


@dataclass
class StatusCount:
    """How many runs have one status."""

    status: str
    count: int
    color: str


@dataclass
class StatusLink:
    """A status of the runs chart: its count in the period and the runs list of it."""

    status: str
    count: int
    color: str
    href: str


@dataclass
class CircuitRow:
    """An HTTP destination whose requests failed lately (engine/circuit_breaker.py)."""

    destination: str
    state: str
    failures: int
    opens_for: str
    color: str


@dataclass
class SlowWorkflow:
    """One of the slowest workflows of the period."""

    name: str
    runs: int
    p95: str
    longest: str
    href: str


def runs_href(period: str, **filters: str) -> str:
    """The runs list filtered like a chart (its period and `filters`), as a link."""
    chosen = RunFilters(range=period)
    for name, value in filters.items():
        chosen = chosen.changed(name, value)
    query = {k: v for k, v in chosen.as_dict().items() if v not in (ANY, "")}
    return f"{routes.RUNS}?{urlencode(query)}" if query else routes.RUNS


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _label(moment: datetime, period: str) -> str:
    if period in ("1h", "24h"):
        return moment.strftime("%H:%M")
    if period == "7d":
        return moment.strftime("%a %H:%M")
    return moment.strftime("%b %d")


def _read(period: str, workspace_id: str) -> tuple[int, dict[str, int], int, DashboardStats]:
    """The counts and charts of the caller's workspace only."""
    with db.db_session() as session:
        workflows = count_workflows(session, workspace_id=workspace_id)
    return (
        workflows,
        count_by_status(workspace_id=workspace_id),
        count_pending(workspace_id=workspace_id),
        dashboard_stats(get_engine(db.database_url()), period, workspace_id=workspace_id),
    )


class DashboardState(rx.State):
    """The numbers and charts on the dashboard."""

    workflows: int = 0
    runs: int = 0
    pending_approvals: int = 0
    runs_by_status: list[StatusCount] = []
    period: str = DEFAULT_PERIOD
    runs_series: list[dict[str, Any]] = []
    success_series: list[dict[str, Any]] = []
    duration_rows: list[dict[str, Any]] = []
    waiting_series: list[dict[str, Any]] = []
    slowest: list[SlowWorkflow] = []
    circuits: list[CircuitRow] = []
    status_links: list[StatusLink] = []
    success_rate: str = "—"
    period_runs: int = 0
    queue_depth: int = 0
    oldest_queued: str = "—"
    oldest_approval: str = "—"
    refreshed_at: str = ""
    loaded: bool = False
    error: str = ""
    _watch: int = 0

    @rx.var
    def period_label(self) -> str:
        return PERIOD_LABELS.get(self.period, self.period)

    @rx.var
    def period_runs_href(self) -> str:
        return runs_href(self.period)

    @rx.var
    def failed_runs_href(self) -> str:
        return runs_href(self.period, status="failed")

    @rx.var
    def running_runs_href(self) -> str:
        return runs_href(self.period, status="running")

    def _show(self, read: tuple[int, dict[str, int], int, DashboardStats]) -> None:
        workflows, by_status, pending, stats = read
        self.workflows, self.pending_approvals = workflows, pending
        self.runs_by_status = [
            StatusCount(status=status, count=count, color=status_color(status))
            for status, count in sorted(by_status.items(), key=lambda pair: (-pair[1], pair[0]))
        ]
        self.runs = sum(item.count for item in self.runs_by_status)
        period = stats.period
        self.runs_series = [
            {"t": _label(b.start, period), **{s: b.runs.get(s, 0) for s in CHART_STATUSES}}
            for b in stats.buckets
        ]
        self.success_series = [
            {
                "t": _label(b.start, period),
                "rate": round(b.success_rate * 100, 1) if b.success_rate is not None else None,
            }
            for b in stats.buckets
        ]
        self.waiting_series = [
            {"t": _label(b.start, period), "queued": b.queued_steps, "approvals": b.pending_approvals}
            for b in stats.buckets
        ]
        self.duration_rows = [
            {
                "node_type": d.node_type,
                "p50": round(d.p50_s * 1000, 1),
                "p95": round(d.p95_s * 1000, 1),
                "steps": d.steps,
            }
            for d in stats.durations
        ]
        self.slowest = [
            SlowWorkflow(
                w.name,
                w.runs,
                _seconds(w.p95_s),
                _seconds(w.max_s),
                runs_href(period, workflow=w.workflow_id) if w.workflow_id else runs_href(period),
            )  # fmt: skip
            for w in stats.slowest
        ]
        totals = stats.totals
        self.status_links = [
            StatusLink(s, totals.get(s, 0), status_color(s), runs_href(period, status=s))
            for s in CHART_STATUSES
        ]
        self.period_runs = sum(totals.values())
        rate = stats.success_rate
        self.success_rate = "—" if rate is None else f"{rate * 100:.0f}%"
        self.queue_depth = stats.queue_depth
        self.oldest_queued = _seconds(stats.oldest_queued_s) if stats.queue_depth else "—"
        self.oldest_approval = _seconds(stats.oldest_approval_s) if pending else "—"
        self.refreshed_at = stats.until.strftime("%H:%M:%S UTC")
        self.circuits = [
            CircuitRow(
                c.destination,
                c.state,
                c.failures,
                _seconds(c.opens_for_s) if c.state == "open" else "—",
                {"open": "red", "half-open": "amber"}.get(c.state, "gray"),
            )  # fmt: skip
            for c in (circuit_breaker.circuits() if self._instance_admin() else [])
        ]
        self.error = ""

    def _instance_admin(self) -> bool:
        # Circuits are the whole instance's (every workspace's destinations): instance admins only.
        caller = caller_of(self)
        return caller is not None and caller.instance_role == Role.ADMIN

    def _load_now(self) -> None:
        try:
            caller = caller_of(self)
            self._show(_read(self.period, caller.workspace_id if caller is not None else ""))
        except DB_ERRORS as exc:
            log.warning("loading the dashboard failed: %s", exc)
            self.error = describe_db_error(exc)
        self.loaded = True

    @rx.event
    @requires(Role.VIEWER)
    def load(self) -> EventSpec:
        """Count and chart (on page load), then keep the page current."""
        period = self.router.url.query_parameters.get("period")
        if isinstance(period, str) and period in PERIODS:
            self.period = period
        self._load_now()
        self._watch += 1
        return DashboardState.keep_fresh

    @rx.event
    @requires(Role.VIEWER)
    def set_period(self, period: str | list[str]) -> None:
        """Chart another period (1h, 24h, 7d, 30d)."""
        if isinstance(period, list):  # the segmented control's multiple mode; it is single here
            period = period[0] if period else ""
        if period not in PERIODS:
            return
        self.period = period
        self._load_now()

    @rx.event(background=True)
    @requires(Role.VIEWER)
    async def keep_fresh(self) -> None:
        """Re-read when a run has a new event (engine.run_watch) or every REFRESH_S, until the tab
        leaves the page, the page is loaded again, or nothing changed for IDLE_STOP_S."""
        async with self:
            me = self._watch
            caller = caller_of(self)
            workspace = caller.workspace_id if caller is not None else ""
        changed_at = time.monotonic()
        while True:
            armed = await run_watch.arm([run_watch.ANY_RUN], REFRESH_S)
            try:
                woken = await armed.wait()
            finally:
                armed.cancel()
            if woken:
                await asyncio.sleep(COALESCE_S)
            async with self:
                if self._watch != me or self.router.url.path.rstrip("/") != routes.DASHBOARD:
                    return
                period = self.period
            try:
                read = await asyncio.to_thread(_read, period, workspace)
            except DB_ERRORS as exc:
                async with self:
                    self.error = describe_db_error(exc)
                continue
            async with self:
                if self._watch != me:
                    return
                before = (self.runs_series, self.waiting_series, self.runs)
                if self.period == period:  # not changed while we read
                    self._show(read)
                if (self.runs_series, self.waiting_series, self.runs) != before:
                    changed_at = time.monotonic()
            if time.monotonic() - changed_at > IDLE_STOP_S:
                return

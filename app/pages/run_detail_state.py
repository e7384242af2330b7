"""State of a run's page (/runs/<id>): the run read through engine.run_detail, followed live while it
runs (a background event re-reads it on each of its events), the node picked on the graph, and
Cancel behind a confirmation (operators)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from app import routes
from app.auth.guard import caller_of, requires
from app.auth.policy import Role, allows
from app.pages.editor.auto_layout import layout_positions
from app.pages.editor.graph import WorkingGraph
from app.pages.run_detail_view import (
    TERMINAL,
    EventLine,
    RunHeader,
    StepCard,
    event_lines,
    header,
    node_statuses,
    pretty,
    step_cards,
)
from app.pages.run_guardrails import GuardrailLine, guardrail_lines
from app.run_restart import check_may_restart, may_restart
from engine import run_watch
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import FlowloomError, ValidationError, user_message
from engine.ids import parse_id
from engine.rerun import RestartOptions, fork, rerun_from
from engine.run_detail import RunDetail, get_run_detail
from engine.runs import cancel_run

log = logging.getLogger(__name__)

REREAD_S = 15.0  # re-read a followed run this often even without an event (a lost notification)
COALESCE_S = 0.3  # after a wake-up, wait this long so a burst of events is one re-read
IDLE_STOP_S = 1800.0  # stop following a run that has not changed for this long (a tab left open)


def _empty_header() -> RunHeader:
    return RunHeader("", "", "", "", "", "", "", "", "", "", "", "", "", False)


def canvas_graph(definition: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the canvas draws of a run's definition; nodes laid out when their positions overlap
    (a definition written by hand or through the API often has none)."""
    graph = WorkingGraph(definition)
    nodes, edges = graph.canvas_nodes(), graph.canvas_edges()
    if len({(n["x"], n["y"]) for n in nodes}) < len(nodes):
        at = layout_positions([n["id"] for n in nodes], graph.edges)
        nodes = [{**n, **at.get(n["id"], {})} for n in nodes]
    return nodes, edges


def _read(run_id: str, workspace_id: str) -> RunDetail | None:
    # A run of another workspace than the caller's reads as no run at all ("not found").
    return get_run_detail(run_id, workspace_id=workspace_id)


class RunDetailState(rx.State):
    """One run: header, graph with step states, steps, event log; live until it ends."""

    run_id: str = ""
    loaded: bool = False
    not_found: bool = False
    error: str = ""
    head: RunHeader = _empty_header()
    inputs: str = ""
    outputs: str = ""
    steps: list[StepCard] = []
    events: list[EventLine] = []
    guardrails: list[GuardrailLine] = []  # the guardrails that fired (app/pages/run_guardrails.py)
    canvas_nodes: list[dict[str, Any]] = []
    canvas_edges: list[dict[str, Any]] = []
    statuses: dict[str, str] = {}
    fit: dict[str, Any] = {}
    selected_node: str = ""  # the node picked on the graph: only its steps are listed
    active: bool = False  # the run has not ended: followed live
    may_cancel: bool = False  # the caller is an operator (Cancel is checked again when pressed)
    cancel_open: bool = False
    may_restart: bool = False  # re-run from a step / fork: operator, editor for an inline definition
    fork_open: bool = False
    fork_inputs: str = ""  # the fork's inputs as JSON, edited in the dialog
    fork_error: str = ""
    fork_issues: list[str] = []

    _follow: int = 0  # the latest follower of this tab; older ones stop
    _graph_of: str = ""  # the run whose graph the canvas holds
    _role: str = ""  # the caller's role when the page loaded (each action checks it again)
    _workspace: str = ""  # the caller's workspace when the page loaded (actions use the caller's now)

    @rx.var
    def shown_steps(self) -> list[StepCard]:
        """The steps listed: the picked node's, else all."""
        if not self.selected_node:
            return self.steps
        return [s for s in self.steps if s.node_id == self.selected_node]

    @rx.var
    def can_cancel(self) -> bool:
        return self.may_cancel and self.active

    @rx.var
    def can_rerun(self) -> bool:
        """Re-run from a step once the run has ended (a fork may start at any time)."""
        return self.may_restart and not self.active

    def _show(self, detail: RunDetail) -> None:
        self.head = header(detail)
        self.inputs, self.outputs = pretty(detail.inputs), pretty(detail.outputs)
        self.steps, self.events = step_cards(detail), event_lines(detail)
        self.guardrails = guardrail_lines(detail)
        self.statuses = node_statuses(detail)
        self.active = detail.status not in TERMINAL
        self.may_restart = may_restart(detail.version is not None, self._role or None)
        if self._graph_of != detail.id:  # the graph never changes during a run: send it once
            self.canvas_nodes, self.canvas_edges = canvas_graph(detail.definition)
            self.fit = {"n": int(self.fit.get("n", 0)) + 1}
            self._graph_of = detail.id

    def _forget(self) -> None:
        self.head, self.inputs, self.outputs, self.steps, self.events = _empty_header(), "", "", [], []
        self.canvas_nodes, self.canvas_edges, self.statuses, self._graph_of = [], [], {}, ""
        self.active, self.selected_node, self.cancel_open = False, "", False

    def _on_page_of(self, run_id: str) -> bool:
        """The tab still shows the page of `run_id` (not another page, nor another run's)."""
        path = self.router.url.path.rstrip("/")
        head, _, last = path.rpartition("/")
        return head == routes.RUNS and str(parse_id(last)) == run_id

    @rx.event
    @requires(Role.VIEWER)
    def load(self) -> EventSpec | None:
        """Open the run named in the URL; an unknown or malformed id shows "not found"."""
        wanted = self.router.url.path.rstrip("/").rsplit("/", 1)[-1]
        parsed = parse_id(wanted)
        self.run_id = str(parsed) if parsed else wanted
        self._forget()
        self._follow += 1
        caller = caller_of(self)
        self.may_cancel = caller is not None and allows(caller.role, Role.OPERATOR)
        self._role = caller.role if caller is not None else ""
        self._workspace = caller.workspace_id if caller is not None else ""
        self.fork_open = False
        self.error, self.not_found, self.loaded = "", False, False
        try:
            detail = _read(self.run_id, self._workspace) if parsed else None
        except DB_ERRORS as exc:
            log.warning("reading run %s failed: %s", self.run_id, exc)
            self.error, self.loaded = describe_db_error(exc), True
            return None
        self.loaded = True
        if detail is None:
            self.not_found = True
            return None
        self._show(detail)
        return RunDetailState.follow if self.active else None

    @rx.event(background=True)
    @requires(Role.VIEWER)
    async def follow(self) -> None:
        """Re-read the run when it has a new event (pushed by PostgreSQL through engine.run_events),
        until it ends, the tab leaves its page, or it stays unchanged for IDLE_STOP_S."""
        async with self:
            me, run_id, workspace = self._follow, self.run_id, self._workspace
        changed_at = time.monotonic()
        while True:
            # Armed before the read: an event that commits while we read still wakes the wait.
            armed = await run_watch.arm([run_id], REREAD_S)
            try:
                try:
                    detail = await asyncio.to_thread(_read, run_id, workspace)
                except DB_ERRORS as exc:
                    log.warning("following run %s failed: %s", run_id, exc)
                    detail = None
                async with self:
                    if self._follow != me or not self._on_page_of(run_id):
                        return
                    if detail is None:
                        self.active = False
                        return
                    before = (self.head.status, self.steps, self.events[-1:])
                    self._show(detail)
                    if (self.head.status, self.steps, self.events[-1:]) != before:
                        changed_at = time.monotonic()
                    if not self.active:
                        return
                if time.monotonic() - changed_at > IDLE_STOP_S:
                    return
                woken = await armed.wait()
            finally:
                armed.cancel()
            if woken:
                await asyncio.sleep(COALESCE_S)

    @rx.event
    @requires(Role.VIEWER)
    def select(self, node_ids: list, edge_ids: list) -> None:
        """A node was picked on the graph (or the pick was cleared); edges are not listed."""
        del edge_ids
        self.selected_node = str(node_ids[0]) if len(node_ids) == 1 else ""

    @rx.event
    @requires(Role.VIEWER)
    def show_all_steps(self) -> None:
        self.selected_node = ""

    @rx.event
    @requires(Role.OPERATOR)
    def set_cancel_open(self, value: bool) -> None:
        """Open or close the confirmation of Cancel."""
        self.cancel_open = bool(value) and self.active

    @rx.event
    @requires(Role.OPERATOR)
    def cancel(self) -> EventSpec | list[EventSpec] | None:
        """Cancel the run (confirmed in the dialog): audited as run.cancelled, via "ui"."""
        self.cancel_open = False
        caller = caller_of(self)
        if caller is None:
            return None
        try:
            cancelled = cancel_run(self.run_id, workspace_id=caller.workspace_id, cancelled_by=caller.started_by,
                                   via="ui", actor=caller.actor)  # fmt: skip
            detail = _read(self.run_id, caller.workspace_id)
        except DB_ERRORS as exc:
            log.warning("cancelling run %s failed: %s", self.run_id, exc)
            return rx.toast.error(f"The run could not be cancelled: {user_message(exc)}")
        if detail is not None:
            self._show(detail)
        if not cancelled:
            return rx.toast.info(f"The run had already ended ({self.head.status})")
        return rx.toast.success(f"Run {self.head.short_id} cancelled")

    def _restart_options(self) -> RestartOptions | None:
        caller = caller_of(self)
        if caller is None:
            return None
        check_may_restart(self.run_id, caller.role, workspace_id=caller.workspace_id)
        return RestartOptions(created_by=caller.user_id, started_by=caller.started_by, started_via="ui",
                              actor=caller.actor, workspace_id=caller.workspace_id)  # fmt: skip

    @rx.event
    @requires(Role.OPERATOR)
    def rerun_from_step(self, step_id: str) -> EventSpec | list[EventSpec] | None:
        """Start a new run of this run's version from the step `step_id`: the steps before it are
        reused, it and what follows run anew; then open the new run's page."""
        card = next((c for c in self.steps if c.id == step_id), None)
        if card is None:
            return rx.toast.error("That step is no longer on this page; reload it")
        try:
            options = self._restart_options()
            if options is None:
                return None
            new_id = rerun_from(self.run_id, card.node_id, visit=card.visit, **options)
        except FlowloomError as exc:
            return rx.toast.error(f"The run could not be re-run: {user_message(exc)}")
        except DB_ERRORS as exc:
            log.warning("re-running run %s from %s failed: %s", self.run_id, card.node_id, exc)
            return rx.toast.error(f"The run could not be re-run: {describe_db_error(exc)}")
        return [
            rx.toast.success(f"Re-running from step {card.node_id}"),
            rx.redirect(routes.run_page(new_id)),
        ]

    @rx.event
    @requires(Role.OPERATOR)
    def set_fork_open(self, value: bool) -> None:
        """Open the fork dialog with this run's inputs to edit (or close it)."""
        self.fork_open = bool(value) and self.may_restart
        if self.fork_open:
            self.fork_inputs, self.fork_error, self.fork_issues = self.inputs or "{}", "", []

    @rx.event
    @requires(Role.OPERATOR)
    def set_fork_inputs(self, value: str) -> None:
        self.fork_inputs = str(value)

    @rx.event
    @requires(Role.OPERATOR)
    def fork(self) -> EventSpec | list[EventSpec] | None:
        """Start this run's version with the edited inputs (checked against its schema) and open it;
        bad JSON or inputs keep the dialog open with the reasons, the text as typed."""
        self.fork_error, self.fork_issues = "", []
        try:
            inputs = json.loads(self.fork_inputs or "{}")
        except ValueError as exc:
            self.fork_error = f"The inputs are not JSON: {exc}"
            return None
        if not isinstance(inputs, dict):
            self.fork_error = 'The inputs must be a JSON object, e.g. {"n": 1}'
            return None
        try:
            options = self._restart_options()
            if options is None:
                return None
            new_id = fork(self.run_id, inputs, **options)
        except ValidationError as exc:
            self.fork_error = "The inputs do not match the workflow's inputs schema:"
            self.fork_issues = [f"{i.field or 'input'}: {i.message}" for i in exc.issues]
            return None
        except FlowloomError as exc:
            self.fork_error = user_message(exc)
            return None
        except DB_ERRORS as exc:
            log.warning("forking run %s failed: %s", self.run_id, exc)
            self.fork_error = describe_db_error(exc)
            return None
        self.fork_open = False
        return [rx.toast.success("Forked with new inputs"), rx.redirect(routes.run_page(new_id))]

"""The editor's run view: the input form, starting a run of the saved version, live node statuses
(a background event re-reads the run on each of its events), the clicked node's step details and
the run history.

A run always starts from the saved version read back from the database, never from the graph held
in this tab: editors save first, operators can only run what an editor saved. A sub-state of
`EditorCore`; the page's `EditorState` calls `_start_over` when it opens a workflow and
`_refresh_steps` when the selection changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from app.auth.guard import caller_of, requires
from app.auth.policy import Role, allows
from app.pages.editor.core_state import EditorCore
from app.pages.editor.tools_state import EditorTools
from app.pages.formatting import format_time, short_id, time_ago
from components.config_form import UNSET, FormField, InputError, build_fields, parse_input, resolve
from engine import publishing, run_watch
from engine.db_errors import DB_ERRORS
from engine.errors import DefinitionError, FlowloomError, ValidationError, user_message
from engine.runs import RunView, check_inputs, get_run, list_runs, start_run
from engine.workflows import SavedVersion, saved_version

log = logging.getLogger(__name__)

TERMINAL = ("succeeded", "failed", "cancelled")
REREAD_S = 10.0  # re-read a followed run this often even without an event (a lost notification)
IDLE_STOP_S = 120.0  # stop watching a run that has not changed for this long
MAX_SHOWN_CHARS = 20_000
RUNS_SHOWN = 25  # the workflow's latest runs in the Runs tab


@dataclass
class RunRow:
    """One line of the run history."""

    id: str
    short_id: str
    status: str
    version: str
    created: str
    created_exact: str


@dataclass
class StepView:
    """One visit of the selected node in the shown run."""

    visit: int
    status: str
    attempt: int
    inputs: str
    outputs: str
    error: str
    queued: str
    started: str
    finished: str
    duration: str


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "\n… (cut)"


def _clock(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S.%f")[:-3] if moment else "—"


def _duration(step: dict[str, Any]) -> str:
    started, finished = step.get("started_at"), step.get("finished_at")
    if not started or not finished:
        return "—"
    seconds = (finished - started).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def input_errors(exc: ValidationError) -> dict[str, str]:
    """Run-input problems by top-level field ("'x' is a required property" belongs to x)."""
    errors: dict[str, str] = {}
    for issue in exc.issues:
        name = (issue.field or "").removeprefix("input").lstrip(".").split(".")[0]
        missing = re.fullmatch(r"'(.+)' is a required property", issue.message)
        if not name and missing:
            name, message = missing.group(1), "required"
        else:
            message = issue.message
        errors.setdefault(name, message)
    return errors


def node_statuses(view: RunView, node_ids: list[str]) -> dict[str, str]:
    """Each node's status in the run: its latest visit's, or "skipped" once the run ended without it."""
    statuses = {step["node_id"]: step["status"] for step in view.steps}  # ordered by queue time
    if view.status in TERMINAL:
        statuses.update({n: "skipped" for n in node_ids if n not in statuses})
    return statuses


class EditorRun(EditorCore):
    """Start, watch and inspect runs of the open workflow."""

    run_id: str = ""
    run_status: str = ""
    run_error: str = ""
    run_outputs: str = ""
    run_active: bool = False
    runs: list[RunRow] = []
    steps: list[StepView] = []
    run_inputs_open: bool = False
    input_fields: list[FormField] = []

    _run_inputs: dict = {}
    _run_drafts: dict = {}
    _steps: tuple = ()

    def _start_over(self) -> None:
        """A workflow was just opened: no run shown, its run history listed."""
        self.run_id, self.run_status, self.run_error, self.run_outputs = "", "", "", ""
        self.run_active, self.steps, self._steps = False, [], ()
        self._load_runs()

    def _workspace(self) -> str:
        # Runs of another workspace than the caller's are listed and opened as no run at all.
        caller = caller_of(self)
        return caller.workspace_id if caller is not None else ""

    def _load_runs(self) -> None:
        workflow_id = self._workflow_uuid()
        try:
            found = (
                list_runs(workspace_id=self._workspace(), workflow_id=str(workflow_id), limit=RUNS_SHOWN)
                if workflow_id
                else []
            )
        except DB_ERRORS as exc:
            log.warning("listing runs failed: %s", exc)
            return
        self.runs = [
            RunRow(r.id, short_id(r.id), r.status, f"v{r.version}" if r.version else "—",
                   time_ago(r.created_at), format_time(r.created_at))
            for r in found
        ]  # fmt: skip

    # Starting

    def _inputs_schema(self) -> dict[str, Any]:
        return dict(self._g().defn.get("inputs") or {})

    def _refresh_input_fields(self, errors: dict[str, str] | None = None) -> None:
        drafts = {k: v["text"] for k, v in self._run_drafts.items()}
        errors = {**(errors or {}), **{k: v["error"] for k, v in self._run_drafts.items() if v.get("error")}}
        self.input_fields = build_fields(self._inputs_schema(), self._run_inputs, errors, drafts)

    @rx.event
    @requires(Role.OPERATOR)
    def run_workflow(self) -> EventSpec | list | None:
        """Save if needed, then ask for the run's inputs (when it takes any) or start it."""
        if self.share_permission:  # engine/shares.py: runs stay with the workflow's own workspace
            return rx.toast.error("This workflow is shared with you; only its own workspace runs it")
        if self.dirty or not self.version:
            caller = caller_of(self)
            if caller is None or not allows(caller.role, Role.EDITOR):
                return rx.toast.error("Runs start from a saved version, and saving needs the editor role")
            problem = self._save("saved to run")
            if problem:
                return rx.toast.error(problem)
        if self._inputs_schema().get("properties"):
            self._run_drafts = {}
            self._refresh_input_fields()
            self.run_inputs_open = True
            return None
        return self._start({})

    @rx.event
    @requires(Role.OPERATOR)
    def set_run_inputs_open(self, value: bool) -> None:
        self.run_inputs_open = value

    @rx.event
    @requires(Role.OPERATOR)
    def set_run_input(self, name: str, text: str) -> None:
        prop = resolve(
            self._inputs_schema().get("properties", {}).get(name, {}), self._inputs_schema().get("$defs", {})
        )
        try:
            value = parse_input(prop, text)
        except InputError as exc:
            self._run_drafts = {**self._run_drafts, name: {"text": text, "error": str(exc)}}
        else:
            self._run_drafts = {k: v for k, v in self._run_drafts.items() if k != name}
            rest = {k: v for k, v in self._run_inputs.items() if k != name}
            self._run_inputs = rest if value is UNSET else {**rest, name: value}
        self._refresh_input_fields()

    @rx.event
    @requires(Role.OPERATOR)
    def set_run_flag(self, name: str, value: bool) -> None:
        self._run_inputs = {**self._run_inputs, name: value}
        self._refresh_input_fields()

    @rx.event
    @requires(Role.OPERATOR)
    def submit_run_inputs(self) -> EventSpec | list | None:
        if self._run_drafts:
            return rx.toast.error("Fix the marked inputs first")
        saved = self._saved_version()
        if saved is None:
            return rx.toast.error("Save the workflow before running it")
        try:
            check_inputs(saved.definition, dict(self._run_inputs))
        except ValidationError as exc:
            self._refresh_input_fields(input_errors(exc))
            return None
        self.run_inputs_open = False
        return self._start(dict(self._run_inputs))

    def _saved_version(self) -> SavedVersion | None:
        """The version this tab opened or saved, as stored (what the Run button runs)."""
        try:
            saved = (
                saved_version(self.wf_id, self.version, workspace_id=self._workspace())
                if self.version
                else None
            )
        except DB_ERRORS as exc:  # includes a stored definition that no longer parses
            log.warning("reading the saved version of %s failed: %s", self.wf_id, exc)
            return None
        return saved if saved is not None and saved.version_id == self._version_id else None

    def _start(self, inputs: dict[str, Any]) -> EventSpec | list:
        caller = caller_of(self)
        if caller is None:
            return rx.toast.error("Sign in to run workflows")
        saved = self._saved_version()
        if saved is None:
            return rx.toast.error("Runs start from a saved version; save the workflow first")
        try:
            # Editors test-run this version; an operator runs it only when it is the published one.
            publishing.refuse_unpublished(saved.workflow_id, saved.version, caller.role)
            run_id = start_run(
                saved.definition, inputs, workflow_id=saved.workflow_id, version_id=saved.version_id,
                created_by=caller.user_id, started_by=caller.started_by, started_via="ui", actor=caller.actor,
            )  # fmt: skip
        except ValidationError:
            return [EditorTools.run_validation, rx.toast.error("The workflow has errors; fix them to run it")]
        except DefinitionError as exc:
            return rx.toast.error(user_message(exc))
        except (FlowloomError, OSError) as exc:
            log.warning("starting a run failed: %s", exc)
            return rx.toast.error(f"The run could not start: {user_message(exc)}")
        except Exception as exc:  # the broker or database is down: say so instead of failing silently
            log.exception("starting a run failed")
            return rx.toast.error(f"The run could not start ({type(exc).__name__}); see the server log")
        self.run_id, self.run_status, self.run_error, self.run_outputs = run_id, "queued", "", ""
        self.node_statuses, self._steps, self.steps = {}, (), []
        self.run_active, self.panel_tab = True, "runs"
        self._load_runs()
        return [type(self).follow_run, rx.toast.info(f"Run {short_id(run_id)} started (v{self.version})")]

    # Watching

    def _show_run(self, view: RunView) -> None:
        graph = self._g()
        self._steps = tuple(view.steps)
        self.node_statuses = node_statuses(view, [n["id"] for n in graph.nodes])
        self.run_status, self.run_error = view.status, view.error or ""
        self.run_outputs = _pretty(view.outputs)
        self.run_active = view.status not in TERMINAL
        self._refresh_steps()

    def _refresh_steps(self) -> None:
        """The selected node's visits in the shown run."""
        node_id = self.selected_nodes[0] if len(self.selected_nodes) == 1 else ""
        self.steps = [
            StepView(
                visit=s["visit"], status=s["status"], attempt=s["attempt"], inputs=_pretty(s.get("inputs")),
                outputs=_pretty(s.get("outputs")), error=s.get("error") or "", queued=_clock(s.get("queued_at")),
                started=_clock(s.get("started_at")), finished=_clock(s.get("finished_at")), duration=_duration(s),
            )
            for s in self._steps
            if s["node_id"] == node_id
        ]  # fmt: skip

    @rx.event(background=True)
    @requires(Role.VIEWER)
    async def follow_run(self) -> None:
        """Follow the shown run until it ends (or stays unchanged for IDLE_STOP_S), re-reading it
        when it has a new event (pushed by PostgreSQL through engine.run_events), not on a timer."""
        async with self:
            run_id, workspace = self.run_id, self._workspace()
        last, changed_at = None, time.monotonic()
        while run_id:
            # Armed before the read: an event that commits while we read still wakes the wait below.
            armed = await run_watch.arm([run_id], REREAD_S)
            try:
                try:
                    view = await asyncio.to_thread(partial(get_run, run_id, workspace_id=workspace))
                except Exception as exc:  # the database went away: stop watching and say why
                    log.warning("following run %s failed: %s", run_id, exc)
                    async with self:
                        if self.run_id == run_id:
                            self.run_error, self.run_active = f"Lost track of the run: {exc}", False
                    return
                if view is None:
                    return
                snapshot = (view.status, [(s["node_id"], s["visit"], s["status"]) for s in view.steps])
                if snapshot != last:
                    last, changed_at = snapshot, time.monotonic()
                    async with self:
                        if self.run_id != run_id:
                            return
                        self._show_run(view)
                        if not self.run_active:
                            self._load_runs()
                            return
                elif time.monotonic() - changed_at > IDLE_STOP_S:
                    async with self:
                        if self.run_id == run_id:
                            self.run_active = False
                    return
                await armed.wait()
            finally:
                armed.cancel()

    @rx.event
    @requires(Role.VIEWER)
    def open_run(self, run_id: str) -> EventSpec | None:
        """Show a run of the history on the canvas (and follow it if it is still going)."""
        try:
            view = get_run(run_id, workspace_id=self._workspace())
        except Exception as exc:
            return rx.toast.error(f"Cannot read run {short_id(run_id)}: {user_message(exc)}")
        if view is None:
            return rx.toast.error(f"Run {short_id(run_id)} no longer exists")
        self.run_id = run_id
        self._show_run(view)
        return type(self).follow_run if self.run_active else None

    @rx.event
    @requires(Role.VIEWER)
    def clear_run(self) -> None:
        """Back to editing: forget the shown run's colours."""
        self.run_id, self.run_status, self.run_error, self.run_outputs = "", "", "", ""
        self.node_statuses, self._steps, self.steps, self.run_active = {}, (), [], False

"""The editor toolbar's state: validate, auto-layout, undo/redo, clipboard, import/export, versions,
and the workflow-level settings (mode, inputs schema, outputs).

A sub-state of `EditorCore` (it edits the shared working graph); the page's `EditorState` calls
`_start_over` when it opens a workflow.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from app import db
from app.auth.guard import requires
from app.auth.policy import Role
from app.pages.editor.auto_layout import layout_positions
from app.pages.editor.core_state import EditorCore
from app.pages.editor.graph import PASTE_OFFSET, WorkingGraph
from app.pages.editor.inspector import control_of, focus_control
from app.pages.formatting import format_time, time_ago
from app.pages.workspace_scope import current_workspace
from engine import shares, workflows
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.definition import WorkflowPolicy
from engine.dsl_export import to_dsl
from engine.errors import DefinitionError, FlowloomError, user_message
from engine.fragments import fragment_text
from engine.parse import parse_dict, parse_json, parse_yaml, to_json, to_yaml
from engine.validate import validate

log = logging.getLogger(__name__)


@dataclass
class IssueRow:
    """One validation issue as the issue list shows it."""

    level: str
    where: str
    message: str
    node_id: str
    edge_id: str = ""
    field: str = ""


@dataclass
class VersionRow:
    version: int
    note: str
    nodes: int
    created: str
    created_exact: str
    status: str = ""  # engine/publishing.py: draft, in_review, approved, rejected, published, superseded


def _where(issue: dict[str, Any]) -> str:
    parts = []
    if issue.get("node_id"):
        parts.append(f'node "{issue["node_id"]}"')
    if issue.get("edge_id"):
        parts.append(f'edge "{issue["edge_id"]}"')
    if issue.get("field"):
        parts.append(issue["field"])
    return " · ".join(parts) or "workflow"


def parse_any(text: str):
    """A definition from JSON or YAML text (JSON when it starts with "{")."""
    return parse_json(text, "import") if text.lstrip().startswith("{") else parse_yaml(text, "import")


class EditorTools(EditorCore):
    """What the toolbar buttons and shortcuts do."""

    issues: list[IssueRow] = []
    plan_phases: list[list[str]] = []  # the execution plan of the last validation without errors
    issues_open: bool = False
    validated: bool = False

    import_open: bool = False
    import_text: str = ""
    import_error: str = ""
    export_open: bool = False
    export_format: str = "json"
    export_text: str = ""
    versions_open: bool = False
    versions: list[VersionRow] = []

    inputs_text: str = ""
    outputs_text: str = ""
    settings_error: str = ""
    visit_limit_text: str = ""
    visit_limit_error: str = ""

    _clipboard: tuple = ()
    _pastes: int = 0

    # Validation

    @rx.event
    @requires(Role.VIEWER)
    def run_validation(self) -> EventSpec:
        """Check the graph; list the issues and mark the nodes they are about."""
        self.issues_open, self.validated = True, True
        try:
            defn = self._g().to_definition()
        except DefinitionError as exc:
            self.issues = [IssueRow("error", "definition", user_message(exc), "")]
            self.node_issues, self._report = {}, ()
            return rx.toast.error("The definition is malformed")
        workflow_id = self._workflow_uuid(
            shares.READ
        )  # a sub-workflow call back to this workflow is recursion
        # It may call only workflows (and use agents) of the caller's current workspace.
        report = validate(
            defn, workflow_id=str(workflow_id) if workflow_id else None, workspace_id=current_workspace(self)
        )
        self._report = tuple(i.to_dict() for i in report.issues)
        self.issues = [
            IssueRow(
                i["severity"],
                _where(i),
                i["message"],
                i["node_id"] or "",
                i["edge_id"] or "",
                i["field"] or "",
            )
            for i in self._report
        ]
        self.plan_phases = report.plan.phases if report.plan else []
        self.node_phases = {n: k for k, phase in enumerate(self.plan_phases, 1) for n in phase}
        marks: dict[str, dict[str, str]] = {}
        for issue in sorted(self._report, key=lambda i: i["severity"] != "error"):
            node_id = issue.get("node_id")
            if node_id and node_id not in marks:
                marks[node_id] = {"level": issue["severity"], "text": issue["message"]}
        self.node_issues = marks
        self._refresh_form()
        if report.ok and not report.issues:
            return rx.toast.success("No problems found")
        errors, warnings = len(report.errors), len(report.warnings)
        summary = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
        return rx.toast.error(summary) if errors else rx.toast.warning(summary)

    @rx.event
    @requires(Role.VIEWER)
    def set_issues_open(self, value: bool) -> None:
        self.issues_open = value

    @rx.event
    @requires(Role.VIEWER)
    def focus_node(self, node_id: str) -> None:
        """Select and centre one node (an issue or a step was clicked)."""
        if node_id and self._g().node(node_id):
            self.focus = {"ids": [node_id], "center": True, "n": self.focus.get("n", 0) + 1}
            self._select([node_id], [])

    @rx.event
    @requires(Role.VIEWER)
    def focus_issue(self, node_id: str, edge_id: str, field: str) -> EventSpec | None:
        """A problem clicked: select its node (or edge), show it in the side panel, focus its field."""
        if node_id and self._g().node(node_id):
            self.focus = {"ids": [node_id], "center": True, "n": self.focus.get("n", 0) + 1}
            self._select([node_id], [])
        elif edge_id and self._g().edge(edge_id):
            self.focus = {"ids": [], "edges": [edge_id], "center": False, "n": self.focus.get("n", 0) + 1}
            self._select([], [edge_id])
        else:
            if field.startswith(("inputs", "outputs")):
                self.panel_tab = "workflow"
                self._load_settings()
                return focus_control("workflow-" + field.split(".")[0])
            return None
        self.panel_tab = "node"
        control = control_of(field, edge=not node_id)
        return focus_control(control) if control else None

    def _clear_marks(self) -> None:
        self.node_issues, self.issues, self._report, self.validated = {}, [], (), False
        self.plan_phases, self.node_phases = [], {}

    # Layout, undo, clipboard

    @rx.event
    @requires(Role.EDITOR)
    def auto_layout(self) -> None:
        """Arrange the nodes left to right along their edges."""
        graph = self._g()
        positions = layout_positions([n["id"] for n in graph.nodes], graph.edges)
        self._commit(graph.move([{"id": k, **v} for k, v in positions.items()]))
        self._fit(everything=True)

    @rx.event
    @requires(Role.VIEWER)
    def fit_view(self) -> None:
        self._fit(everything=True)

    @rx.event
    @requires(Role.EDITOR)
    def undo(self) -> None:
        if self._undo:
            self._redo = (*self._redo, self._g())
            previous, self._undo = self._undo[-1], self._undo[:-1]
            self._replace_graph(previous)
            self._load_settings()

    @rx.event
    @requires(Role.EDITOR)
    def redo(self) -> None:
        if self._redo:
            self._undo = (*self._undo, self._g())
            following, self._redo = self._redo[-1], self._redo[:-1]
            self._replace_graph(following)
            self._load_settings()

    def _paste(self, fragment: dict[str, Any] | None, offset: float) -> None:
        if not fragment:
            return
        graph, new_ids = self._g().paste(fragment, offset)
        self._commit(graph)
        self.focus = {"ids": new_ids, "center": False, "n": self.focus.get("n", 0) + 1}
        self._select(new_ids, [])

    @rx.event
    @requires(Role.VIEWER)
    def copy(self) -> EventSpec | list[EventSpec] | None:
        fragment = self._g().fragment(self.selected_nodes)
        if fragment is None:
            return rx.toast.info("Select nodes to copy")
        self._clipboard, self._pastes = (fragment,), 0
        count = len(fragment["nodes"])
        # Also on the system clipboard, for pasting into another workflow or tab (engine/fragments.py).
        return [
            rx.set_clipboard(fragment_text(fragment)),
            rx.toast.info(f"Copied {count} node{'s' * (count != 1)}"),
        ]

    @rx.event
    @requires(Role.EDITOR)
    def paste(self) -> None:
        if self._clipboard:
            self._pastes += 1
            self._paste(self._clipboard[0], PASTE_OFFSET * self._pastes)

    @rx.event
    @requires(Role.EDITOR)
    def duplicate(self) -> None:
        self._paste(self._g().fragment(self.selected_nodes), PASTE_OFFSET)

    @rx.event
    @requires(Role.EDITOR)
    def delete_selection(self) -> None:
        self._commit(self._g().remove(self.selected_nodes, self.selected_edges))
        self._select([], [])

    # Import and export

    @rx.event
    @requires(Role.VIEWER)
    def set_import_open(self, value: bool) -> None:
        self.import_open, self.import_error = value, ""

    @rx.event
    @requires(Role.VIEWER)
    def set_import_text(self, value: str) -> None:
        self.import_text = value

    @rx.event
    @requires(Role.EDITOR)
    async def upload_definition(self, files: list[rx.UploadFile]) -> None:
        """Put an uploaded JSON or YAML file into the import box."""
        for file in files[:1]:
            data = await file.read()
            self.import_text = data.decode("utf-8", errors="replace")

    @rx.event
    @requires(Role.EDITOR)
    def import_definition(self) -> EventSpec | None:
        """Replace the graph with the pasted or uploaded definition (undoable)."""
        try:
            defn = parse_any(self.import_text)
        except DefinitionError as exc:
            self.import_error = user_message(exc)
            return None
        self._commit(WorkingGraph.from_definition(defn))
        self._drafts = {}
        self._clear_marks()
        self._load_settings()
        self._select([], [])
        self.import_open, self.import_error = False, ""
        self._fit()
        return rx.toast.success(f"Imported {len(defn.nodes)} nodes; save to keep them")

    def _export_text(self) -> str:
        try:
            defn = self._g().to_definition()
        except DefinitionError as exc:
            return f"# cannot export: {exc}"
        if self.export_format == "python":
            try:
                return to_dsl(defn)
            except FlowloomError as exc:  # a feature the DSL cannot write: say which, export nothing
                return f"# cannot export as Python: {user_message(exc)}"
        return to_yaml(defn) if self.export_format == "yaml" else to_json(defn)

    @rx.event
    @requires(Role.VIEWER)
    def set_export_open(self, value: bool) -> None:
        self.export_open = value
        if value:
            self.export_text = self._export_text()

    @rx.event
    @requires(Role.VIEWER)
    def set_export_format(self, value: str | list[str]) -> None:
        self.export_format = value if value in ("yaml", "python") else "json"
        self.export_text = self._export_text()

    @rx.event
    @requires(Role.VIEWER)
    def download_export(self) -> EventSpec:
        stem = self._g().defn.get("id") or "workflow"
        suffix = {"python": "py"}.get(self.export_format, self.export_format)
        return rx.download(data=self._export_text(), filename=f"{stem}.{suffix}")

    # Versions

    @rx.event
    @requires(Role.VIEWER)
    def set_versions_open(self, value: bool) -> EventSpec | None:
        self.versions_open = value
        if not value:
            return None
        workflow_id = self._workflow_uuid(shares.READ)
        try:
            with db.db_session() as session:
                found = workflows.list_versions(session, workflow_id) if workflow_id else []
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        self.versions = [
            VersionRow(
                v.version, v.note, v.nodes, time_ago(v.created_at), format_time(v.created_at), v.status
            )
            for v in found
        ]
        return None

    @rx.event
    @requires(Role.EDITOR)
    def restore_version(self, version: int) -> EventSpec:
        """Put a saved version on the canvas (undoable); saving makes it the newest version."""
        workflow_id = self._workflow_uuid(shares.READ)
        try:
            with db.db_session() as session:
                data = workflows.get_version(session, workflow_id, version) if workflow_id else None
            if data is None:
                return rx.toast.error(f"Version {version} no longer exists")
            graph = WorkingGraph.from_definition(parse_dict(data))
        except DefinitionError as exc:
            return rx.toast.error(f"Version {version} cannot be read: {user_message(exc)}")
        except DB_ERRORS as exc:
            return rx.toast.error(describe_db_error(exc))
        self._commit(graph)
        self._drafts = {}
        self._clear_marks()
        self._load_settings()
        self._select([], [])
        self.versions_open = False
        self._fit()
        return rx.toast.success(f"Restored v{version}; save to make it the newest version")

    # Workflow settings

    def _start_over(self) -> None:
        """A workflow was just opened: no validation marks, the Workflow tab shows its settings."""
        self._clear_marks()
        self.issues_open = False
        self._load_settings()

    def _load_settings(self) -> None:
        graph = self._g()
        self.inputs_text = json.dumps(graph.defn.get("inputs") or {}, indent=2)
        self.outputs_text = json.dumps(graph.defn.get("outputs") or {}, indent=2)
        self.settings_error = ""
        self.visit_limit_text = str(
            (graph.defn.get("policy") or {}).get("max_visits", WorkflowPolicy().max_visits)
        )
        self.visit_limit_error = ""

    @rx.event
    @requires(Role.EDITOR)
    def set_mode(self, value: str) -> None:
        if value in ("dag", "state_machine"):
            self._commit(self._g().replace(mode=value), canvas=False)
            self._refresh_form()  # a state's visit limit shows in state-machine mode only

    @rx.event
    @requires(Role.EDITOR)
    def set_visit_limit(self, text: str) -> None:
        """How often a run may enter any one state (policy.max_visits), typed in the Workflow tab."""
        self.visit_limit_text = text
        policy = dict(self._g().defn.get("policy") or {})
        try:
            policy["max_visits"] = int(text)
            WorkflowPolicy.model_validate(policy)
        except ValueError as exc:  # not a whole number, or below 1 (pydantic's error is a ValueError)
            errors = getattr(exc, "errors", None)
            self.visit_limit_error = errors()[0]["msg"] if callable(errors) else "enter a whole number"
            return
        self.visit_limit_error = ""
        self._commit(self._g().replace(policy=policy), edit="workflow:max_visits", canvas=False)

    @rx.event
    @requires(Role.EDITOR)
    def set_workflow_field(self, name: str, text: str) -> None:
        """The inputs schema or outputs map, typed as JSON in the Workflow tab."""
        if name == "inputs":
            self.inputs_text = text
        elif name == "outputs":
            self.outputs_text = text
        else:
            return
        try:
            value = json.loads(text or "{}")
        except json.JSONDecodeError as exc:
            self.settings_error = f"{name}: invalid JSON: {exc.msg} (line {exc.lineno})"
            return
        if not isinstance(value, dict):
            self.settings_error = f"{name}: must be a JSON object"
            return
        self.settings_error = ""
        self._commit(self._g().replace(**{name: value}), edit=f"workflow:{name}", canvas=False)

"""The editor's core: the open workflow's working graph, what the canvas shows, selection, undo stacks,
opening and saving.

`EditorCore` is the parent of the editor's states and holds no event handlers: `EditorState` (the
page), `EditorTools` (the toolbar) and `EditorRun` (runs) are its sub-states and share its vars.
The graph lives in backend-only vars; the browser gets the compact canvas lists, the selected
node's form and a few flags.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import reflex as rx

from app import db
from app.auth.guard import audit_who, caller_of
from app.pages.editor import notes_groups
from app.pages.editor.config_choices import field_choices
from app.pages.editor.graph import WorkingGraph, empty_definition
from app.pages.editor.inspector import (
    EdgeForm,
    behaviour_field_of,
    behaviour_fields,
    behaviour_issues,
    edge_form,
)
from app.pages.workspace_scope import current_workspace
from components.config_form import FormField, build_fields
from engine import shares, workflows
from engine.contract import get_node_type
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.definition import NodeSpec, WorkflowDefinition
from engine.errors import DefinitionError, user_message
from engine.ids import parse_id
from engine.parse import parse_dict
from engine.validate import validate

log = logging.getLogger(__name__)

UNDO_LIMIT = 100


def config_errors(node: dict[str, Any]) -> dict[str, str]:
    """Inline errors of one node's config (field name -> message; "" for the whole config)."""
    try:
        spec = NodeSpec.model_validate(node)
        report = validate(WorkflowDefinition(name="node", nodes=[spec]))
    except Exception as exc:  # a malformed node: say so on the form instead of failing the event
        return {"": str(exc)}
    errors: dict[str, str] = {}
    for issue in report.issues:
        if issue.node_id != node["id"] or not (issue.field or "").startswith("config"):
            continue
        parts = (issue.field or "").split(".")
        key = parts[1] if len(parts) > 1 else ""
        message = issue.message.removesuffix(f" ({node['type']})")
        errors.setdefault(key, message)
    return errors


class EditorCore(rx.State):
    """Graph, canvas, selection, undo history, opening and saving (no handlers: see its sub-states)."""

    wf_id: str = ""
    wf_name: str = ""
    version: int = 0
    loaded: bool = False
    load_error: str = ""
    dirty: bool = False
    saving: bool = False
    can_undo: bool = False
    can_redo: bool = False
    mode: str = "dag"
    # The caller may change the workflow (editor role): else the canvas and the panel are read-only.
    # Display only: every changing handler carries `requires(Role.EDITOR)`, which the guard enforces.
    can_edit: bool = False
    # "" for the caller's workspace's own workflow; "read" or "edit" when a share reaches it
    # (engine/shares.py): a read share opens read-only, and no shared workflow is run from here.
    share_permission: str = ""
    # The version history's Submit for review, Review and Publish: editors of the workflow's own
    # workspace only (engine/publishing.py refuses anyone else; a share never publishes).
    can_publish: bool = False

    canvas_nodes: list[dict[str, Any]] = []
    canvas_edges: list[dict[str, Any]] = []
    canvas_annotations: dict[str, Any] = {}  # sticky notes and groups (app/pages/editor/annotations.py)
    node_statuses: dict[str, str] = {}
    node_issues: dict[str, dict[str, str]] = {}
    node_phases: dict[str, int] = {}  # node id -> its phase in the last validated plan
    fit: dict[str, Any] = {}
    focus: dict[str, Any] = {}

    selected_nodes: list[str] = []
    selected_edges: list[str] = []
    sel_id: str = ""
    sel_type: str = ""
    sel_type_label: str = ""
    sel_description: str = ""
    sel_label: str = ""
    form_fields: list[FormField] = []
    form_error: str = ""
    sel_issues: list[str] = []
    behaviour: list[FormField] = []  # the selected node's retries, timeout, on-error, visit limit
    sel_edge: EdgeForm = EdgeForm()  # the one selected edge (id "" when none)
    panel_tab: str = "node"
    palette_query: str = ""

    _graph: WorkingGraph | None = None
    _saved: WorkingGraph | None = None
    _undo: tuple = ()
    _redo: tuple = ()
    _last_edit: str = ""
    _drafts: dict = {}
    _report: tuple = ()
    _version_id: str = ""
    _save_notice: str = ""

    @rx.var
    def is_current(self) -> bool:
        """Whether the loaded workflow is the one in the URL (not the last one this tab showed)."""
        return self.loaded and self.wf_id != "" and self.router.url.path.rstrip("/").endswith(self.wf_id)

    # Keeping the browser in step with the graph

    def _g(self) -> WorkingGraph:
        return self._graph if self._graph is not None else WorkingGraph(empty_definition(self.wf_name))

    def _sync_canvas(self) -> None:
        """Send the canvas the graph's nodes and edges."""
        graph = self._g()
        self.canvas_nodes = graph.canvas_nodes()
        self.canvas_edges = graph.canvas_edges()
        self.canvas_annotations = notes_groups.canvas_annotations(graph.defn)

    def _fit(self, everything: bool = False) -> None:
        """Ask the canvas to fit the view (a big graph opens readable unless `everything`)."""
        self.fit = {"n": self.fit.get("n", 0) + 1, "all": everything}

    def _sync_flags(self) -> None:
        graph = self._g()
        self.dirty = graph != self._saved
        self.can_undo = bool(self._undo)
        self.can_redo = bool(self._redo)
        self.mode = graph.mode

    def _commit(self, graph: WorkingGraph, *, edit: str = "", canvas: bool = True) -> None:
        """Make `graph` the working graph, undoably; edits with the same `edit` key share one undo step."""
        if graph is self._graph:
            return
        if not edit or edit != self._last_edit:
            self._undo = (*self._undo[-(UNDO_LIMIT - 1) :], self._g())
        self._last_edit = edit
        self._redo = ()
        self._graph = graph
        if canvas:
            self._sync_canvas()
        self._sync_flags()

    def _replace_graph(self, graph: WorkingGraph) -> None:
        """Show `graph` after undo or redo: typed drafts go; selected nodes that still exist stay selected."""
        self._graph = graph
        self._drafts = {}
        self._last_edit = ""
        self._sync_canvas()
        self._sync_flags()
        self._select([n for n in self.selected_nodes if graph.node(n)], [])

    def _select(self, node_ids: list[str], edge_ids: list[str]) -> None:
        self.selected_nodes, self.selected_edges = node_ids, edge_ids
        self._refresh_form()

    def _refresh_form(self) -> None:
        """The side panel's form for the one selected node (empty otherwise)."""
        node = self._g().node(self.selected_nodes[0]) if len(self.selected_nodes) == 1 else None
        node_type = get_node_type(node["type"]) if node else None
        one_edge = self.selected_edges[0] if len(self.selected_edges) == 1 and not self.selected_nodes else ""
        self.sel_edge = edge_form(self._g(), one_edge) if one_edge else EdgeForm()
        if node is None:
            self.sel_id = self.sel_type = self.sel_type_label = self.sel_description = self.sel_label = ""
            self.form_fields, self.form_error, self.sel_issues, self.behaviour = [], "", [], []
            return
        errors = config_errors(node)
        schema = node_type.config_model.model_json_schema() if node_type else {}
        drafts = {k[1]: v for k, v in self._drafts.items() if k[0] == node["id"] and not k[1].startswith("@")}
        behaviour_drafts = {
            k[1][1:]: v for k, v in self._drafts.items() if k[0] == node["id"] and k[1][:1] == "@"
        }
        shown_issues = behaviour_issues(self._report, node["id"])
        self.behaviour = behaviour_fields(self._g(), node, behaviour_drafts, shown_issues)
        errors.update({k: v["error"] for k, v in drafts.items() if v.get("error")})
        self.sel_id, self.sel_type, self.sel_label = node["id"], node["type"], node.get("label", "")
        self.sel_type_label = node_type.label if node_type else "unknown type"
        self.sel_description = node_type.description if node_type else ""
        shown = {k: v.get("pairs", v["text"]) for k, v in drafts.items()}
        config = node.get("config") or {}
        # What choice fields offer: the caller's workspace's (none in a workflow another one shares).
        choices = (
            {}
            if self.share_permission
            else field_choices(schema, config, workspace_id=current_workspace(self), open_workflow=self.wf_id)
        )
        self.form_fields = build_fields(schema, config, errors, shown, choices)
        self.form_error = errors.get("", "")
        self.sel_issues = [
            i["message"]
            for i in self._report
            if i.get("node_id") == node["id"]
            and not (i.get("field") or "").startswith("config")
            and behaviour_field_of(i.get("field") or "") is None
        ]

    # Loading and saving

    def _caller_id(self) -> str | None:
        caller = caller_of(self)
        return caller.user_id if caller else None

    def _workflow_uuid(self, need: str = shares.OWN) -> uuid.UUID | None:
        """The id of the open workflow when it is in the caller's current workspace, else None: a
        workflow of another workspace does not exist for this tab, whatever its URL or state says;
        with `need` shares.READ or shares.EDIT, also when a share with the caller allows that."""
        workflow_id = workflows.parse_id(self.wf_id)
        if workflow_id is None:
            return None
        with db.db_session() as session:
            found = workflows.get_workflow(
                session,
                workflow_id,
                workspace_id=current_workspace(self),
                user_id=self._caller_id(),
                need=need,
            )
        return workflow_id if found is not None else None

    def _open_workflow(self) -> bool:
        """Open the workflow named in the URL with its latest saved definition; False when it cannot be."""
        self.wf_id = self.router.url.path.rstrip("/").rsplit("/", 1)[-1]
        self.loaded, self.load_error = False, ""
        self._undo, self._redo, self._drafts, self._report, self._last_edit = (), (), {}, (), ""
        self.node_statuses, self.node_issues, self.focus, self.node_phases = {}, {}, {}, {}
        self.selected_nodes, self.selected_edges, self.panel_tab = [], [], "node"
        workflow_id = workflows.parse_id(self.wf_id)
        workspace_id, user_id = current_workspace(self), self._caller_id()
        try:
            with db.db_session() as session:
                found = (
                    workflows.load_workflow(
                        session, workflow_id, workspace_id=workspace_id, user_id=user_id, need=shares.READ
                    )
                    if workflow_id
                    else None
                )
                row = workflows.get_workflow(session, workflow_id) if found and workflow_id else None
                have = (
                    shares.permission_of(session, row, workspace_id=workspace_id, user_id=user_id)
                    if row
                    else None
                )
        except DB_ERRORS as exc:
            log.warning("loading workflow %s failed: %s", self.wf_id, exc)
            self.load_error = describe_db_error(exc)
            return False
        if found is None:
            self.load_error = "This workflow does not exist (it may have been deleted)."
            return False
        self.wf_name, self.version, self._version_id = found.name, found.version, found.version_id or ""
        self.share_permission = "" if have in (None, shares.OWN) else have
        try:
            graph = WorkingGraph.from_definition(parse_dict(found.definition or empty_definition(found.name)))
        except DefinitionError as exc:
            self.load_error = f"The saved definition cannot be read: {user_message(exc)}"
            return False
        self._saved = graph
        self._graph = graph
        self._sync_canvas()
        self._sync_flags()
        self._refresh_form()
        self._fit()
        self.loaded = True
        return True

    def _author(self) -> uuid.UUID | None:
        """The signed-in user's id: a version's author, who may not approve it (engine/publishing.py)."""
        caller = caller_of(self)
        return parse_id(caller.user_id) if caller else None

    def _save(self, note: str = "") -> str | None:
        """Store the working graph as a new version; the error message when it cannot be."""
        try:
            workflow_id = self._workflow_uuid(shares.EDIT)  # its workspace's, or an edit share
        except DB_ERRORS as exc:
            return describe_db_error(exc)
        if workflow_id is None:
            return "no workflow is open, or it is shared with you to read only"
        try:
            defn = self._g().to_definition()
        except DefinitionError as exc:
            return f"cannot save: {user_message(exc)}"
        data = {**defn.to_dict(), "name": self.wf_name or defn.name}
        opened = self.version
        try:
            with db.db_session() as session:
                self.version, self._version_id = workflows.save_version(
                    session, workflow_id, data, note, who=audit_who(self), created_by=self._author()
                )
        except LookupError as exc:
            return str(exc)
        except DB_ERRORS as exc:
            return describe_db_error(exc)
        self._saved = self._g()
        self._sync_flags()
        # Someone else saved in between: nothing is lost (every save is a version), but say so.
        others = self.version - opened - 1
        self._save_notice = (
            f"{others} other save{'s' * (others != 1)} came in after you opened v{opened}; "
            "see the version history"
            if others > 0
            else ""
        )
        return None

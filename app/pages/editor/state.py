"""State of the workflow editor page: opening the workflow, saving, what the canvas and the config form send.

EditorState is the page's state (its on_load is `load`). It and its two siblings are sub-states of
`EditorCore`, which holds the working graph they share; where an event concerns another part, the
handler reaches that part explicitly with `get_state`: opening a workflow starts the toolbar
(`EditorTools`) and the run view (`EditorRun`) over, a new selection shows its steps in the run.
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.event import EventSpec

from app import db
from app.auth.guard import caller_of, requires
from app.auth.policy import Role, allows
from app.pages.editor import notes_groups
from app.pages.editor.config_choices import pinned_versions
from app.pages.editor.core_state import EditorCore
from app.pages.editor.diff_state import EditorDiff
from app.pages.editor.graph import EditRefused
from app.pages.editor.limit_state import EditorLimit
from app.pages.editor.run_state import EditorRun
from app.pages.editor.tools_state import EditorTools
from app.pages.workspace_scope import current_workspace
from components.config_form import UNSET, InputError, pairs_value, parse_input, resolve
from engine import shares, workflows
from engine.contract import get_node_type
from engine.db_errors import DB_ERRORS
from engine.errors import user_message


class EditorState(EditorCore):
    """The workflow editor page."""

    # Opening and saving

    @rx.event
    @requires(Role.VIEWER)
    async def load(self) -> None:
        """Open the workflow named in the URL, then start the toolbar and the run view over for it.

        A tab that comes back to the workflow it has open keeps its work: Reflex runs on_load again
        when the page rehydrates after a dropped connection (and on a reload), and reopening then
        threw away the unsaved graph, so the next Save stored the old one.
        """
        caller = caller_of(self)
        self.can_edit = caller is not None and allows(caller.role, Role.EDITOR)
        self.can_publish = False
        if self._still_open():
            self._sync_canvas()  # the browser's canvas was rebuilt from scratch
            self.can_edit = self.can_edit and self.share_permission != shares.READ
            self.can_publish = self.can_edit and not self.share_permission
            return
        if not self._open_workflow():
            return
        self.can_edit = self.can_edit and self.share_permission != shares.READ  # a read share: read-only
        self.can_publish = self.can_edit and not self.share_permission  # a share never publishes
        tools = await self.get_state(EditorTools)
        tools._start_over()
        runs = await self.get_state(EditorRun)
        runs._start_over()
        diff = await self.get_state(EditorDiff)
        diff._start_over()  # a diff shown before is not shown over the reopened workflow
        limit = await self.get_state(EditorLimit)
        limit._load_run_limit()  # the Workflow tab's "Runs at once" (not part of a version)

    def _still_open(self) -> bool:
        """Whether this tab already has the URL's workflow open with unsaved changes, or with the
        version that is still its latest (nothing to reopen)."""
        url_id = self.router.url.path.rstrip("/").rsplit("/", 1)[-1]
        if not (self.loaded and self._graph is not None and url_id == self.wf_id):
            return False
        if self.dirty:
            return True
        try:
            workflow_id = self._workflow_uuid(shares.READ)
            with db.db_session() as session:
                found = workflows.load_workflow(session, workflow_id) if workflow_id else None
        except DB_ERRORS:
            return False  # reopening says what is wrong
        return found is not None and found.version == self.version

    @rx.event
    @requires(Role.EDITOR)
    def save(self) -> EventSpec:
        """Save the graph as the workflow's next version."""
        if not self.dirty and self.version:
            return rx.toast.info(f"Nothing changed since v{self.version}")
        problem = self._save("saved in the editor")
        if problem:
            return rx.toast.error(problem)
        if self._save_notice:
            return rx.toast.warning(f"Saved as v{self.version}. {self._save_notice}")
        return rx.toast.success(f"Saved as v{self.version}")

    # The canvas

    @rx.event
    @requires(Role.EDITOR)
    def add_node(self, node_type: str, x: float, y: float) -> EventSpec | None:
        """A node dropped from the palette at flow position (x, y)."""
        try:
            graph, node_id = self._g().add_node(node_type, x, y)
        except EditRefused as exc:
            return rx.toast.error(user_message(exc))
        self._commit(graph)
        self.focus = {"ids": [node_id], "center": False, "n": self.focus.get("n", 0) + 1}
        self._select([node_id], [])
        self.panel_tab = "node"
        return None

    @rx.event
    @requires(Role.EDITOR)
    def move_nodes(self, moves: list[dict[str, Any]]) -> None:
        """Nodes dragged to new places (sent once, at drag stop)."""
        # A group moved by the arrow keys takes its nodes along: only then must the canvas be told.
        self._commit(self._g().move(moves), canvas=notes_groups.moves_members(self._g().defn, moves))

    @rx.event
    @requires(Role.EDITOR)
    def connect(self, source: str, source_port: str, target: str, target_port: str) -> EventSpec | None:
        """A connection drawn between two ports; refused ones say why and are not added."""
        try:
            graph, _ = self._g().connect(source, source_port or "out", target, target_port or "in")
        except EditRefused as exc:
            self.canvas_edges = self._g().canvas_edges()  # drop any edge the browser drew on its own
            return rx.toast.error(f"Connection refused: {user_message(exc)}", id="connection-refused")
        self._commit(graph)
        return None

    @rx.event
    @requires(Role.VIEWER)
    async def select(self, node_ids: list[str], edge_ids: list[str]) -> None:
        """The canvas selection changed (the run view shows the selected node's steps)."""
        self._select(list(node_ids), list(edge_ids))
        runs = await self.get_state(EditorRun)
        runs._refresh_steps()
        if (len(node_ids) == 1 or (len(edge_ids) == 1 and not node_ids)) and self.panel_tab == "workflow":
            self.panel_tab = "node"

    @rx.event
    @requires(Role.EDITOR)
    def delete_items(self, node_ids: list[str], edge_ids: list[str]) -> None:
        """Nodes and edges deleted on the canvas (Delete or Backspace)."""
        self._commit(self._g().remove(node_ids, edge_ids))
        self._select([n for n in self.selected_nodes if n not in node_ids], [])

    @rx.event
    @requires(Role.VIEWER)
    def shortcut(self, action: str) -> EventSpec | list | None:
        """A keyboard shortcut pressed over the page (not inside a text field)."""
        handlers = {
            "undo": EditorTools.undo,
            "redo": EditorTools.redo,
            "copy": EditorTools.copy,
            "paste": EditorTools.paste,
            "duplicate": EditorTools.duplicate,
            "save": EditorState.save,
        }
        return handlers.get(action)

    # The side panel

    @rx.event
    @requires(Role.VIEWER)
    async def set_panel_tab(self, tab: str) -> None:
        self.panel_tab = tab
        if tab == "workflow":
            tools = await self.get_state(EditorTools)
            tools._load_settings()

    @rx.event
    @requires(Role.VIEWER)
    def set_palette_query(self, text: str) -> None:
        self.palette_query = text

    def _selected(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The selected node and its config's JSON schema."""
        node = self._g().node(self.sel_id) if self.sel_id else None
        node_type = get_node_type(node["type"]) if node else None
        if node is None or node_type is None:
            return None
        return node, node_type.config_model.model_json_schema()

    def _set_config(
        self, node: dict[str, Any], name: str, value: Any, also: dict[str, Any] | None = None
    ) -> None:
        """Set config field `name` (and the fields of `also`, in the same undo step)."""
        also = also or {}
        config = {k: v for k, v in (node.get("config") or {}).items() if k != name and k not in also}
        if value is not UNSET:
            config[name] = value
        config.update(also)
        before = self._g().canvas_node(node["id"])
        self._commit(
            self._g().update_node(node["id"], config=config), edit=f"{node['id']}:{name}", canvas=False
        )
        if self._g().canvas_node(node["id"]) != before:  # approval actions and condition branches are ports
            self._sync_canvas()

    @rx.event
    @requires(Role.EDITOR)
    def set_field(self, name: str, text: str) -> None:
        """A config field typed into."""
        found = self._selected()
        if found is None:
            return
        node, schema = found
        prop = resolve(schema.get("properties", {}).get(name, {}), schema.get("$defs", {}))
        key = (node["id"], name)
        # The field keeps showing what was typed (not a reformatted value) until the graph is replaced.
        try:
            value = parse_input(prop, text)
        except InputError as exc:
            self._drafts = {**self._drafts, key: {"text": text, "error": str(exc)}}
        else:
            # A workflow picked for a sub-workflow node: its version is pinned at that one's newest.
            pinned = (
                {} if self.share_permission else pinned_versions(schema, name, value, current_workspace(self))
            )
            drafts = {k: v for k, v in self._drafts.items() if k[0] != node["id"] or k[1] not in pinned}
            self._drafts = {**drafts, key: {"text": text, "error": ""}}
            self._set_config(node, name, value, pinned)
        self._refresh_form()

    @rx.event
    @requires(Role.EDITOR)
    def set_flag(self, name: str, value: bool) -> None:
        """A boolean config field switched."""
        found = self._selected()
        if found is not None:
            self._set_config(found[0], name, bool(value))
            self._refresh_form()

    def _edit_pairs(self, name: str, change) -> None:
        found = self._selected()
        if found is None:
            return
        node = found[0]
        key = (node["id"], name)
        draft = self._drafts.get(key)
        current = (node.get("config") or {}).get(name) or {}
        pairs = [list(p) for p in draft["pairs"]] if draft else [[str(k), str(v)] for k, v in current.items()]
        change(pairs)
        self._drafts = {**self._drafts, key: {"text": "", "pairs": pairs}}
        value = pairs_value(pairs)
        self._set_config(node, name, value if value or pairs else UNSET)
        self._refresh_form()

    @rx.event
    @requires(Role.EDITOR)
    def set_pair(self, name: str, index: int, part: int, text: str) -> None:
        def change(pairs: list[list[str]]) -> None:
            if 0 <= index < len(pairs) and part in (0, 1):
                pairs[index][part] = text

        self._edit_pairs(name, change)

    @rx.event
    @requires(Role.EDITOR)
    def add_pair(self, name: str) -> None:
        self._edit_pairs(name, lambda pairs: pairs.append(["", ""]))

    @rx.event
    @requires(Role.EDITOR)
    def remove_pair(self, name: str, index: int) -> None:
        self._edit_pairs(name, lambda pairs: pairs.pop(index) if 0 <= index < len(pairs) else None)

    @rx.event
    @requires(Role.EDITOR)
    def set_node_label(self, text: str) -> None:
        if self.sel_id:
            self._commit(self._g().update_node(self.sel_id, label=text), edit=f"{self.sel_id}:label")
            self.sel_label = text

    @rx.event
    @requires(Role.EDITOR)
    def rename_node(self, new_id: str) -> EventSpec | None:
        """Give the selected node a new id (its edges follow)."""
        old = self.sel_id
        new_id = new_id.strip()
        if not old or new_id == old:
            return None
        try:
            graph = self._g().rename_node(old, new_id)
        except EditRefused as exc:
            return rx.toast.error(f"Cannot rename: {user_message(exc)}")
        self._commit(graph)
        self._drafts = {(new_id if k[0] == old else k[0], k[1]): v for k, v in self._drafts.items()}
        self.focus = {"ids": [new_id], "center": False, "n": self.focus.get("n", 0) + 1}
        self._select([new_id], [])
        return None

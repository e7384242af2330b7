"""What the side panel's edge form and node behaviour form send: an edge's condition, label and
error output; a node's retries, timeout, on-error and visit limit.

A sub-state of `EditorCore` (it edits the shared working graph); every check is the engine's
(app/pages/editor/inspector.py says which).
"""

from __future__ import annotations

import reflex as rx
from reflex.event import EventSpec

from app.auth.guard import requires
from app.auth.policy import Role
from app.pages.editor.core_state import EditorCore
from app.pages.editor.graph import EditRefused
from app.pages.editor.inspector import apply_behaviour, complete, condition_value, edge_form
from components.config_form import InputError
from engine.errors import user_message


class EditorInspector(EditorCore):
    """The side panel's edge and node-behaviour forms."""

    # The selected edge

    def _edge_id(self) -> str:
        edge_id = self.sel_edge.id
        return edge_id if edge_id and self._g().edge(edge_id) is not None else ""

    @rx.event
    @requires(Role.EDITOR)
    def set_edge_condition(self, text: str) -> None:
        """The condition typed: stored as typed (the validator flags a broken one), checked at once."""
        edge_id = self._edge_id()
        if not edge_id:
            return
        graph = self._g().update_edge(edge_id, condition=condition_value(text))
        self._commit(graph, edit=f"edge:{edge_id}:condition")
        self.sel_edge = edge_form(graph, edge_id)

    @rx.event
    @requires(Role.EDITOR)
    def use_suggestion(self, path: str) -> None:
        """A suggested path clicked: it replaces the name being typed at the end of the condition."""
        edge_id = self._edge_id()
        if edge_id:
            text = complete(self.sel_edge.condition, path)
            graph = self._g().update_edge(edge_id, condition=condition_value(text))
            self._commit(graph, edit=f"edge:{edge_id}:condition")
            self.sel_edge = edge_form(graph, edge_id)

    @rx.event
    @requires(Role.EDITOR)
    def set_edge_label(self, text: str) -> None:
        edge_id = self._edge_id()
        if edge_id:
            graph = self._g().update_edge(edge_id, label=text)
            self._commit(graph, edit=f"edge:{edge_id}:label")
            self.sel_edge = edge_form(graph, edge_id)

    @rx.event
    @requires(Role.EDITOR)
    def set_edge_error_output(self, on: bool) -> EventSpec | None:
        """The edge leaves its source's error output (taken when the source fails), or its regular one."""
        edge_id = self._edge_id()
        if not edge_id:
            return None
        try:
            graph = self._g().set_error_output(edge_id, bool(on))
        except EditRefused as exc:
            self.sel_edge = edge_form(self._g(), edge_id)
            return rx.toast.error(f"Cannot move the edge: {user_message(exc)}")
        self._commit(graph)
        self.sel_edge = edge_form(graph, edge_id)
        return None

    # The selected node's behaviour

    @rx.event
    @requires(Role.EDITOR)
    def set_behaviour(self, name: str, text: str) -> None:
        """A behaviour field typed into or chosen: stored when the definition model allows it."""
        node = self._g().node(self.sel_id) if self.sel_id else None
        if node is None:
            return
        key = (node["id"], f"@{name}")
        try:
            changes = apply_behaviour(node, name, str(text))
        except InputError as exc:
            self._drafts = {**self._drafts, key: {"text": text, "error": str(exc)}}
        else:
            self._drafts = {**self._drafts, key: {"text": text, "error": ""}}
            self._commit(
                self._g().update_node(node["id"], **changes), edit=f"{node['id']}:@{name}", canvas=False
            )
        self._refresh_form()

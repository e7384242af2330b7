"""The editor's sticky notes and groups: what the canvas sends about them (add, group, edit, ungroup).

A sub-state of `EditorCore`: every change is an undoable edit of the working graph (the notes and
groups live in the definition's `annotations`, app/pages/editor/notes_groups.py), saved with it.
Moving and deleting them goes through the canvas's ordinary move and delete events.
"""

from __future__ import annotations

from typing import Any

import reflex as rx
from reflex.event import EventSpec

from app.auth.guard import requires
from app.auth.policy import Role
from app.pages.editor import notes_groups
from app.pages.editor.core_state import EditorCore
from app.pages.editor.graph import WorkingGraph


class EditorNotes(EditorCore):
    """Sticky notes and groups on the canvas."""

    @rx.event
    @requires(Role.EDITOR)
    def annotate(self, action: str, canvas_id: str, data: dict[str, Any]) -> EventSpec | None:
        """add_note {x, y}; group {nodes, x, y, width, height}; update {text | title | color | x, y,
        width, height}; ungroup (the group goes, its nodes stay)."""
        defn = self._g().defn
        data = data if isinstance(data, dict) else {}
        new_id, edit = "", ""
        try:
            if action == "add_note":
                defn, new_id = notes_groups.add_note(defn, float(data.get("x", 0)), float(data.get("y", 0)))
            elif action == "group":
                defn, new_id = notes_groups.add_group(defn, [str(n) for n in data.get("nodes") or []], data)
            elif action == "update" and notes_groups.is_annotation(canvas_id):
                defn = notes_groups.update(defn, canvas_id, data)
                typed = [k for k in ("text", "title", "color") if k in data]
                edit = f"{canvas_id}:{typed[0]}" if typed else ""
            elif action == "ungroup" and canvas_id.startswith(notes_groups.GROUP_PREFIX):
                defn = notes_groups.remove(defn, [canvas_id])
            else:
                return None
        except (ValueError, TypeError, KeyError) as exc:
            return rx.toast.error(str(exc) or "That change cannot be made")
        if defn == self._g().defn:
            return None
        self._commit(WorkingGraph(defn), edit=edit)
        if new_id:
            self.focus = {"ids": [new_id], "center": False, "n": self.focus.get("n", 0) + 1}
            self._select([new_id], [])
        elif action == "ungroup":
            self._select([n for n in self.selected_nodes if n != canvas_id], [])
        return None

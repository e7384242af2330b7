"""The editor's version diff: pick two saved versions, see what changed highlighted on the canvas
(added, removed, changed, moved) with the list of changed fields beside it.

A sub-state of `EditorCore`. The diff comes from `engine.version_diff` (credential-like values
hidden); the canvas draws the newer version plus what the older one had and the newer lacks, read
only, until the diff is closed. The working graph is never touched.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import reflex as rx
from reflex.event import EventSpec

from app import db
from app.auth.guard import requires
from app.auth.policy import Role
from app.pages.editor import notes_groups
from app.pages.editor.core_state import EditorCore
from app.pages.editor.graph import WorkingGraph
from engine import shares, workflows
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import DefinitionError, user_message
from engine.parse import parse_dict
from engine.version_diff import FieldChange, ItemChange, diff_definitions

log = logging.getLogger(__name__)
_VALUE_CHARS = 80


@dataclass
class DiffRow:
    """One changed node, edge, note, group, or the workflow's own fields, as the diff list shows it."""

    item_id: str  # the canvas id to focus ("" for workflow fields)
    label: str
    kind: str  # added | removed | changed | moved
    what: str  # node type, "edge", "note", "group" or "workflow"
    fields: list[str] = field(default_factory=list)


def _value(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


def field_line(change: FieldChange) -> str:
    """`path: before → after` with long values cut short."""
    return f"{change.path}: {_value(change.before)} → {_value(change.after)}"


def _row(change: ItemChange, canvas_id: str) -> DiffRow:
    label = f"{change.id} ({change.summary})" if change.summary else change.id
    return DiffRow(canvas_id, label, change.kind, change.type, [field_line(f) for f in change.fields])


class EditorDiff(EditorCore):
    """Comparing two saved versions."""

    diff_open: bool = False
    diff_choices: list[str] = []
    diff_from: str = ""
    diff_to: str = ""
    diff_error: str = ""
    diff_workflow: str = ""  # the workflow the diff is of ("" when none is shown)
    canvas_diff: dict[str, Any] = {}
    diff_rows: list[DiffRow] = []
    diff_title: str = ""
    diff_counts: str = ""

    @rx.event
    @requires(Role.VIEWER)
    def set_diff_open(self, value: bool) -> EventSpec | None:
        """Open the picker with the saved versions (the two newest chosen)."""
        self.diff_open, self.diff_error = value, ""
        if not value:
            return None
        workflow_id = self._workflow_uuid(shares.READ)
        try:
            with db.db_session() as session:
                found = workflows.list_versions(session, workflow_id, 500) if workflow_id else []
        except DB_ERRORS as exc:
            self.diff_open = False
            return rx.toast.error(describe_db_error(exc))
        self.diff_choices = [str(v.version) for v in found]
        if len(found) < 2:
            self.diff_error = "Save at least two versions to compare them."
        self.diff_to = self.diff_choices[0] if found else ""
        self.diff_from = self.diff_choices[1] if len(found) > 1 else self.diff_to
        return None

    @rx.event
    @requires(Role.VIEWER)
    def set_diff_from(self, value: str) -> None:
        self.diff_from = value

    @rx.event
    @requires(Role.VIEWER)
    def set_diff_to(self, value: str) -> None:
        self.diff_to = value

    @rx.event
    @requires(Role.VIEWER)
    def show_diff(self) -> EventSpec | None:
        """Compare the chosen versions on the canvas."""
        try:
            before_no, after_no = int(self.diff_from), int(self.diff_to)
        except ValueError:
            self.diff_error = "Choose two versions."
            return None
        self._compare(before_no, after_no)
        return None

    def _compare(self, before_no: int, after_no: int) -> bool:
        """Draw the diff of two saved versions on the canvas; False (with `diff_error`) when it cannot."""
        workflow_id = self._workflow_uuid(shares.READ)
        try:
            with db.db_session() as session:
                before = workflows.get_version(session, workflow_id, before_no) if workflow_id else None
                after = workflows.get_version(session, workflow_id, after_no) if workflow_id else None
            if before is None or after is None:
                self.diff_error = f"Version {before_no if before is None else after_no} no longer exists."
                return False
            old, new = parse_dict(before), parse_dict(after)
        except DefinitionError as exc:
            self.diff_error = f"A version cannot be read: {user_message(exc)}"
            return False
        except DB_ERRORS as exc:
            self.diff_error = describe_db_error(exc)
            return False
        diff = diff_definitions(old, new)
        annotation_marks = {
            (notes_groups.NOTE_PREFIX if c.type == "note" else notes_groups.GROUP_PREFIX) + c.id: c.kind
            for c in diff.annotations
        }
        self.canvas_diff = _canvas_diff(
            old.to_dict(), new.to_dict(), diff.node_marks(), diff.edge_marks(), annotation_marks
        )
        rows = [_row(c, c.id) for c in diff.nodes] + [_row(c, c.id) for c in diff.edges]
        rows += [
            _row(c, (notes_groups.NOTE_PREFIX if c.type == "note" else notes_groups.GROUP_PREFIX) + c.id)
            for c in diff.annotations
        ]
        if diff.workflow:
            rows.append(
                DiffRow(
                    "", "workflow settings", "changed", "workflow", [field_line(f) for f in diff.workflow]
                )
            )
        self.diff_rows = rows
        self.diff_title = f"v{before_no} → v{after_no}"
        marks = [c.kind for c in (*diff.nodes, *diff.edges, *diff.annotations)]
        counts = [f"{marks.count(k)} {k}" for k in ("added", "removed", "changed", "moved") if marks.count(k)]
        self.diff_counts = (
            ", ".join(counts) if counts else ("no changes" if diff.empty else "settings changed")
        )
        self.diff_workflow = self.wf_id
        self.diff_open, self.diff_error = False, ""
        self._fit(everything=True)
        return True

    def _start_over(self) -> None:
        """A workflow was just opened: no diff on its canvas."""
        self.canvas_diff, self.diff_rows, self.diff_workflow, self.diff_open = {}, [], "", False

    @rx.event
    @requires(Role.VIEWER)
    def close_diff(self) -> None:
        """Back to the working graph."""
        self.canvas_diff, self.diff_rows, self.diff_workflow = {}, [], ""
        self._sync_canvas()  # the canvas takes the graph's positions again
        self._fit(everything=True)

    @rx.event
    @requires(Role.VIEWER)
    def focus_diff_item(self, canvas_id: str) -> None:
        if canvas_id:
            self.focus = {"ids": [canvas_id], "center": True, "n": self.focus.get("n", 0) + 1}


def _canvas_diff(
    old: dict[str, Any],
    new: dict[str, Any],
    node_marks: dict[str, str],
    edge_marks: dict[str, str],
    annotation_marks: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What the canvas draws for a diff: the newer graph with its marks, plus the nodes, edges, notes
    and groups only the older one had (marked removed, where they were)."""
    newer, older = WorkingGraph(new), WorkingGraph(old)
    new_ids = {n["id"] for n in newer.nodes}
    nodes = [{**n, "d": node_marks[n["id"]]} if n["id"] in node_marks else n for n in newer.canvas_nodes()]
    nodes += [{**n, "d": "removed"} for n in older.canvas_nodes() if n["id"] not in new_ids]
    new_edges = {e["id"] for e in newer.edges}
    edges = [{**e, "d": edge_marks[e["id"]]} if e["id"] in edge_marks else e for e in newer.canvas_edges()]
    edges += [{**e, "d": "removed"} for e in older.canvas_edges() if e["id"] not in new_edges]
    marks = annotation_marks or {}
    newer_notes, older_notes = notes_groups.canvas_annotations(new), notes_groups.canvas_annotations(old)
    annotations: dict[str, list[dict[str, Any]]] = {}
    for kind in ("notes", "groups"):
        kept = {a["id"] for a in newer_notes[kind]}
        annotations[kind] = [{**a, "d": marks[a["id"]]} if a["id"] in marks else a for a in newer_notes[kind]]
        annotations[kind] += [{**a, "d": "removed"} for a in older_notes[kind] if a["id"] not in kept]
    return {"nodes": nodes, "edges": edges, "annotations": annotations}

"""The editor's snippets and pasted fragments: save the selected nodes (and the edges between them)
as a named snippet, insert one with fresh node ids, paste nodes copied in another workflow or tab.

A sub-state of `EditorCore`. Stored snippets live in PostgreSQL (engine/snippets.py); pasted
clipboard text is checked by engine/fragments.py before anything is added; inserting is an
undoable edit of the working graph like a paste. Snippets are the caller's current workspace's
(app.pages.workspace_scope): another workspace's snippet id inserts and deletes nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import reflex as rx
from reflex.event import EventSpec

from app import db
from app.auth.guard import audit_who, caller_of, requires
from app.auth.policy import Role
from app.pages.editor.core_state import EditorCore
from app.pages.editor.graph import PASTE_OFFSET
from app.pages.formatting import time_ago
from app.pages.workspace_scope import current_workspace
from engine import audit, snippets
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import DefinitionError, user_message
from engine.fragments import parse_fragment_text

log = logging.getLogger(__name__)


@dataclass
class SnippetRow:
    id: str
    name: str
    nodes: int
    shared: bool
    mine: bool
    created: str


class EditorSnippets(EditorCore):
    """Snippets and pasting fragments."""

    snippets_open: bool = False
    snippet_rows: list[SnippetRow] = []
    snippet_name: str = ""
    snippet_shared: bool = False
    snippet_error: str = ""
    fragment_text: str = ""
    fragment_error: str = ""

    def _user_id(self) -> uuid.UUID | None:
        caller = caller_of(self)
        try:
            return uuid.UUID(caller.user_id) if caller else None
        except ValueError:
            return None

    def _reload(self) -> None:
        user_id = self._user_id()
        with db.db_session() as session:
            found = (
                snippets.list_snippets(session, user_id, workspace_id=current_workspace(self))
                if user_id
                else []
            )
        self.snippet_rows = [
            SnippetRow(s.id, s.name, s.nodes, s.shared, s.mine, time_ago(s.created_at)) for s in found
        ]

    @rx.event
    @requires(Role.EDITOR)
    def set_snippets_open(self, value: bool) -> EventSpec | None:
        self.snippets_open, self.snippet_error, self.fragment_error = value, "", ""
        if not value:
            return None
        try:
            self._reload()
        except DB_ERRORS as exc:
            self.snippets_open = False
            return rx.toast.error(describe_db_error(exc))
        return None

    @rx.event
    @requires(Role.EDITOR)
    def set_snippet_name(self, value: str) -> None:
        self.snippet_name = value

    @rx.event
    @requires(Role.EDITOR)
    def set_snippet_shared(self, value: bool) -> None:
        self.snippet_shared = bool(value)

    @rx.event
    @requires(Role.EDITOR)
    def set_fragment_text(self, value: str) -> None:
        self.fragment_text = value

    @rx.event
    @requires(Role.EDITOR)
    def save_snippet(self) -> EventSpec | None:
        """Save the selected nodes and the edges between them under the typed name."""
        fragment = self._g().fragment(self.selected_nodes)
        if fragment is None:
            self.snippet_error = "Select the nodes to save first."
            return None
        user_id = self._user_id()
        if user_id is None:
            self.snippet_error = "Sign in again to save snippets."
            return None
        try:
            with audit.acting_as(audit_who(self)), db.db_session() as session:
                snippets.save_snippet(
                    session,
                    name=self.snippet_name,
                    fragment=fragment,
                    owner_id=user_id,
                    shared=self.snippet_shared,
                    workspace_id=current_workspace(self),
                )
            self._reload()
        except DefinitionError as exc:
            self.snippet_error = user_message(exc)
            return None
        except DB_ERRORS as exc:
            self.snippet_error = describe_db_error(exc)
            return None
        name, count = self.snippet_name.strip(), len(fragment["nodes"])
        self.snippet_name, self.snippet_error = "", ""
        return rx.toast.success(f'Saved {count} node{"s" * (count != 1)} as "{name}"')

    def _insert(self, fragment: dict, what: str) -> EventSpec:
        graph, new_ids = self._g().paste(fragment, PASTE_OFFSET)
        self._commit(graph)
        self.focus = {"ids": new_ids, "center": True, "n": self.focus.get("n", 0) + 1}
        self._select(new_ids, [])
        count = len(new_ids)
        return rx.toast.success(f"{what}: {count} node{'s' * (count != 1)} added")

    @rx.event
    @requires(Role.EDITOR)
    def insert_snippet(self, snippet_id: str) -> EventSpec | None:
        """Add a copy of the snippet's nodes and edges, with fresh ids (undoable)."""
        user_id = self._user_id()
        try:
            with db.db_session() as session:
                fragment = (
                    snippets.get_fragment(
                        session, uuid.UUID(snippet_id), user_id, workspace_id=current_workspace(self)
                    )
                    if user_id
                    else None
                )
        except ValueError:
            fragment = None
        except DefinitionError as exc:
            self.snippet_error = f"This snippet cannot be inserted: {user_message(exc)}"
            return None
        except DB_ERRORS as exc:
            self.snippet_error = describe_db_error(exc)
            return None
        if fragment is None:
            self.snippet_error = "This snippet no longer exists."
            return None
        self.snippets_open = False
        return self._insert(fragment, "Snippet inserted")

    @rx.event
    @requires(Role.EDITOR)
    def delete_snippet(self, snippet_id: str) -> EventSpec | None:
        user_id = self._user_id()
        caller = caller_of(self)
        try:
            with audit.acting_as(audit_who(self, caller)), db.db_session() as session:
                done = user_id is not None and snippets.delete_snippet(
                    session,
                    uuid.UUID(snippet_id),
                    user_id,
                    is_admin=bool(caller and caller.role == Role.ADMIN),
                    workspace_id=current_workspace(self),
                )
            self._reload()
        except (ValueError, *DB_ERRORS) as exc:
            self.snippet_error = describe_db_error(exc) if isinstance(exc, DB_ERRORS) else "No such snippet."
            return None
        if not done:
            self.snippet_error = "Only its owner (or an admin, for a shared one) can delete this snippet."
        return None

    @rx.event
    @requires(Role.EDITOR)
    def paste_fragment(self, text: str) -> EventSpec | None:
        """Nodes copied in another workflow or tab (the clipboard's text), checked before they are added."""
        try:
            fragment = parse_fragment_text(text)
        except DefinitionError as exc:
            return rx.toast.error(f"Cannot paste: {user_message(exc)}", id="paste-refused")
        return self._insert(fragment, "Pasted")

    @rx.event
    @requires(Role.EDITOR)
    def insert_fragment_text(self) -> EventSpec | None:
        """The snippets dialog's box: paste copied nodes as text."""
        try:
            fragment = parse_fragment_text(self.fragment_text)
        except DefinitionError as exc:
            self.fragment_error = user_message(exc)
            return None
        self.snippets_open, self.fragment_text, self.fragment_error = False, "", ""
        return self._insert(fragment, "Pasted")

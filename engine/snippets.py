"""Snippets: save a selection of nodes and edges under a name, list the ones a user may use, read
and delete one. Each is checked as a fragment (engine.fragments) when saved and again when read.

A personal snippet is seen by its owner only; a shared one by everyone who can edit workflows.
Who may save, insert or delete is decided by the caller's role (the editor's handlers need the
editor role); deleting is for the owner, or an admin for shared ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, or_, select

from engine import audit
from engine.errors import DefinitionError
from engine.fragments import check_fragment
from models.snippets import Snippet

NAME_MAX_LENGTH = 200
LISTED = 200


@dataclass(frozen=True)
class SnippetInfo:
    """A snippet as the editor lists it."""

    id: str
    name: str
    nodes: int
    shared: bool
    mine: bool
    created_at: datetime


def save_snippet(
    session: Session, *, name: str, fragment: dict[str, Any], owner_id: uuid.UUID, shared: bool = False
) -> Snippet:
    """Store a fragment under `name`; DefinitionError when the name or the fragment is not valid."""
    name = name.strip()
    if not name:
        raise DefinitionError("a snippet needs a name")
    if len(name) > NAME_MAX_LENGTH:
        raise DefinitionError(f"a snippet name has up to {NAME_MAX_LENGTH} characters")
    checked = check_fragment(fragment, source="snippet")
    row = Snippet(name=name, owner_id=owner_id, shared=shared, fragment=checked, nodes=len(checked["nodes"]))
    session.add(row)
    session.flush()
    audit.record(session, action="snippet.saved", target_type="snippet", target_id=str(row.id),
                 after={"name": name, "shared": shared, "nodes": row.nodes})  # fmt: skip
    return row


def _visible(user_id: uuid.UUID):
    return or_(col(Snippet.shared).is_(True), col(Snippet.owner_id) == user_id)


def list_snippets(session: Session, user_id: uuid.UUID) -> list[SnippetInfo]:
    """The user's own snippets and the shared ones, by name."""
    rows = session.exec(
        select(Snippet)
        .where(_visible(user_id))
        .order_by(col(Snippet.name), col(Snippet.created_at))
        .limit(LISTED)
    )
    return [
        SnippetInfo(str(r.id), r.name, r.nodes, r.shared, r.owner_id == user_id, r.created_at) for r in rows
    ]


def get_fragment(session: Session, snippet_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any] | None:
    """The snippet's fragment, checked again (node types may have changed since), or None when the
    user may not see it or it does not exist."""
    row = session.exec(select(Snippet).where(Snippet.id == snippet_id, _visible(user_id))).first()
    return None if row is None else check_fragment(row.fragment, source=f"snippet {row.name!r}")


def delete_snippet(
    session: Session, snippet_id: uuid.UUID, user_id: uuid.UUID, *, is_admin: bool = False
) -> bool:
    """Delete the user's own snippet (an admin may delete shared ones too); False when not allowed or gone."""
    row = session.get(Snippet, snippet_id)
    if row is None or not (row.owner_id == user_id or (is_admin and row.shared)):
        return False
    session.delete(row)
    session.flush()
    audit.record(session, action="snippet.deleted", target_type="snippet", target_id=str(snippet_id),
                 before={"name": row.name, "shared": row.shared, "nodes": row.nodes})  # fmt: skip
    return True

"""Snippets: save a selection of nodes and edges under a name, list the ones a user may use, read
and delete one. Each is checked as a fragment (engine.fragments) when saved and again when read.

A snippet belongs to a workspace: the editor lists, inserts and deletes the current workspace's only
(`workspace_id`; None = no filter, for engine-internal callers), and another workspace's snippet id
finds nothing, as an unknown one. Within it, a personal snippet is seen by its owner only; a shared
one by everyone there who can edit workflows.
Who may save, insert or delete is decided by the caller's role (the editor's handlers need the
editor role); deleting is for the owner, or an admin for shared ones.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, and_, col, or_, select

from engine import audit
from engine.errors import DefinitionError
from engine.fragments import check_fragment
from engine.ids import parse_id
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


def _workspace_key(workspace_id: str | uuid.UUID) -> uuid.UUID:
    # An id that is no UUID names no workspace: it matches nothing.
    return parse_id(workspace_id) or uuid.UUID(int=0)


def save_snippet(
    session: Session,
    *,
    name: str,
    fragment: dict[str, Any],
    owner_id: uuid.UUID,
    shared: bool = False,
    workspace_id: str | uuid.UUID | None = None,
) -> Snippet:
    """Store a fragment under `name` in workspace `workspace_id` (None: the default one);
    DefinitionError when the name or the fragment is not valid."""
    name = name.strip()
    if not name:
        raise DefinitionError("a snippet needs a name")
    if len(name) > NAME_MAX_LENGTH:
        raise DefinitionError(f"a snippet name has up to {NAME_MAX_LENGTH} characters")
    checked = check_fragment(fragment, source="snippet")
    row = Snippet(name=name, owner_id=owner_id, shared=shared, fragment=checked, nodes=len(checked["nodes"]))
    if workspace_id is not None:
        row.workspace_id = _workspace_key(workspace_id)
    session.add(row)
    session.flush()
    audit.record(session, action="snippet.saved", target_type="snippet", target_id=str(row.id),
                 after={"name": name, "shared": shared, "nodes": row.nodes})  # fmt: skip
    return row


def _visible(user_id: uuid.UUID, workspace_id: str | uuid.UUID | None):
    seen = or_(col(Snippet.shared).is_(True), col(Snippet.owner_id) == user_id)
    if workspace_id is None:
        return seen
    return and_(col(Snippet.workspace_id) == _workspace_key(workspace_id), seen)


def list_snippets(
    session: Session, user_id: uuid.UUID, *, workspace_id: str | uuid.UUID | None = None
) -> list[SnippetInfo]:
    """The user's own snippets and the shared ones (of workspace `workspace_id` when given), by name."""
    rows = session.exec(
        select(Snippet)
        .where(_visible(user_id, workspace_id))
        .order_by(col(Snippet.name), col(Snippet.created_at))
        .limit(LISTED)
    )
    return [
        SnippetInfo(str(r.id), r.name, r.nodes, r.shared, r.owner_id == user_id, r.created_at) for r in rows
    ]


def get_fragment(
    session: Session,
    snippet_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    workspace_id: str | uuid.UUID | None = None,
) -> dict[str, Any] | None:
    """The snippet's fragment, checked again (node types may have changed since), or None when the
    user may not see it, it does not exist or it is another workspace's than `workspace_id`."""
    row = session.exec(
        select(Snippet).where(Snippet.id == snippet_id, _visible(user_id, workspace_id))
    ).first()
    return None if row is None else check_fragment(row.fragment, source=f"snippet {row.name!r}")


def delete_snippet(
    session: Session,
    snippet_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    is_admin: bool = False,
    workspace_id: str | uuid.UUID | None = None,
) -> bool:
    """Delete the user's own snippet (an admin may delete shared ones too); False when not allowed,
    gone, or another workspace's than `workspace_id`."""
    row = session.get(Snippet, snippet_id)
    if row is None or (workspace_id is not None and row.workspace_id != _workspace_key(workspace_id)):
        return False
    if not (row.owner_id == user_id or (is_admin and row.shared)):
        return False
    session.delete(row)
    session.flush()
    audit.record(session, action="snippet.deleted", target_type="snippet", target_id=str(snippet_id),
                 before={"name": row.name, "shared": row.shared, "nodes": row.nodes})  # fmt: skip
    return True

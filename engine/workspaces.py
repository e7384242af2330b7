"""Workspaces and their members: the one door for who belongs where, with which role.

A person's role in a workspace is their membership's role, or their instance role (users.role)
when the membership names none (the default workspace's members, who joined on first sign-in).
Instance admins are admins of every workspace: they manage workspaces and may enter any of them.
Everything a workspace owns (workflows, runs, secrets, keys, agents, knowledge, snippets) carries
its `workspace_id`; callers act in one current workspace at a time and objects of other
workspaces do not exist for them (the routes answer 404).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, col, select

from engine import audit
from engine.errors import ErrorCode, FlowloomError
from engine.roles import RANK, Role, is_role
from models.auth import User
from models.tables import utcnow
from models.workspace_column import DEFAULT_WORKSPACE_ID
from models.workspaces import Workspace, WorkspaceMember

__all__ = [
    "DEFAULT_WORKSPACE_ID",
    "Membership",
    "MemberInfo",
    "create_workspace",
    "apply_group_roles",
    "find_user",
    "groups_of",
    "get_workspace",
    "list_members",
    "list_workspaces",
    "memberships",
    "pick_current",
    "remove_member",
    "rename_workspace",
    "set_member",
]

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$")
NAME_MAX_LENGTH = 200


@dataclass(frozen=True)
class Membership:
    """A workspace a person may enter, and their role there."""

    workspace_id: str
    slug: str
    name: str
    role: str


@dataclass(frozen=True)
class MemberInfo:
    """One member of a workspace as its members list shows them."""

    user_id: str
    email: str
    name: str
    role: str  # the role that applies there
    explicit_role: str | None  # None: follows the user's instance role


def _not_found(workspace_id: object) -> FlowloomError:
    return FlowloomError(f"workspace {workspace_id} not found", code=ErrorCode.WORKSPACE_NOT_FOUND)


def memberships(session: Session, user: User) -> list[Membership]:
    """Every workspace `user` may enter with their role there, the default workspace first, then by name.

    Inactive users and users without a valid instance role have none.
    """
    if not user.is_active or not is_role(user.role):
        return []
    if user.role == Role.ADMIN:
        rows = session.exec(select(Workspace)).all()
        found = [Membership(str(w.id), w.slug, w.name, Role.ADMIN) for w in rows]
    else:
        pairs = session.exec(
            select(Workspace, WorkspaceMember)
            .join(WorkspaceMember, col(WorkspaceMember.workspace_id) == col(Workspace.id))
            .where(col(WorkspaceMember.user_id) == user.id)
        ).all()
        found = [
            Membership(str(w.id), w.slug, w.name, m.role if m.role and is_role(m.role) else user.role)
            for w, m in pairs
        ]
    return sorted(found, key=lambda m: (m.workspace_id != str(DEFAULT_WORKSPACE_ID), m.name.lower(), m.slug))


def pick_current(found: list[Membership], wanted: str = "") -> Membership | None:
    """The membership of the workspace `wanted` (an id or a slug) if the person has it, else their first."""
    wanted = (wanted or "").strip()
    if wanted:
        for membership in found:
            if wanted in (membership.workspace_id, membership.slug):
                return membership
    return found[0] if found else None


def list_workspaces(session: Session) -> list[Workspace]:
    """Every workspace (for instance admins), by name."""
    return list(session.exec(select(Workspace).order_by(func.lower(Workspace.name), Workspace.slug)).all())


def get_workspace(session: Session, workspace_id: str | uuid.UUID) -> Workspace | None:
    """The workspace with this id, or None (also for ids that are not UUIDs)."""
    try:
        key = workspace_id if isinstance(workspace_id, uuid.UUID) else uuid.UUID(str(workspace_id))
    except ValueError:
        return None
    return session.get(Workspace, key)


def _check_name(slug: str, name: str) -> tuple[str, str]:
    slug, name = slug.strip().lower(), name.strip()
    if not SLUG_PATTERN.match(slug):
        raise FlowloomError(
            "a workspace's short name is 1-60 lowercase letters, digits and dashes (not at either end)",
            code=ErrorCode.WORKSPACE_INVALID,
            field="slug",
        )
    if not name or len(name) > NAME_MAX_LENGTH:
        raise FlowloomError(
            f"a workspace's name is 1-{NAME_MAX_LENGTH} characters",
            code=ErrorCode.WORKSPACE_INVALID,
            field="name",
        )
    return slug, name


def create_workspace(
    session: Session, *, slug: str, name: str, actor: str, description: str = "", ip: str = ""
) -> Workspace:
    """Create a workspace (instance admins); its short name is unique. Audited in the caller's transaction."""
    slug, name = _check_name(slug, name)
    if session.exec(select(Workspace).where(col(Workspace.slug) == slug)).first() is not None:
        raise FlowloomError(f"a workspace named {slug!r} exists", code=ErrorCode.CONFLICT, field="slug")
    workspace = Workspace(slug=slug, name=name, description=description.strip()[:2000])
    session.add(workspace)
    session.flush()
    audit.record(
        session, actor=actor, action="workspace.create", target_type="workspace", target_id=str(workspace.id),
        details={"slug": slug, "name": name}, ip=ip,
    )  # fmt: skip
    return workspace


def rename_workspace(
    session: Session, workspace_id: str | uuid.UUID, *, name: str, actor: str, ip: str = ""
) -> Workspace:
    """Give a workspace another display name (its short name stays)."""
    workspace = get_workspace(session, workspace_id)
    if workspace is None:
        raise _not_found(workspace_id)
    _, name = _check_name(workspace.slug, name)
    before = workspace.name
    workspace.name = name
    session.add(workspace)
    audit.record(
        session, actor=actor, action="workspace.rename", target_type="workspace", target_id=str(workspace.id),
        before={"name": before}, after={"name": name}, ip=ip,
    )  # fmt: skip
    return workspace


def list_members(session: Session, workspace_id: str | uuid.UUID) -> list[MemberInfo]:
    """The members of a workspace, by e-mail."""
    workspace = get_workspace(session, workspace_id)
    if workspace is None:
        raise _not_found(workspace_id)
    pairs = session.exec(
        select(User, WorkspaceMember)
        .join(WorkspaceMember, col(WorkspaceMember.user_id) == col(User.id))
        .where(col(WorkspaceMember.workspace_id) == workspace.id)
        .order_by(func.lower(User.email), col(User.id))
    ).all()
    return [
        MemberInfo(str(u.id), u.email, u.name, m.role if m.role and is_role(m.role) else u.role, m.role)
        for u, m in pairs
    ]


def set_member(
    session: Session,
    workspace_id: str | uuid.UUID,
    user_id: str | uuid.UUID,
    role: str | None,
    *,
    actor: str,
    ip: str = "",
) -> None:
    """Add a user to a workspace or change their role there (None: follow their instance role). Audited."""
    workspace = get_workspace(session, workspace_id)
    if workspace is None:
        raise _not_found(workspace_id)
    if role is not None and role not in RANK:
        raise FlowloomError(f"unknown role {role!r}", code=ErrorCode.WORKSPACE_INVALID, field="role")
    user = session.get(User, uuid.UUID(str(user_id)))
    if user is None:
        raise FlowloomError(f"user {user_id} not found", code=ErrorCode.USER_NOT_FOUND)
    existing = session.get(WorkspaceMember, (workspace.id, user.id))
    before = None if existing is None else (existing.role or "instance role")
    session.execute(
        pg_insert(WorkspaceMember)
        .values(workspace_id=workspace.id, user_id=user.id, role=role, added_at=utcnow())
        .on_conflict_do_update(index_elements=["workspace_id", "user_id"], set_={"role": role})
    )
    audit.record(
        session, actor=actor, action="workspace.member.set", target_type="workspace", target_id=str(workspace.id),
        details={"user_id": str(user.id), "email": user.email, "added": existing is None},
        before=None if before is None else {"role": before}, after={"role": role or "instance role"}, ip=ip,
    )  # fmt: skip


def remove_member(
    session: Session, workspace_id: str | uuid.UUID, user_id: str | uuid.UUID, *, actor: str, ip: str = ""
) -> bool:
    """Take a user out of a workspace; False when they were not a member. Audited."""
    workspace = get_workspace(session, workspace_id)
    if workspace is None:
        raise _not_found(workspace_id)
    gone = session.execute(
        delete(WorkspaceMember)
        .where(
            col(WorkspaceMember.workspace_id) == workspace.id,
            col(WorkspaceMember.user_id) == uuid.UUID(str(user_id)),
        )
        .returning(col(WorkspaceMember.role))
    ).first()
    if gone is None:
        return False
    audit.record(
        session, actor=actor, action="workspace.member.remove", target_type="workspace", target_id=str(workspace.id),
        details={"user_id": str(user_id)}, before={"role": gone[0] or "instance role"}, ip=ip,
    )  # fmt: skip
    return True


def find_user(session: Session, email: str) -> User | None:
    """The active user with this e-mail address (case-insensitive), for adding members by address."""
    address = email.strip().lower()
    if not address:
        return None
    return session.exec(
        select(User)
        .where(func.lower(User.email) == address, col(User.is_active))
        .order_by(col(User.created_at))
    ).first()


def groups_of(claims: dict[str, object], claim: str) -> tuple[str, ...]:
    """The group names a provider's claims carry under `claim` (a list of strings, or one string)."""
    value = claims.get(claim) if claim else None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(g) for g in value if isinstance(g, str | int))[:1000]
    return ()


def apply_group_roles(
    session: Session,
    user: User,
    grants: list[tuple[str, str, str]],
    groups: tuple[str, ...],
    *,
    actor: str,
    ip: str = "",
) -> None:
    """Give `user` the best role their `groups` grant in each workspace the (group, workspace slug,
    role) `grants` name, and take them out of such a workspace when none of their groups does.

    Workspaces the grants do not name are left as their admins set them. A slug that names no
    workspace is skipped (an instance admin may create it later).
    """
    best: dict[str, str | None] = {}
    for group, slug, role in grants:
        current = best.setdefault(slug, None)
        if group in groups and role in RANK and (current is None or RANK[role] > RANK[current]):
            best[slug] = role
    for slug, best_role in best.items():
        workspace = session.exec(select(Workspace).where(col(Workspace.slug) == slug)).first()
        if workspace is None:
            continue
        existing = session.get(WorkspaceMember, (workspace.id, user.id))
        if best_role is None:
            if existing is not None:
                remove_member(session, workspace.id, user.id, actor=actor, ip=ip)
        elif existing is None or existing.role != best_role:
            set_member(session, workspace.id, user.id, best_role, actor=actor, ip=ip)

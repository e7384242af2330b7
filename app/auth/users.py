"""Users: created on first sign-in (unique by issuer + subject), roles changed by admins."""

from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.auth.policy import Role, is_role
from engine.errors import ErrorCode, FlowloomError
from engine.settings import get_settings
from models.auth import User
from models.tables import utcnow


class UserError(FlowloomError):
    """A user change was refused; the message says why."""

    code = ErrorCode.USER_REFUSED


def is_admin_email(email: str, verified: bool) -> bool:
    """True when settings name `email` (or its @domain) as an admin and the provider verified it."""
    if not verified or "@" not in email:
        return False
    email = email.strip().lower()
    domain = "@" + email.rsplit("@", 1)[1]
    for entry in get_settings().admin_emails:
        entry = entry.strip().lower()
        if entry and (entry == email or (entry.startswith("@") and entry == domain)):
            return True
    return False


def upsert_signed_in(
    session: Session, *, issuer: str, subject: str, email: str, email_verified: bool, name: str
) -> tuple[User, bool]:
    """The user for this identity, created on first sign-in; returns (user, created)."""
    user = session.exec(select(User).where(User.issuer == issuer, User.subject == subject)).first()
    created = user is None
    if user is None:
        user = User(issuer=issuer, subject=subject, role=Role.VIEWER)
    user.email = (email or "")[:320]
    user.email_verified = bool(email_verified and user.email)  # as of this sign-in; approvals trust only this
    user.name = (name or "")[:200]
    if is_admin_email(user.email, email_verified):
        user.role = Role.ADMIN
    user.last_login_at = utcnow()
    session.add(user)
    session.flush()
    return user, created


def get_user(session: Session, user_id: str | uuid.UUID) -> User | None:
    """The user with this id (None for unknown or malformed ids)."""
    try:
        return session.get(User, uuid.UUID(str(user_id)))
    except ValueError:
        return None


def count_users(session: Session) -> int:
    """How many users exist."""
    return session.exec(select(func.count()).select_from(User)).one()


def list_users(session: Session, limit: int = 500) -> list[User]:
    """Users by e-mail."""
    return list(session.exec(select(User).order_by(col(User.email), col(User.created_at)).limit(limit)))


def _active_admins(session: Session) -> int:
    # Locks the admin rows, so two admins demoting each other at once cannot leave none.
    rows = session.exec(
        select(User.id).where(User.role == Role.ADMIN, col(User.is_active).is_(True)).with_for_update()
    ).all()
    return len(rows)


def change_user(
    session: Session, user_id: uuid.UUID, *, role: str | None = None, is_active: bool | None = None
) -> tuple[User, dict[str, object]] | None:
    """Change a user's role or active flag; returns (user, what changed) or None if unknown.

    The last active admin can neither be demoted nor deactivated: someone must be able to sign in
    and change roles.
    """
    user = session.exec(select(User).where(User.id == user_id).with_for_update()).first()
    if user is None:
        return None
    changes: dict[str, object] = {}
    if role is not None and role != user.role:
        if not is_role(role):
            raise UserError(f"role: {role!r} is not one of admin, editor, operator, viewer")
        changes["role"] = {"from": user.role, "to": role}
    if is_active is not None and is_active != user.is_active:
        changes["is_active"] = {"from": user.is_active, "to": is_active}
    losing_admin = (
        user.role == Role.ADMIN
        and user.is_active
        and (("role" in changes) or ("is_active" in changes and not is_active))
    )
    if losing_admin and _active_admins(session) <= 1:
        raise UserError("this is the last active admin; make another user admin first")
    if "role" in changes:
        user.role = role  # type: ignore[assignment]
    if "is_active" in changes:
        user.is_active = bool(is_active)
    session.add(user)
    session.flush()
    return user, changes

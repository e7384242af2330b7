"""The four roles and their order (admin > editor > operator > viewer), shared by app and engine."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A user's role; each includes the ones below it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    EDITOR = "editor"
    ADMIN = "admin"


RANK: dict[str, int] = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.EDITOR: 3, Role.ADMIN: 4}


def is_role(value: str) -> bool:
    """True for one of the four role names."""
    return value in RANK


def at_least(role: str | None, needed: str) -> bool:
    """True when `role` is `needed` or above it (unknown roles never are)."""
    return role in RANK and needed in RANK and RANK[role] >= RANK[needed]

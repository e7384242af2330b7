"""Who may decide an approval: the one rule, used by deciding and by every listing of approvals.

An approval request names `approvers` (users by id or e-mail, roles) and may have been escalated
to a role; operators and above decide, viewers never do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.roles import RANK, Role, at_least

# The least role that may decide any approval (viewers never do).
DECIDER_ROLE = Role.OPERATOR


@dataclass(frozen=True)
class Approver:
    """The person deciding: their user id, e-mail (and whether it is verified) and role."""

    user_id: str
    email: str
    role: str
    # True only when the sign-in provider vouched for the address (or it is the local account).
    email_verified: bool = False

    @property
    def trusted_email(self) -> str:
        """The e-mail, lower-cased, when verified; "" otherwise (an unverified address proves nothing)."""
        return self.email.strip().lower() if self.email_verified else ""

    @property
    def voter(self) -> str:
        """How votes name this person: the verified e-mail (two accounts of one person count once),
        else the user id, so an unverified address cannot take someone else's vote."""
        return (self.trusted_email or self.user_id).strip().lower()


def allowed_roles(request: dict[str, Any]) -> list[str]:
    """The roles named as approvers, plus the role it escalated to."""
    approvers = request.get("approvers") or {}
    roles = [str(r) for r in approvers.get("roles") or []]
    escalated = request.get("escalated_to_role")
    if escalated and escalated not in roles:
        roles.append(str(escalated))
    return roles


def may_decide(request: dict[str, Any], approver: Approver) -> bool:
    """True when the approver is listed by user or holds a listed role (or one above).

    A user entry matches the approver's user id, or their e-mail only when it is verified: anyone
    can type any address into an identity provider that does not check it.
    """
    if not at_least(approver.role, DECIDER_ROLE):
        return False
    users = {str(u).strip().lower() for u in (request.get("approvers") or {}).get("users") or []}
    roles = allowed_roles(request)
    if not users and not roles:
        return True
    if approver.user_id and approver.user_id.strip().lower() in users:
        return True
    if approver.trusted_email and approver.trusted_email in users:
        return True
    return any(approver.role == r or (r in RANK and at_least(approver.role, r)) for r in roles)


def unverified_hint(request: dict[str, Any], approver: Approver) -> str:
    """Why a listed address was not enough: the sign-in did not verify it."""
    users = {str(u).strip().lower() for u in (request.get("approvers") or {}).get("users") or []}
    if approver.email_verified or approver.email.strip().lower() not in users:
        return ""
    return (
        f" ({approver.email} is listed, but your sign-in provider did not verify that address; "
        "sign in with a provider that verifies it, or ask for your user id to be listed instead)"
    )


def describe_approvers(request: dict[str, Any]) -> str:
    """Who an approval is for, in words ("users a@x and roles admin", or "any operator")."""
    users = (request.get("approvers") or {}).get("users") or []
    roles = allowed_roles(request)
    parts = ([f"users {', '.join(users)}"] if users else []) + (
        [f"roles {', '.join(roles)}"] if roles else []
    )
    return " and ".join(parts) or f"any {DECIDER_ROLE}"

"""Who is calling an API route: FastAPI dependencies over what app.auth.middleware resolved.

The middleware already refused callers the policy does not allow; these refuse again if it did
not run (a router mounted somewhere else, a test app).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.auth.policy import Role, allows
from app.auth.principal import Principal
from engine.errors import ErrorCode, FlowloomError


def caller(request: Request) -> Principal:
    """The signed-in user or API key of this request; 401 when there is none."""
    found = getattr(request.state, "principal", None)
    if found is None:
        raise FlowloomError("sign in first", code=ErrorCode.SIGN_IN_REQUIRED)
    return found


def requires(role: Role):
    """A dependency that refuses callers below `role`."""

    def check(principal: Annotated[Principal, Depends(caller)]) -> Principal:
        if not allows(principal.role, role):
            raise FlowloomError(f"this needs the {role} role", code=ErrorCode.FORBIDDEN)
        return principal

    return check


def instance_admin(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    """The caller when they are an instance admin (users.role), acting as admin; a workspace's
    admin is not one. For the instance-wide tools: dead letters, circuits, instance roles."""
    if principal.instance_role != Role.ADMIN or not allows(principal.role, Role.ADMIN):
        raise FlowloomError("this needs the instance admin role", code=ErrorCode.FORBIDDEN)
    return principal


Caller = Annotated[Principal, Depends(caller)]
Admin = Annotated[Principal, Depends(requires(Role.ADMIN))]
InstanceAdmin = Annotated[Principal, Depends(instance_admin)]


def instance_admin(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    """Refuses everyone but instance admins (users.role admin): workspace admins manage their workspace only."""
    # An admin's API key made with a lower role stays that role.
    if principal.instance_role != Role.ADMIN or not allows(principal.role, Role.ADMIN):
        raise FlowloomError("this needs an instance admin", code=ErrorCode.FORBIDDEN)
    return principal


InstanceAdmin = Annotated[Principal, Depends(instance_admin)]


def client_ip(request: Request) -> str:
    """The client's address as the server saw it."""
    return request.client.host if request.client else ""

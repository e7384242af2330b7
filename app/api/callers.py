"""Who is calling an API route: FastAPI dependencies over what app.auth.middleware resolved.

The middleware already refused callers the policy does not allow; these refuse again if it did
not run (a router mounted somewhere else, a test app).
"""

from __future__ import annotations

import uuid
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


Caller = Annotated[Principal, Depends(caller)]
Admin = Annotated[Principal, Depends(requires(Role.ADMIN))]


def instance_admin(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    """Refuses everyone but instance admins (users.role admin): workspace admins manage their workspace
    only. For the instance-wide tools: users, dead letters, circuits, creating workspaces."""
    if not principal.is_instance_admin:  # an admin's API key made with a lower role stays that role
        raise FlowloomError("this needs an instance admin", code=ErrorCode.FORBIDDEN)
    return principal


InstanceAdmin = Annotated[Principal, Depends(instance_admin)]


def administers(principal: Principal, workspace_id: uuid.UUID | str) -> str:
    """The caller's role in the workspace named in a path (an API key's own role, in its workspace
    only), when it is admin: WORKSPACE_NOT_FOUND unless they are a member there, FORBIDDEN below admin."""
    role = principal.workspace_roles.get(str(workspace_id))
    if role is None:
        raise FlowloomError(f"workspace {workspace_id} not found", code=ErrorCode.WORKSPACE_NOT_FOUND)
    if not allows(role, Role.ADMIN):
        raise FlowloomError("this needs the admin role in that workspace", code=ErrorCode.FORBIDDEN)
    return role


def client_ip(request: Request) -> str:
    """The client's address as the server saw it."""
    return request.client.host if request.client else ""

"""Who is calling an API route: FastAPI dependencies over what app.auth.middleware resolved.

The middleware already refused callers the policy does not allow; these refuse again if it did
not run (a router mounted somewhere else, a test app).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from app.auth.policy import Role, allows
from app.auth.principal import Principal


def caller(request: Request) -> Principal:
    """The signed-in user or API key of this request; 401 when there is none."""
    found = getattr(request.state, "principal", None)
    if found is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="sign in first")
    return found


def requires(role: Role):
    """A dependency that refuses callers below `role`."""

    def check(principal: Annotated[Principal, Depends(caller)]) -> Principal:
        if not allows(principal.role, role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"this needs the {role} role")
        return principal

    return check


Caller = Annotated[Principal, Depends(caller)]
Admin = Annotated[Principal, Depends(requires(Role.ADMIN))]


def client_ip(request: Request) -> str:
    """The client's address as the server saw it."""
    return request.client.host if request.client else ""

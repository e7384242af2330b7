"""/api/me, /api/keys, /api/users: who I am, my API keys, users' roles (the audit log: app/api/audit.py)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.callers import Caller, InstanceAdmin, client_ip
from app.auth import api_keys, users
from app.auth.policy import Role
from app.auth.principal import session_cache
from app.db import db_session
from engine import audit
from engine.errors import ErrorCode, FlowloomError

router = APIRouter(tags=["access"])


class MePublic(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    role: str
    via: str


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Role = Role.VIEWER
    rate_limit_per_min: int = Field(api_keys.DEFAULT_RATE_PER_MIN, ge=1, le=api_keys.MAX_RATE_PER_MIN)


class ApiKeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    role: str
    rate_limit_per_min: int
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself: shown this once, store it now")


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    issuer: str
    email: str
    name: str
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None = None


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = None


@router.get("/me", response_model=MePublic)
def me(principal: Caller) -> MePublic:
    """Who you are signed in as, and your role (an API key's role when you use one)."""
    return MePublic(
        id=uuid.UUID(principal.user_id), email=principal.email, name=principal.name, role=principal.role,
        via=principal.via,
    )  # fmt: skip


@router.get("/keys", response_model=list[ApiKeyPublic])
def list_keys(principal: Caller) -> list[ApiKeyPublic]:
    """Your API keys of the current workspace (never the keys themselves)."""
    with db_session() as session:
        rows = api_keys.list_keys(session, uuid.UUID(principal.user_id), workspace_id=principal.workspace_id)
        return [ApiKeyPublic.model_validate(r) for r in rows]


@router.post("/keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreate, principal: Caller, request: Request) -> ApiKeyCreated:
    """Create a key of the current workspace (it acts there only) with a role up to your own there;
    the answer holds the key, shown only this once."""
    if principal.via != "session":
        raise FlowloomError(
            "sign in to create keys; a key cannot make keys", code=ErrorCode.KEY_NEEDS_SESSION
        )
    with db_session() as session:
        owner = users.get_user(session, principal.user_id)
        if owner is None:
            raise FlowloomError("sign in first", code=ErrorCode.SIGN_IN_REQUIRED)
        row, key = api_keys.create(  # ApiKeyError answers 422
            session, owner, name=body.name, role=body.role, rate_limit_per_min=body.rate_limit_per_min,
            workspace_id=principal.workspace_id or None, owner_role=principal.role,
        )  # fmt: skip
        audit.record(
            session, actor=principal.actor, action="api_key.created", target_type="api_key",
            target_id=str(row.id), details={"name": row.name, "prefix": row.prefix, "role": row.role},
            ip=client_ip(request),
        )  # fmt: skip
        public = ApiKeyPublic.model_validate(row)
    return ApiKeyCreated(**public.model_dump(), key=key)


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}})
def revoke_key(key_id: uuid.UUID, principal: Caller, request: Request) -> Response:
    """Revoke one of your keys of the current workspace (its admins: any of its keys); it stops working at once."""
    with db_session() as session:
        row = api_keys.revoke(
            session, key_id, by_user=uuid.UUID(principal.user_id), by_role=principal.role,
            workspace_id=principal.workspace_id,
        )  # fmt: skip
        if row is None:
            raise FlowloomError(f"API key {key_id} not found", code=ErrorCode.API_KEY_NOT_FOUND)
        audit.record(
            session, actor=principal.actor, action="api_key.revoked", target_type="api_key",
            target_id=str(row.id), details={"prefix": row.prefix}, ip=client_ip(request),
        )  # fmt: skip
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", response_model=list[UserPublic])
def list_users(principal: InstanceAdmin) -> list[UserPublic]:
    """Every user of the instance with their instance role (instance admins only; a workspace's
    admins list their members with GET /api/workspaces/{workspace_id}/members)."""
    with db_session() as session:
        return [UserPublic.model_validate(u) for u in users.list_users(session)]


@router.patch("/users/{user_id}", response_model=UserPublic, responses={404: {}, 409: {}})
def update_user(
    user_id: uuid.UUID, body: UserUpdate, principal: InstanceAdmin, request: Request
) -> UserPublic:
    """Change a user's instance role or deactivate them (instance admins only); it applies at once."""
    with db_session() as session:
        # UserError (the last admin, an unknown role) answers 409.
        changed = users.change_user(session, user_id, role=body.role, is_active=body.is_active)
        if changed is None:
            raise FlowloomError(f"user {user_id} not found", code=ErrorCode.USER_NOT_FOUND)
        user, changes = changed
        if changes:
            audit.record(
                session, actor=principal.actor, action="user.role_changed" if "role" in changes else "user.updated",
                target_type="user", target_id=str(user.id), details=changes, ip=client_ip(request),
                **audit.before_after(changes),
            )  # fmt: skip
        public = UserPublic.model_validate(user)
    session_cache.clear()
    return public

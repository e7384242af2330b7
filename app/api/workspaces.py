"""/api/workspaces: the workspaces I may enter, and (for their admins) their names and members.

A workspace the caller is not a member of answers 404 like an unknown id; creating workspaces is
for instance admins; a workspace's members are managed by its admins.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.callers import Caller, InstanceAdmin, administers, client_ip
from app.auth.policy import Role
from app.auth.principal import Principal, session_cache
from app.db import db_session
from engine import workspaces
from engine.errors import ErrorCode, FlowloomError

router = APIRouter(tags=["workspaces"])


class WorkspacePublic(BaseModel):
    id: str
    slug: str
    name: str
    role: str = Field(description="Your role there")


class WorkspacesPublic(BaseModel):
    current: WorkspacePublic | None = Field(description="The workspace this request acted in")
    workspaces: list[WorkspacePublic]


class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(
        min_length=1, max_length=60, description="Short name: lowercase letters, digits, dashes"
    )
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)


class WorkspaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)


class MemberPublic(BaseModel):
    user_id: str
    email: str
    name: str
    role: str = Field(description="The role that applies in this workspace")
    explicit_role: str | None = Field(description="None: follows the user's instance role")


class MemberSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = Field(None, description="None: follow the user's instance role")


def _public(m: workspaces.Membership) -> WorkspacePublic:
    return WorkspacePublic(id=m.workspace_id, slug=m.slug, name=m.name, role=m.role)


def _administered(principal: Principal, workspace_id: uuid.UUID) -> None:
    """404 unless the caller is a member of the workspace; 403 unless they are its admin (an API
    key: at the key's own role, not its owner's)."""
    administers(principal, workspace_id)


@router.get("/workspaces", response_model=WorkspacesPublic)
def list_mine(principal: Caller) -> WorkspacesPublic:
    """The workspaces you may enter with your role in each, and the one this request acted in."""
    current = next((m for m in principal.workspaces if m.workspace_id == principal.workspace_id), None)
    return WorkspacesPublic(
        current=_public(current) if current else None, workspaces=[_public(m) for m in principal.workspaces]
    )


@router.post(
    "/workspaces", response_model=WorkspacePublic, status_code=status.HTTP_201_CREATED, responses={409: {}}
)
def create(body: WorkspaceCreate, principal: InstanceAdmin, request: Request) -> WorkspacePublic:
    """Create a workspace (instance admins); you are its admin as an instance admin."""
    with db_session() as session:
        row = workspaces.create_workspace(
            session, slug=body.slug, name=body.name, description=body.description, actor=principal.actor,
            ip=client_ip(request),
        )  # fmt: skip
        session.commit()
        created = WorkspacePublic(id=str(row.id), slug=row.slug, name=row.name, role=Role.ADMIN)
    session_cache.clear()  # the new workspace is among the instance admins' at once
    return created


@router.patch("/workspaces/{workspace_id}", response_model=WorkspacePublic, responses={404: {}})
def rename(
    workspace_id: uuid.UUID, body: WorkspaceUpdate, principal: Caller, request: Request
) -> WorkspacePublic:
    """Rename a workspace (its admins)."""
    _administered(principal, workspace_id)
    with db_session() as session:
        row = workspaces.rename_workspace(
            session, workspace_id, name=body.name, actor=principal.actor, ip=client_ip(request)
        )
        session.commit()
        renamed = WorkspacePublic(id=str(row.id), slug=row.slug, name=row.name, role=Role.ADMIN)
    session_cache.clear()
    return renamed


@router.get("/workspaces/{workspace_id}/members", response_model=list[MemberPublic], responses={404: {}})
def members(workspace_id: uuid.UUID, principal: Caller) -> list[MemberPublic]:
    """The members of a workspace and their roles there (its admins)."""
    _administered(principal, workspace_id)
    with db_session() as session:
        return [MemberPublic(**vars(m)) for m in workspaces.list_members(session, workspace_id)]


@router.put(
    "/workspaces/{workspace_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {}},
)
def set_member(
    workspace_id: uuid.UUID, user_id: uuid.UUID, body: MemberSet, principal: Caller, request: Request
) -> Response:
    """Add a user to a workspace or change their role there (its admins)."""
    _administered(principal, workspace_id)
    with db_session() as session:
        workspaces.set_member(
            session, workspace_id, user_id, body.role, actor=principal.actor, ip=client_ip(request)
        )
        session.commit()
    session_cache.clear()  # the member's role applies at once
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/workspaces/{workspace_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {}},
)
def remove_member(
    workspace_id: uuid.UUID, user_id: uuid.UUID, principal: Caller, request: Request
) -> Response:
    """Take a user out of a workspace (its admins)."""
    _administered(principal, workspace_id)
    with db_session() as session:
        if not workspaces.remove_member(
            session, workspace_id, user_id, actor=principal.actor, ip=client_ip(request)
        ):
            raise FlowloomError(f"user {user_id} is not a member", code=ErrorCode.USER_NOT_FOUND)
        session.commit()
    session_cache.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""/api/workflows/{workflow_id}/shares: share one workflow with a user or a workspace, list and revoke.

Only the workflow's own workspace manages its shares (editors and admins change them, any member
lists them); a recipient gets 403, anyone else 404. What a share allows is engine/shares.py's rule,
and whom a sharer finds by e-mail too (members of their workspaces; instance admins anyone).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app import db
from app.api.callers import Caller
from engine import shares
from engine.ids import parse_id

router = APIRouter(prefix="/workflows/{workflow_id}/shares", tags=["workflows"])

_ANSWERS = {
    403: {
        "description": "The workflow is shared with you: only its own workspace manages shares (forbidden)"
    },
    404: {"description": "No workflow has this id (workflow_not_found), or no such share (share_not_found)"},
}


class ShareCreate(BaseModel):
    """Whom to share with (one user by e-mail, or one workspace by short name or id) and what they may do."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(None, max_length=320, description="a user's e-mail address")
    workspace: str | None = Field(None, max_length=100, description="a workspace's short name or id")
    permission: Literal["read", "edit"] = Field(
        description="read: see it, its versions, diff, export; edit: also save versions and rename it"
    )

    @model_validator(mode="after")
    def _one_recipient(self) -> ShareCreate:
        if bool((self.email or "").strip()) == bool((self.workspace or "").strip()):
            raise ValueError("give either email or workspace")
        return self


class SharePublic(BaseModel):
    """One share of a workflow."""

    id: uuid.UUID
    workflow_id: uuid.UUID
    kind: Literal["user", "workspace"]
    target_id: uuid.UUID = Field(description="the user's or the workspace's id")
    target: str = Field(description="the user's e-mail, or the workspace's short name")
    target_name: str = Field(description="the user's or the workspace's display name")
    permission: Literal["read", "edit"]
    granted_by: str
    granted_at: datetime


def _public(info: shares.ShareInfo) -> SharePublic:
    return SharePublic.model_validate(info, from_attributes=True)


@router.get("", response_model=list[SharePublic], responses=_ANSWERS)
def list_shares(workflow_id: uuid.UUID, principal: Caller) -> list[SharePublic]:
    """The workflow's shares, oldest first."""
    with db.db_session() as session:
        found = shares.list_shares(
            session, workflow_id, workspace_id=principal.workspace_id, user_id=principal.user_id
        )
        return [_public(info) for info in found]


@router.post(
    "",
    response_model=SharePublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        **_ANSWERS,
        422: {
            "description": "No such workspace, the workflow's own workspace, or no user you can share "
            "with has that e-mail: one answer whether or not an account has it (share_invalid)"
        },
    },
)
def grant_share(workflow_id: uuid.UUID, body: ShareCreate, principal: Caller) -> SharePublic:
    """Share the workflow; sharing again with the same recipient changes the permission."""
    with db.db_session() as session:
        info = shares.grant(
            session, workflow_id, workspace_id=principal.workspace_id, permission=body.permission,
            email=body.email or "", workspace=body.workspace or "", granted_by_user_id=parse_id(principal.user_id),
            find_anyone=principal.is_instance_admin,  # an admin's key made with a lower role is not one
        )  # fmt: skip
        created = _public(info)
    return created


@router.delete("/{share_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_ANSWERS)
def revoke_share(workflow_id: uuid.UUID, share_id: uuid.UUID, principal: Caller) -> Response:
    """Revoke a share: its recipient no longer reaches the workflow through it, from the next request on."""
    with db.db_session() as session:
        shares.revoke(
            session, workflow_id, share_id, workspace_id=principal.workspace_id, user_id=principal.user_id
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)

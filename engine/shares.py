"""Sharing one workflow beyond its workspace: grant, revoke, list, and the rule every read applies.

The rule: a caller acting in workspace W reaches a workflow when it is W's own, or shared with W,
or shared with the caller's user (whatever workspace they act in). What they may do with it:

- `own` (W's workflow): whatever their role in W allows.
- `edit` share: read it, save new versions, rename it or change its description.
- `read` share: see it, its versions, their diff and export, open it read-only in the editor.

A share never lets anyone delete the workflow, manage its shares, duplicate it, publish or review
its versions, see or change its triggers, run it or see its runs, or touch the owning workspace's
secrets: those stay with the owning workspace. The caller's role where they act still applies on
top (a viewer with an edit share only reads). Shares are read from the database on every request,
so a revoke applies at once, for sessions and API keys alike.

The owning workspace's editors and admins grant and revoke (the routes and handlers check the
role; this module checks the workflow is the caller's workspace's). Both are audited
(`workflow.share`, `workflow.unshare`). A sharer finds by e-mail only people who are members of a
workspace they belong to too (instance admins: anyone); any other address gets the same refusal as
one no account has, so sharing cannot probe which addresses have accounts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, select

from engine import audit, workspaces
from engine.errors import ErrorCode, FlowloomError
from engine.ids import parse_id
from engine.roles import Role
from models.auth import User, WorkflowShare
from models.tables import Workflow, utcnow
from models.workspaces import Workspace

OWN = "own"  # the workflow is the caller's workspace's
EDIT = "edit"
READ = "read"
PERMISSIONS = (READ, EDIT)
_RANK = {READ: 1, EDIT: 2, OWN: 3}
_NO_ID = uuid.UUID(int=0)


@dataclass(frozen=True)
class ShareInfo:
    """One share of a workflow as its share list shows it."""

    id: str
    workflow_id: str
    kind: str  # "user" or "workspace"
    target_id: str  # the user's or the workspace's id
    target: str  # the user's e-mail, or the workspace's short name
    target_name: str  # the user's or the workspace's display name
    permission: str
    granted_by: str
    granted_at: datetime


def allows(have: str | None, need: str) -> bool:
    """Whether reaching a workflow with `have` (own, edit, read; None = not at all) allows `need`."""
    return have is not None and _RANK.get(have, 0) >= _RANK[need]


def _key(value: str | uuid.UUID | None) -> uuid.UUID:
    return (value if isinstance(value, uuid.UUID) else parse_id(value)) or _NO_ID


def _recipient(workspace_id: str | uuid.UUID, user_id: str | uuid.UUID | None) -> ColumnElement[bool]:
    """Shares whose recipient is workspace `workspace_id` or user `user_id`."""
    to_workspace = col(WorkflowShare.shared_with_workspace_id) == _key(workspace_id)
    if user_id is None:
        return to_workspace
    return or_(to_workspace, col(WorkflowShare.shared_with_user_id) == _key(user_id))


def visible(workspace_id: str | uuid.UUID, user_id: str | uuid.UUID | None) -> ColumnElement[bool]:
    """A condition on Workflow: the caller in `workspace_id` (as user `user_id`) reaches it."""
    shared = select(WorkflowShare.workflow_id).where(_recipient(workspace_id, user_id))
    return or_(col(Workflow.workspace_id) == _key(workspace_id), col(Workflow.id).in_(shared))


def permission_of(
    session: Session, workflow: Workflow, *, workspace_id: str | uuid.UUID, user_id: str | uuid.UUID | None
) -> str | None:
    """How the caller in `workspace_id` (as user `user_id`) reaches `workflow`: own, edit, read or None."""
    if workflow.workspace_id == _key(workspace_id):
        return OWN
    found = session.exec(
        select(WorkflowShare.permission).where(
            WorkflowShare.workflow_id == workflow.id, _recipient(workspace_id, user_id)
        )
    ).all()
    return max(found, key=lambda p: _RANK.get(p, 0)) if found else None


def shared_permissions(
    session: Session,
    workflow_ids: list[uuid.UUID],
    *,
    workspace_id: str | uuid.UUID,
    user_id: str | uuid.UUID | None,
) -> dict[uuid.UUID, str]:
    """For the workflows among `workflow_ids` the caller reaches through a share: the best permission."""
    if not workflow_ids:
        return {}
    rows = session.exec(
        select(WorkflowShare.workflow_id, WorkflowShare.permission).where(
            col(WorkflowShare.workflow_id).in_(workflow_ids), _recipient(workspace_id, user_id)
        )
    ).all()
    best: dict[uuid.UUID, str] = {}
    for workflow_id, permission in rows:
        if _RANK.get(permission, 0) > _RANK.get(best.get(workflow_id, ""), 0):
            best[workflow_id] = permission
    return best


def _not_found(workflow_id: object) -> FlowloomError:
    return FlowloomError(f"workflow {workflow_id} not found", code=ErrorCode.WORKFLOW_NOT_FOUND)


def _refused(workflow_id: object, have: str, need: str) -> FlowloomError:
    if need == OWN:
        what = "only its own workspace may do this (delete it, manage its shares, run it, publish it)"
    else:
        what = f"this needs an {need} share"
    return FlowloomError(
        f"workflow {workflow_id} is shared with you to {have}; {what}", code=ErrorCode.FORBIDDEN
    )


def require(
    session: Session,
    workflow_id: uuid.UUID,
    *,
    workspace_id: str | uuid.UUID,
    user_id: str | uuid.UUID | None,
    need: str,
) -> Workflow:
    """The workflow when the caller reaches it with at least `need`; else workflow_not_found when
    they do not reach it at all (as for an unknown id), forbidden when they do through a share that
    does not allow `need`."""
    workflow = session.get(Workflow, workflow_id)
    have = permission_of(session, workflow, workspace_id=workspace_id, user_id=user_id) if workflow else None
    if workflow is None or have is None:
        raise _not_found(workflow_id)
    if not allows(have, need):
        raise _refused(workflow_id, have, need)
    return workflow


def _info(share: WorkflowShare, user: User | None, workspace: Workspace | None) -> ShareInfo:
    if user is not None:
        kind, target_id, target, name = "user", str(user.id), user.email, user.name
    else:
        kind, target_id = "workspace", str(share.shared_with_workspace_id)
        target, name = (workspace.slug, workspace.name) if workspace else ("", "")
    return ShareInfo(
        str(share.id), str(share.workflow_id), kind, target_id, target, name, share.permission,
        share.granted_by, share.granted_at,
    )  # fmt: skip


def list_shares(
    session: Session,
    workflow_id: uuid.UUID,
    *,
    workspace_id: str | uuid.UUID,
    user_id: str | uuid.UUID | None = None,
) -> list[ShareInfo]:
    """The shares of workflow `workflow_id`, oldest first; for its own workspace only (else
    workflow_not_found, or forbidden for a recipient: the caller in `workspace_id` as `user_id`)."""
    require(session, workflow_id, workspace_id=workspace_id, user_id=user_id, need=OWN)
    rows = session.exec(
        select(WorkflowShare, User, Workspace)
        .join(User, col(User.id) == col(WorkflowShare.shared_with_user_id), isouter=True)
        .join(Workspace, col(Workspace.id) == col(WorkflowShare.shared_with_workspace_id), isouter=True)
        .where(WorkflowShare.workflow_id == workflow_id)
        .order_by(col(WorkflowShare.granted_at), col(WorkflowShare.id))
    ).all()
    return [_info(share, user, workspace) for share, user, workspace in rows]


def _target_workspace(session: Session, name: str) -> Workspace:
    key = name.strip()
    found = session.exec(select(Workspace).where(col(Workspace.slug) == key.lower())).first()
    if found is None and parse_id(key) is not None:
        found = session.get(Workspace, parse_id(key))
    if found is None:
        raise FlowloomError(f"no workspace {key!r}", code=ErrorCode.SHARE_INVALID, field="workspace")
    return found


def findable(session: Session, sharer_id: str | uuid.UUID | None, user: User, *, find_anyone: bool) -> bool:
    """Whether a sharer may find `user` by e-mail: instance admins (`find_anyone`) anyone; everyone
    else only people who are a member of a workspace the sharer belongs to too (whose addresses the
    sharer can see in its member list already); no one when the sharer is unknown."""
    if find_anyone:
        return True
    sharer = session.get(User, _key(sharer_id)) if sharer_id else None
    if sharer is None:
        return False
    mine = {m.workspace_id for m in workspaces.memberships(session, sharer)}
    return any(m.workspace_id in mine for m in workspaces.memberships(session, user))


def _target_user(session: Session, email: str, sharer_id: str | uuid.UUID | None, find_anyone: bool) -> User:
    found = workspaces.find_user(session, email)
    # One answer for "no such account" and "an account you may not find": it reveals no address.
    if found is None or not findable(session, sharer_id, found, find_anyone=find_anyone):
        raise FlowloomError(
            f"no one you can share with has the e-mail {email.strip()!r} (only members of your"
            " workspaces, or share with their workspace)",
            code=ErrorCode.SHARE_INVALID,
            field="email",
        )
    return found


def _describe(info: ShareInfo) -> dict[str, Any]:
    return {"share_id": info.id, info.kind: info.target, "permission": info.permission}


def grant(
    session: Session,
    workflow_id: uuid.UUID,
    *,
    workspace_id: str | uuid.UUID,
    permission: str,
    email: str = "",
    workspace: str = "",
    who: audit.Who | None = None,
    granted_by_user_id: str | uuid.UUID | None = None,
    find_anyone: bool | None = None,
) -> ShareInfo:
    """Share the workflow (of the caller's `workspace_id`) with the user of `email` or the workspace
    `workspace` (short name or id) to `permission`; a second grant to the same recipient changes
    its permission (`granted_by_user_id`: the granter, a recipient of it is refused). A user is found
    by e-mail as `findable` says (`find_anyone`: the granter is an instance admin; None: as their
    user row says). Audited as `workflow.share`."""
    workflow = require(session, workflow_id, workspace_id=workspace_id, user_id=granted_by_user_id, need=OWN)
    if permission not in PERMISSIONS:
        raise FlowloomError(
            f"permission must be read or edit, not {permission!r}",
            code=ErrorCode.SHARE_INVALID,
            field="permission",
        )
    if bool(email.strip()) == bool(workspace.strip()):
        raise FlowloomError(
            "share with one user (email) or one workspace, not both or neither", code=ErrorCode.SHARE_INVALID
        )
    if find_anyone is None:
        granter = session.get(User, _key(granted_by_user_id)) if granted_by_user_id else None
        find_anyone = granter is not None and granter.is_active and granter.role == Role.ADMIN
    user = _target_user(session, email, granted_by_user_id, find_anyone) if email.strip() else None
    target_ws = _target_workspace(session, workspace) if user is None else None
    if target_ws is not None and target_ws.id == workflow.workspace_id:
        raise FlowloomError(
            f"workspace {target_ws.slug!r} owns this workflow already", code=ErrorCode.SHARE_INVALID,
            field="workspace",
        )  # fmt: skip
    where = (
        WorkflowShare.shared_with_user_id == user.id
        if user is not None
        else WorkflowShare.shared_with_workspace_id == target_ws.id  # type: ignore[union-attr]
    )
    share = session.exec(
        select(WorkflowShare).where(WorkflowShare.workflow_id == workflow_id, where).with_for_update()
    ).first()
    before = {"permission": share.permission} if share is not None else None
    if share is None:
        share = WorkflowShare(
            workflow_id=workflow_id,
            shared_with_user_id=user.id if user else None,
            shared_with_workspace_id=target_ws.id if target_ws else None,
        )
    by = who or audit.current()
    share.permission = permission
    share.granted_by = by.actor[:320]
    share.granted_by_user_id = parse_id(granted_by_user_id) if granted_by_user_id else None
    share.granted_at = utcnow()
    session.add(share)
    session.flush()
    info = _info(share, user, target_ws)
    audit.record(session, action="workflow.share", target_type="workflow", target_id=str(workflow_id),
                 who=who, details=_describe(info), before=before, after={"permission": permission})  # fmt: skip
    return info


def revoke(
    session: Session,
    workflow_id: uuid.UUID,
    share_id: uuid.UUID,
    *,
    workspace_id: str | uuid.UUID,
    user_id: str | uuid.UUID | None = None,
    who: audit.Who | None = None,
) -> ShareInfo:
    """Remove share `share_id` of the workflow (of the caller's `workspace_id`; `user_id` as for
    list_shares): from now on its recipient no longer reaches the workflow through it. Audited as
    `workflow.unshare`."""
    require(session, workflow_id, workspace_id=workspace_id, user_id=user_id, need=OWN)
    found = session.exec(
        select(WorkflowShare, User, Workspace)
        .join(User, col(User.id) == col(WorkflowShare.shared_with_user_id), isouter=True)
        .join(Workspace, col(Workspace.id) == col(WorkflowShare.shared_with_workspace_id), isouter=True)
        .where(WorkflowShare.id == share_id, WorkflowShare.workflow_id == workflow_id)
        .with_for_update(of=WorkflowShare)
    ).first()
    if found is None:
        raise FlowloomError(f"workflow {workflow_id} has no share {share_id}", code=ErrorCode.SHARE_NOT_FOUND)
    share, user, target_ws = found
    info = _info(share, user, target_ws)
    session.delete(share)
    session.flush()
    audit.record(session, action="workflow.unshare", target_type="workflow", target_id=str(workflow_id),
                 who=who, details=_describe(info), before={"permission": info.permission})  # fmt: skip
    return info

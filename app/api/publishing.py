"""/api/workflows/{workflow_id}/versions/{version}/submit|approve|reject|publish: four-eyes publishing.

The rules are engine/publishing.py's: editors submit, another editor than the author and the
submitter approves or rejects, an editor publishes (an approved version when the workspace
requires review). A wrong state is 409 (version_state), reviewing one's own version 403
(self_review). Each transition is audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlmodel import Session

from app import db
from app.api.callers import Caller
from app.api.schemas import ReviewPublic
from app.auth.principal import Principal
from engine import publishing, workflows
from engine.errors import ErrorCode, FlowloomError
from engine.ids import parse_id
from models.tables import WorkflowVersion

router = APIRouter(prefix="/workflows/{workflow_id}/versions/{version}", tags=["workflows"])

MAX_VERSION = 2**31 - 1
_RESPONSES = {
    403: {"description": "Below editor (forbidden), or reviewing one's own version (self_review)"},
    404: {"description": "No such workflow or version (workflow_not_found, version_not_found)"},
    409: {"description": "The version's state does not allow this step (version_state)"},
}


class ReviewDecision(BaseModel):
    """A reviewer's note with an approval or a rejection."""

    note: str = Field("", max_length=publishing.NOTE_MAX_LENGTH)


def _actor(principal: Principal) -> publishing.Actor:
    return publishing.Actor(user_id=parse_id(principal.user_id), role=principal.role)


def _transition(
    workflow_id: uuid.UUID,
    version: int,
    principal: Principal,
    step: Callable[[Session, publishing.Actor], WorkflowVersion],
) -> ReviewPublic:
    with db.db_session() as session:
        workflow = workflows.get_workflow(session, workflow_id)
        # A workflow of another workspace does not exist for this caller.
        if workflow is None or (
            principal.workspace_id and str(workflow.workspace_id) != principal.workspace_id
        ):
            raise FlowloomError(f"workflow {workflow_id} not found", code=ErrorCode.WORKFLOW_NOT_FOUND)
        step(session, _actor(principal))
        state = publishing.review_state(session, workflow_id, version)
        if state is None:  # changed in this very transaction
            raise FlowloomError(f"version {version} vanished", code=ErrorCode.FAILED)
        answer = ReviewPublic.model_validate(state, from_attributes=True)
    return answer


_Version = Path(ge=1, le=MAX_VERSION)


@router.post("/submit", response_model=ReviewPublic, responses=_RESPONSES)
def submit(workflow_id: uuid.UUID, principal: Caller, version: int = _Version) -> ReviewPublic:
    """Ask another editor to review this version (a draft, a rejected one, or an earlier published
    one to roll back to)."""
    return _transition(
        workflow_id, version, principal, lambda s, a: publishing.submit(s, workflow_id, version, a)
    )


@router.post("/approve", response_model=ReviewPublic, responses=_RESPONSES)
def approve(
    workflow_id: uuid.UUID, principal: Caller, body: ReviewDecision | None = None, version: int = _Version
) -> ReviewPublic:
    """Approve a version in review (not one you wrote or submitted)."""
    note = body.note if body else ""
    return _transition(
        workflow_id, version, principal, lambda s, a: publishing.approve(s, workflow_id, version, a, note)
    )


@router.post("/reject", response_model=ReviewPublic, responses=_RESPONSES)
def reject(
    workflow_id: uuid.UUID, principal: Caller, body: ReviewDecision | None = None, version: int = _Version
) -> ReviewPublic:
    """Send a version in review back with a note; it may be submitted again."""
    note = body.note if body else ""
    return _transition(
        workflow_id, version, principal, lambda s, a: publishing.reject(s, workflow_id, version, a, note)
    )


@router.post("/publish", response_model=ReviewPublic, responses=_RESPONSES)
def publish(workflow_id: uuid.UUID, principal: Caller, version: int = _Version) -> ReviewPublic:
    """Make this version the one triggers, forms, chats and operators run (rollback: an earlier one)."""
    return _transition(
        workflow_id, version, principal, lambda s, a: publishing.publish(s, workflow_id, version, a)
    )

"""/api/workflows/{id}/triggers and /api/triggers/{id}: list triggers, read one, pause, resume, and
rotate a form's or chat's access token.

Triggers are declared in a workflow's definition (`triggers:`) and saved with it; these routes
show their run-time state and change only that (pause, token). Roles: viewers read, operators
pause and resume, editors rotate tokens (docs/triggers.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app import db
from app.api.callers import Caller
from app.auth.principal import Principal
from app.problems import MEDIA_TYPE
from app.trigger_view import TriggerView, describe, page_path
from engine import triggers, workflows
from engine.errors import ErrorCode, FlowloomError

router = APIRouter(tags=["triggers"])


class TriggerPublic(BaseModel):
    """A trigger: its kind, key (its id in the definition), state, config and where it lives."""

    id: uuid.UUID = Field(description="the trigger's id: also in its webhook URL or page address")
    workflow_id: uuid.UUID
    workflow_name: str
    key: str = Field(description="the trigger's id inside the workflow definition")
    kind: Literal["webhook", "schedule", "kafka", "form", "chat"]
    active: bool = Field(description="in the workflow's latest version, enabled and with a valid config")
    paused: bool
    live: bool = Field(description="may fire now: active and not paused")
    config: dict[str, Any] = Field(description="the kind's config; secret names are left out")
    next_fire_at: datetime | None = Field(None, description="schedules: the next tick to fire (UTC)")
    last_fire_at: datetime | None = Field(None, description="schedules: the last tick fired (UTC)")
    next_fires: list[datetime] = Field(
        default_factory=list, description="live schedules: the next 5 fire times (UTC)"
    )
    webhook_path: str | None = Field(None, description="webhooks: the path deliveries are POSTed to")
    page_path: str | None = Field(None, description="forms and chats: the page's path")
    has_token: bool = Field(False, description="forms and chats: an access token has been issued")


class TriggerToken(BaseModel):
    """A new access token of a form or chat trigger: shown this once (only its hash is stored)."""

    trigger_id: uuid.UUID
    token: str = Field(description="the token itself: store it now; the previous one stopped working")
    page_path: str | None = None


def _problems(*pairs: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {code: {"description": text, "content": {MEDIA_TYPE: {}}} for code, text in pairs}


_SIGNED_IN = ((401, "sign_in_required: no session or API key"),)
_NO_TRIGGER = (404, "trigger_not_found: no trigger has this id")


def _public(view: TriggerView) -> TriggerPublic:
    return TriggerPublic.model_validate(view, from_attributes=True)


def _found(trigger_id: uuid.UUID, principal: Principal) -> triggers.TriggerRow:
    # A trigger of another workspace's workflow answers like an unknown id.
    row = triggers.get_now(trigger_id, database_url=db.database_url())
    if row is not None:
        with db.db_session() as session:
            if (
                workflows.get_workflow(
                    session, uuid.UUID(row.workflow_id), workspace_id=principal.workspace_id
                )
                is None
            ):
                row = None
    if row is None:
        raise FlowloomError(f"no trigger {trigger_id}", code=ErrorCode.TRIGGER_NOT_FOUND)
    return row


@router.get(
    "/workflows/{workflow_id}/triggers",
    response_model=list[TriggerPublic],
    responses=_problems(*_SIGNED_IN, (404, "workflow_not_found: no workflow has this id")),
)
def list_triggers(workflow_id: uuid.UUID, principal: Caller) -> list[TriggerPublic]:
    """The workflow's triggers by key, those no longer in its latest version too (inactive)."""
    with db.db_session() as session:
        if workflows.get_workflow(session, workflow_id, workspace_id=principal.workspace_id) is None:
            raise FlowloomError(f"workflow {workflow_id} not found", code=ErrorCode.WORKFLOW_NOT_FOUND)
        rows = triggers.list_for_workflow(session.connection(), workflow_id)
    return [_public(describe(row)) for row in rows]


@router.get(
    "/triggers/{trigger_id}", response_model=TriggerPublic, responses=_problems(*_SIGNED_IN, _NO_TRIGGER)
)
def get_trigger(trigger_id: uuid.UUID, principal: Caller) -> TriggerPublic:
    """One trigger with its state."""
    return _public(describe(_found(trigger_id, principal)))


def _set_paused(trigger_id: uuid.UUID, paused: bool, principal: Principal) -> triggers.TriggerRow:
    _found(trigger_id, principal)
    return triggers.set_paused(str(trigger_id), paused, actor=principal.actor, database_url=db.database_url())


_PAUSE_RESPONSES = _problems(*_SIGNED_IN, (403, "forbidden: this needs the operator role"), _NO_TRIGGER)


@router.post("/triggers/{trigger_id}/pause", response_model=TriggerPublic, responses=_PAUSE_RESPONSES)
def pause_trigger(trigger_id: uuid.UUID, principal: Caller) -> TriggerPublic:
    """Stop the trigger from firing (audited): webhooks answer 409, schedules skip their ticks."""
    return _public(describe(_set_paused(trigger_id, True, principal)))


@router.post("/triggers/{trigger_id}/resume", response_model=TriggerPublic, responses=_PAUSE_RESPONSES)
def resume_trigger(trigger_id: uuid.UUID, principal: Caller) -> TriggerPublic:
    """Let the trigger fire again (audited); a schedule fires from its next tick on, without
    catching up the ticks of the pause."""
    return _public(describe(_set_paused(trigger_id, False, principal)))


@router.post(
    "/triggers/{trigger_id}/token",
    response_model=TriggerToken,
    responses=_problems(
        *_SIGNED_IN,
        (403, "forbidden: this needs the editor role"),
        (404, "trigger_not_found: no form or chat trigger has this id"),
    ),  # fmt: skip
)
def rotate_token(trigger_id: uuid.UUID, principal: Caller) -> TriggerToken:
    """A new access token for a public form or chat page (audited); the old one stops working."""
    row = _found(trigger_id, principal)
    token = triggers.rotate_token(row.id, actor=principal.actor, database_url=db.database_url())
    return TriggerToken(trigger_id=trigger_id, token=token, page_path=page_path(row.kind, row.id))

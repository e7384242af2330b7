"""/api/runs and /api/approvals: start, watch and cancel runs; decide human approvals."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.api.callers import Caller
from app.auth.policy import Role, allows
from engine.approvals import may_decide
from engine.definition import WorkflowDefinition
from engine.errors import DefinitionError, ValidationError
from engine.parse import parse_dict
from engine.runs import (
    ApprovalError,
    cancel_run,
    decide_approval,
    get_run,
    saved_version,
    start_run,
)
from engine.settings import get_settings
from models.db import get_engine

router = APIRouter(tags=["runs"])


# The refusal an operator (or operator key) gets for an inline definition: a definition carries
# per-node powers (egress exceptions, tool.sql writes), which only editors may grant.
INLINE_NEEDS_EDITOR = (
    "running an inline definition needs the editor role; operators run saved workflows (workflow_id)"
)


class RunCreate(BaseModel):
    """Start a run of a saved workflow (its latest or a given version) or, for editors, of an inline definition."""

    workflow_id: uuid.UUID | None = None
    version: int | None = Field(None, ge=1, description="a saved version of workflow_id (default: latest)")
    definition: dict[str, Any] | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)


class StepPublic(BaseModel):
    id: uuid.UUID
    node_id: str
    node_type: str
    visit: int
    status: str
    attempt: int
    inputs: Any = None
    outputs: Any = None
    error: str | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunPublic(BaseModel):
    id: uuid.UUID
    status: str
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    error: str | None = None
    started_by: str = ""  # "user:<id>", "api_key:<id>", "cli:<os user>" or "system"
    started_via: str = ""  # ui | api | cli | trigger
    steps: list[StepPublic] = Field(default_factory=list)


class ApprovalPublic(BaseModel):
    id: uuid.UUID
    run_id: uuid.UUID
    node_id: str
    status: str
    title: str
    body: str
    request: dict[str, Any] | None = None
    deadline: datetime | None = None
    created_at: datetime


class Decision(BaseModel):
    """A human's answer: the action (a branch of the approval node), form values and a comment."""

    action: str = Field(min_length=1, max_length=50)
    form: dict[str, Any] = Field(default_factory=dict)
    comment: str = Field("", max_length=5000)


def _invalid(exc: DefinitionError | ValidationError) -> HTTPException:
    if isinstance(exc, ValidationError):
        detail: Any = [i.to_dict() for i in exc.issues]
    else:
        detail = str(exc)
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


def _definition_for(body: RunCreate, principal: Caller) -> tuple[WorkflowDefinition, str | None, str | None]:
    """What to run: an editor's inline definition, or a saved version (the only thing operators run)."""
    if body.definition is not None:
        if body.workflow_id is not None or body.version is not None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail="give either workflow_id (with an optional version) or definition, not both",
            )
        # Checked before the definition is even parsed: an operator's graph never reaches the engine.
        if not allows(principal.role, Role.EDITOR):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=INLINE_NEEDS_EDITOR)
        return parse_dict(body.definition), None, None
    if body.workflow_id is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="give workflow_id (a saved workflow) or definition"
        )
    saved = saved_version(body.workflow_id, body.version)
    if saved is None:
        which = f"version {body.version}" if body.version is not None else "a saved version"
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"workflow {body.workflow_id} has no {which}")
    return saved.definition, saved.workflow_id, saved.version_id


@router.post(
    "/runs",
    response_model=RunPublic,
    status_code=status.HTTP_201_CREATED,
    responses={403: {"description": "An inline definition from a caller below editor"}},
)
def create_run(body: RunCreate, principal: Caller) -> RunPublic:
    """Start a run; the definition is validated and the inputs checked against its schema."""
    try:
        defn, workflow_id, version_id = _definition_for(body, principal)
        run_id = start_run(
            defn, body.inputs, workflow_id=workflow_id, version_id=version_id,
            created_by=principal.user_id, started_by=principal.started_by, started_via="api",
            actor=principal.actor,
        )  # fmt: skip
    except (DefinitionError, ValidationError) as exc:
        raise _invalid(exc) from exc
    return read_run(uuid.UUID(run_id))


@router.get("/runs/{run_id}", response_model=RunPublic, responses={404: {"description": "No such run"}})
def read_run(run_id: uuid.UUID) -> RunPublic:
    """A run with its steps."""
    view = get_run(str(run_id))
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"run {run_id} not found")
    return RunPublic(
        id=view.id,
        status=view.status,
        inputs=view.inputs,
        outputs=view.outputs,
        error=view.error,
        started_by=view.started_by,
        started_via=view.started_via,
        steps=[StepPublic(**s) for s in view.steps],
    )


@router.post("/runs/{run_id}/cancel", response_model=RunPublic)
def cancel(run_id: uuid.UUID, principal: Caller) -> RunPublic:
    """Cancel a run that is still going (409 if it already ended)."""
    current = read_run(run_id)
    if not cancel_run(str(run_id), cancelled_by=principal.started_by, via="api", actor=principal.actor):
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"run {run_id} already {current.status}")
    return read_run(run_id)


@router.get("/approvals", response_model=list[ApprovalPublic])
def list_approvals(
    state: str = Query(
        "pending", alias="status", pattern="^(pending|approved|rejected|decided|expired|cancelled)$"
    ),
    limit: int = Query(100, ge=1, le=500),
    *,
    principal: Caller,
) -> list[ApprovalPublic]:
    """Approvals in a given status that the caller may decide (admins see all), newest first."""
    approver = principal.approver
    with get_engine(get_settings().database_url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, run_id, node_id, status, title, body, request, deadline, created_at FROM approvals"
                " WHERE status = :s ORDER BY created_at DESC LIMIT :n"
            ),
            {"s": state, "n": limit},
        ).mappings()
        return [
            ApprovalPublic(**r)
            for r in rows
            if principal.role == "admin" or may_decide(r["request"] or {}, approver)
        ]


@router.post(
    "/approvals/{approval_id}/decision",
    responses={
        403: {"description": "You are not among the approvers"},
        409: {"description": "Already decided, already voted or expired"},
    },
)
def decide(approval_id: uuid.UUID, body: Decision, principal: Caller) -> dict[str, Any]:
    """Vote on an approval; once the quorum agrees, the run resumes on the workers with that branch."""
    approver = principal.approver
    try:
        outcome = decide_approval(
            str(approval_id), approver, action=body.action, form=body.form, comment=body.comment
        )
    except ApprovalError as exc:
        code = {
            "not_found": status.HTTP_404_NOT_FOUND,
            "invalid": status.HTTP_422_UNPROCESSABLE_CONTENT,
            "forbidden": status.HTTP_403_FORBIDDEN,
        }.get(exc.kind, status.HTTP_409_CONFLICT)
        raise HTTPException(code, detail=str(exc)) from exc
    return {
        "status": "decided" if outcome.decided else "pending",
        "approval_status": outcome.status,
        "votes": outcome.votes,
        "quorum": outcome.quorum,
        "outputs": outcome.outputs,
    }

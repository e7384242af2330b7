"""/api/runs, /api/workflows/{id}/runs and /api/approvals: start (once per Idempotency-Key), watch and
cancel runs; decide human approvals."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.callers import Caller
from app.api.schemas import Definition
from app.auth.policy import Role, allows
from app.auth.principal import Principal
from engine import publishing
from engine.approvals import ApprovalSummary, list_decidable
from engine.approvals import decide as decide_approval
from engine.definition import WorkflowDefinition
from engine.errors import ErrorCode, FlowloomError
from engine.idempotency import HEADER as IDEMPOTENCY_HEADER
from engine.idempotency import REPLAYED_HEADER, start_once
from engine.parse import parse_dict
from engine.runs import StartOptions, cancel_run, get_run, start_run, start_run_in
from engine.workflows import saved_version

router = APIRouter(tags=["runs"])

MAX_VERSION = 2**31 - 1  # versions are INTEGERs: a larger number names no version


# The refusal an operator (or operator key) gets for an inline definition: a definition carries
# per-node powers (egress exceptions, tool.sql writes), which only editors may grant.
INLINE_NEEDS_EDITOR = (
    "running an inline definition needs the editor role; operators run saved workflows (workflow_id)"
)


class RunCreate(BaseModel):
    """Start a run of a saved workflow (its latest or a given version) or, for editors, of an inline definition."""

    workflow_id: uuid.UUID | None = None
    version: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="a saved version of workflow_id (default: latest)"
    )
    definition: Definition | None = Field(None, description="an inline definition (editors only)")
    inputs: dict[str, Any] = Field(default_factory=dict)


class WorkflowRunCreate(BaseModel):
    """The inputs of a run of a saved workflow (the version is the `version` query parameter)."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        description="Up to 255 printable ASCII characters. The same key with the same body returns the "
        "run the first request started (for 24 hours, header Idempotent-Replayed: true); the same key "
        "with another body is a 422 idempotency_mismatch. Keys are per caller (user or API key).",
    ),
]
_STARTED = {
    "description": "The run, started now or, for a replayed Idempotency-Key, by the first request",
    "headers": {
        REPLAYED_HEADER: {
            "description": '"true" when an earlier request with this Idempotency-Key started the run',
            "schema": {"type": "string", "enum": ["true"]},
        }
    },
}
_REFUSED = {"description": "Invalid definition, inputs or Idempotency-Key, or a key reused with another body"}


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
    metrics: dict[str, Any] | None = Field(
        None, description="what the step measured, e.g. duration_ms, model tokens (null before it ends)"
    )
    reused_from: uuid.UUID | None = Field(
        None, description="a re-run's copy of this step of the source run: reused, not executed again"
    )
    child_run_id: uuid.UUID | None = Field(
        None,
        description="the child run a sub-workflow step started and waits for (its parent_step_id is this step)",
    )


class RunPublic(BaseModel):
    id: uuid.UUID
    status: str
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    error: str | None = None
    started_by: str = ""  # "user:<id>", "api_key:<id>", "cli:<os user>" or "system"
    started_via: str = ""  # ui | api | cli | trigger
    workflow_id: uuid.UUID | None = Field(None, description="the saved workflow it ran (null for a draft)")
    version: int | None = Field(None, description="the workflow version it ran (null for a draft)")
    trigger_id: uuid.UUID | None = Field(None, description="the trigger that started it, if one did")
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    source_run_id: uuid.UUID | None = Field(None, description="the run this one re-runs or forks")
    source_kind: Literal["", "rerun", "fork"] = Field(
        "", description="rerun (from a step) or fork (new inputs)"
    )
    source_node_id: str | None = Field(None, description="the node a re-run started again from")
    parent_run_id: uuid.UUID | None = Field(
        None, description="a child run's parent: the run whose step started it"
    )
    parent_step_id: uuid.UUID | None = Field(
        None, description="a child run's parent step (its child_run_id is this run)"
    )
    steps: list[StepPublic] = Field(default_factory=list)


class DecisionOutcome(BaseModel):
    """What a vote did: it decided the approval (and the run resumes), or it counts towards the quorum."""

    status: Literal["decided", "pending"] = Field(description="decided once the quorum agrees")
    approval_status: str = Field(description="the approval's status now: pending, approved, rejected, ...")
    votes: int = Field(description="votes cast so far")
    quorum: int = Field(description="votes needed to decide")
    outputs: dict[str, Any] | None = Field(description="the approval step's outputs once decided")


class Decision(BaseModel):
    """A human's answer: the action (a branch of the approval node), form values and a comment."""

    action: str = Field(min_length=1, max_length=50)
    form: dict[str, Any] = Field(default_factory=dict)
    comment: str = Field("", max_length=5000)


def _definition_for(body: RunCreate, principal: Caller) -> tuple[WorkflowDefinition, str | None, str | None]:
    """What to run: an editor's inline definition, or a saved version (the only thing operators run)."""
    if body.definition is not None:
        if body.workflow_id is not None or body.version is not None:
            raise FlowloomError(
                "give either workflow_id (with an optional version) or definition, not both",
                code=ErrorCode.REQUEST_INVALID,
            )
        # Checked before the definition is even parsed: an operator's graph never reaches the engine.
        if not allows(principal.role, Role.EDITOR):
            raise FlowloomError(INLINE_NEEDS_EDITOR, code=ErrorCode.INLINE_NEEDS_EDITOR)
        return parse_dict(body.definition), None, None
    if body.workflow_id is None:
        raise FlowloomError(
            "give workflow_id (a saved workflow) or definition", code=ErrorCode.REQUEST_INVALID
        )
    return _saved(body.workflow_id, body.version, principal.workspace_id, role=principal.role)


def _saved(
    workflow_id: uuid.UUID, version: int | None, workspace_id: str, *, role: str | None = None
) -> tuple[WorkflowDefinition, str | None, str | None]:
    # A workflow of another workspace has no saved version for this caller: the same 404.
    saved = saved_version(workflow_id, version, workspace_id=workspace_id)
    if saved is None:
        which = f"version {version}" if version is not None else "a saved version"
        raise FlowloomError(f"workflow {workflow_id} has no {which}", code=ErrorCode.VERSION_NOT_FOUND)
    # Below editor, only the published version (no version given means it): engine/publishing.py.
    publishing.refuse_unpublished(workflow_id, saved.version, role)
    return saved.definition, saved.workflow_id, saved.version_id


def _start(
    defn: WorkflowDefinition,
    inputs: dict[str, Any],
    options: StartOptions,
    *,
    principal: Principal,
    key: str | None,
    target: str,
    body: Any,
    response: Response,
) -> str:
    """Start the run, or with an Idempotency-Key find the run an earlier request with it started."""
    if key is None:
        return start_run(defn, inputs, **options)
    started = start_once(
        principal.started_by, key, target, body, lambda conn: start_run_in(conn, defn, inputs, **options)
    )
    if started.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return started.run_id


def _options(principal: Principal, workflow_id: str | None, version_id: str | None) -> StartOptions:
    return StartOptions(
        workflow_id=workflow_id, version_id=version_id, created_by=principal.user_id,
        started_by=principal.started_by, started_via="api", actor=principal.actor,
        workspace_id=principal.workspace_id or None,
    )  # fmt: skip


@router.post(
    "/runs",
    response_model=RunPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        201: _STARTED,
        403: {"description": "An inline definition from a caller below editor"},
        404: {"description": "No such workflow version"},
        422: _REFUSED,
    },
)
def create_run(
    body: RunCreate, principal: Caller, response: Response, idempotency_key: IdempotencyKey = None
) -> RunPublic:
    """Start a run; the definition is validated and the inputs checked against its schema (422 issues)."""
    defn, workflow_id, version_id = _definition_for(body, principal)
    run_id = _start(
        defn, body.inputs, _options(principal, workflow_id, version_id), principal=principal,
        key=idempotency_key, target="POST /api/runs", body=body.model_dump(mode="json"), response=response,
    )  # fmt: skip
    return _read(run_id, principal.workspace_id)


@router.post(
    "/workflows/{workflow_id}/runs",
    response_model=RunPublic,
    status_code=status.HTTP_201_CREATED,
    responses={201: _STARTED, 404: {"description": "No such workflow, or it has no such saved version"}, 422: _REFUSED},
)  # fmt: skip
def run_workflow(
    workflow_id: uuid.UUID,
    principal: Caller,
    response: Response,
    body: Annotated[WorkflowRunCreate | None, Body()] = None,
    version: int | None = Query(
        None, ge=1, le=MAX_VERSION, description="a saved version (default: the published one)"
    ),
    idempotency_key: IdempotencyKey = None,
) -> RunPublic:
    """Run a saved workflow: its published version, or `version` (below editor only the published one
    when the workspace requires review); the inputs are checked against its schema."""
    body = body or WorkflowRunCreate()
    defn, wf_id, version_id = _saved(workflow_id, version, principal.workspace_id, role=principal.role)
    run_id = _start(
        defn, body.inputs, _options(principal, wf_id, version_id), principal=principal, key=idempotency_key,
        target=f"POST /api/workflows/{workflow_id}/runs", body={"version": version, **body.model_dump(mode="json")},
        response=response,
    )  # fmt: skip
    return _read(run_id, principal.workspace_id)


@router.get("/runs/{run_id}", response_model=RunPublic, responses={404: {"description": "No such run"}})
def read_run(run_id: uuid.UUID, principal: Caller) -> RunPublic:
    """A run with its steps."""
    return _read(str(run_id), principal.workspace_id)


def run_not_found(run_id: object) -> FlowloomError:
    """The answer for an unknown run and for a run of another workspace alike."""
    return FlowloomError(f"run {run_id} not found", code=ErrorCode.RUN_NOT_FOUND)


def _read(run_id: str, workspace_id: str) -> RunPublic:
    view = get_run(run_id, workspace_id=workspace_id)
    if view is None:
        raise run_not_found(run_id)
    return RunPublic(
        id=view.id,
        status=view.status,
        inputs=view.inputs,
        outputs=view.outputs,
        error=view.error,
        started_by=view.started_by,
        started_via=view.started_via,
        workflow_id=view.workflow_id,
        version=view.version,
        trigger_id=view.trigger_id,
        created_at=view.created_at,
        started_at=view.started_at,
        finished_at=view.finished_at,
        source_run_id=view.source_run_id,
        source_kind=view.source_kind,
        source_node_id=view.source_node_id,
        parent_run_id=view.parent_run_id,
        parent_step_id=view.parent_step_id,
        steps=[StepPublic(**s) for s in view.steps],
    )


@router.post(
    "/runs/{run_id}/cancel",
    response_model=RunPublic,
    responses={
        404: {"description": "No such run"},
        409: {"description": "The run already ended (run_ended)"},
    },
)
def cancel(run_id: uuid.UUID, principal: Caller) -> RunPublic:
    """Cancel a run that is still going (409 if it already ended)."""
    current = read_run(run_id, principal)
    if not cancel_run(
        str(run_id), workspace_id=principal.workspace_id, cancelled_by=principal.started_by, via="api",
        actor=principal.actor,
    ):  # fmt: skip
        raise FlowloomError(f"run {run_id} already {current.status}", code=ErrorCode.RUN_ENDED)
    return read_run(run_id, principal)


@router.get("/approvals", response_model=list[ApprovalSummary])
def list_approvals(
    state: str = Query(
        "pending", alias="status", pattern="^(pending|approved|rejected|decided|expired|cancelled)$"
    ),
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0),
    *,
    principal: Caller,
) -> list[ApprovalSummary]:
    """Approvals in a given status that the caller may decide, newest first (the Inbox's rule)."""
    return list_decidable(principal.approver, state, limit, offset, workspaces=principal.workspace_roles)


@router.post(
    "/approvals/{approval_id}/decision",
    response_model=DecisionOutcome,
    responses={
        403: {"description": "You are not among the approvers"},
        409: {"description": "Already decided, already voted or expired"},
    },
)
def decide(approval_id: uuid.UUID, body: Decision, principal: Caller) -> DecisionOutcome:
    """Vote on an approval; once the quorum agrees, the run resumes on the workers with that branch."""
    # An ApprovalError answers with its code's status: 404, 403, 422 or 409 (see app/problems.py).
    outcome = decide_approval(
        str(approval_id), principal.approver, action=body.action, form=body.form, comment=body.comment,
        workspaces=principal.workspace_roles,
    )  # fmt: skip
    return DecisionOutcome(
        status="decided" if outcome.decided else "pending", approval_status=outcome.status,
        votes=outcome.votes, quorum=outcome.quorum, outputs=outcome.outputs,
    )  # fmt: skip

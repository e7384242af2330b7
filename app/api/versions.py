"""/api/workflows/{workflow_id}/versions: save a definition as the next version, list versions, read one.

Every save is a new version (nothing is overwritten); runs start from a saved version
(app/api/runs.py). A definition must parse to be saved; one with validation errors is saved too,
as the editor saves drafts, and the answer carries what validation found.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Path, Query, status
from sqlmodel import Session

from app import db
from app.api.callers import Caller
from app.api.schemas import (
    IssuePublic,
    ValidationPublic,
    VersionCreate,
    VersionPage,
    VersionPublic,
    VersionSaved,
    VersionSummary,
)
from app.auth.principal import Principal
from engine import shares, workflows
from engine.errors import ErrorCode, FlowloomError
from engine.ids import parse_id
from engine.parse import parse_dict
from engine.validate import ValidationReport, validate
from models.tables import Workflow, WorkflowVersion

router = APIRouter(prefix="/workflows/{workflow_id}/versions", tags=["workflows"])

MAX_PAGE = 200
MAX_VERSION = 2**31 - 1  # the column is an INTEGER: larger numbers name no version
_NO_WORKFLOW = {404: {"description": "No workflow has this id (workflow_not_found)"}}


def report_public(report: ValidationReport) -> ValidationPublic:
    """A validation report as the API returns it."""
    return ValidationPublic(
        ok=report.ok,
        issues=[IssuePublic(**issue.to_dict()) for issue in report.issues],
        plan=report.plan.phases if report.plan else None,
    )


def _no_workflow(workflow_id: uuid.UUID) -> FlowloomError:
    return FlowloomError(f"workflow {workflow_id} not found", code=ErrorCode.WORKFLOW_NOT_FOUND)


def _readable(session: Session, workflow_id: uuid.UUID, principal: Principal) -> Workflow | None:
    """The workflow when the caller's workspace owns it or it is shared with them (engine/shares.py)."""
    return workflows.get_workflow(
        session, workflow_id, workspace_id=principal.workspace_id, user_id=principal.user_id, need=shares.READ
    )


def _public(workflow_id: uuid.UUID, row: WorkflowVersion) -> VersionPublic:
    definition = dict(row.definition)
    return VersionPublic(
        workflow_id=workflow_id, version=row.version, note=row.note, created_at=row.created_at,
        nodes=len(definition.get("nodes") or []), definition=definition, status=row.status,
    )  # fmt: skip


@router.post(
    "",
    response_model=VersionSaved,
    status_code=status.HTTP_201_CREATED,
    responses={
        **_NO_WORKFLOW,
        403: {"description": "Shared with you to read only (forbidden)"},
        422: {"description": "The definition does not parse (definition_invalid, with the place)"},
    },
)
def save_version(workflow_id: uuid.UUID, body: VersionCreate, principal: Caller) -> VersionSaved:
    """Save `definition` as the workflow's next version (numbered 1, 2, ...; its `name` becomes the
    workflow's, its `version` the new number) and make its triggers the live ones."""
    with db.db_session() as session:
        # Its own workspace, or an edit share (a read share: 403); validated in the caller's workspace.
        workflow = shares.require(
            session, workflow_id, workspace_id=principal.workspace_id, user_id=principal.user_id,
            need=shares.EDIT,
        )  # fmt: skip
        defn = parse_dict({**body.definition, "name": workflow.name})
        number, _ = workflows.save_version(
            session, workflow_id, defn.to_dict(), body.note, created_by=parse_id(principal.user_id)
        )
        row = workflows.read_version(session, workflow_id, number)
        if row is None:  # it was saved in this very transaction
            raise FlowloomError(f"version {number} vanished while saving", code=ErrorCode.FAILED)
        saved = _public(workflow_id, row)
    return VersionSaved(
        **saved.model_dump(),
        validation=report_public(
            validate(defn, workflow_id=str(workflow_id), workspace_id=principal.workspace_id)
        ),
    )


@router.get("", response_model=VersionPage, responses=_NO_WORKFLOW)
def list_versions(
    workflow_id: uuid.UUID,
    principal: Caller,
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    before: int | None = Query(
        None,
        ge=1,
        le=MAX_VERSION,
        description="only versions numbered below this (next_before of the previous page)",
    ),
) -> VersionPage:
    """The workflow's saved versions, newest first, without their definitions."""
    with db.db_session() as session:
        if _readable(session, workflow_id, principal) is None:
            raise _no_workflow(workflow_id)
        found = workflows.list_versions(session, workflow_id, limit + 1, before=before)
    page = found[:limit]
    return VersionPage(
        versions=[
            VersionSummary(
                version=v.version, note=v.note, nodes=v.nodes, created_at=v.created_at, status=v.status
            )
            for v in page
        ],
        next_before=page[-1].version if len(found) > limit else None,
    )


@router.get(
    "/{version}",
    response_model=VersionPublic,
    responses={404: {"description": "No such workflow, or it has no such version (version_not_found)"}},
)
def read_version(
    workflow_id: uuid.UUID, principal: Caller, version: int = Path(ge=1, le=MAX_VERSION)
) -> VersionPublic:
    """One saved version with its definition."""
    with db.db_session() as session:
        if _readable(session, workflow_id, principal) is None:
            raise _no_workflow(workflow_id)
        row = workflows.read_version(session, workflow_id, version)
        if row is None:
            raise FlowloomError(
                f"workflow {workflow_id} has no version {version}", code=ErrorCode.VERSION_NOT_FOUND
            )
        return _public(workflow_id, row)

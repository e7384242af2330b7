"""/api/workflows: list, create (optionally with version 1), read, rename and delete workflows.

Versions are app/api/versions.py; running one is app/api/runs.py.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response, status
from sqlmodel import Session

from app import db
from app.api.callers import Caller
from app.api.schemas import WorkflowCreate, WorkflowPublic, WorkflowUpdate
from app.auth.principal import Principal
from engine import dispatch, shares, workflows, workspace_limits
from engine.errors import ErrorCode, FlowloomError
from engine.parse import parse_dict
from engine.run_state import Dispatch
from models.tables import Workflow

router = APIRouter(prefix="/workflows", tags=["workflows"])

_NOT_FOUND = {404: {"description": "No workflow has this id"}}
_SHARED = {
    **_NOT_FOUND,
    403: {"description": "Shared with you, but the share does not allow this (forbidden)"},
}

# Each route opens its own session and commits before it returns, so a 201 or 204 means the
# change is in the database (a yield dependency may close after the response is sent).


def _not_found(workflow_id: uuid.UUID) -> FlowloomError:
    return FlowloomError(f"workflow {workflow_id} not found", code=ErrorCode.WORKFLOW_NOT_FOUND)


def _public(workflow: Workflow, share_permission: str | None = None) -> WorkflowPublic:
    found = WorkflowPublic.model_validate(workflow)
    if share_permission is None:
        return found
    return found.model_copy(update={"shared_with_you": True, "share_permission": share_permission})


_LIMIT = "max_concurrent_runs"


def _reach(session: Session, workflow_id: uuid.UUID, principal: Principal, need: str) -> Workflow:
    """The workflow when the caller reaches it with `need` (engine/shares.py): 404 when they do
    not reach it at all, 403 when a share does not allow `need`."""
    return shares.require(
        session, workflow_id, workspace_id=principal.workspace_id, user_id=principal.user_id, need=need
    )


@router.get("", response_model=list[WorkflowPublic])
def list_workflows(
    principal: Caller,
    search: str = Query("", max_length=200, description="part of the name, case-insensitive"),
    limit: int = Query(100, ge=1, le=500),
) -> list[WorkflowPublic]:
    """The current workspace's workflows and those shared with it or with you (marked
    `shared_with_you`), most recently updated first."""
    workspace_id, user_id = principal.workspace_id, principal.user_id
    with db.db_session() as session:
        found = workflows.list_workflows(
            session, search, limit, workspace_id=workspace_id, user_id=user_id, shared=True
        )
        others = [w.id for w in found if str(w.workspace_id) != workspace_id]
        shared = shares.shared_permissions(session, others, workspace_id=workspace_id, user_id=user_id)
        return [_public(w, shared.get(w.id)) for w in found]


@router.post(
    "",
    response_model=WorkflowPublic,
    status_code=status.HTTP_201_CREATED,
    responses={422: {"description": "A bad name, or a definition that does not parse (definition_invalid)"}},
)
def create_workflow(body: WorkflowCreate, principal: Caller) -> WorkflowPublic:
    """Create a workflow in the current workspace: empty (no version yet), or with `definition`
    saved as version 1."""
    data = None
    if body.definition is not None:  # parsed first: a 422 says where, and nothing is created
        data = parse_dict({**body.definition, "name": body.name}).to_dict()
    with db.db_session() as session:
        workflow = workflows.create_workflow(
            session, body.name, body.description, workspace_id=principal.workspace_id
        )
        if data is not None:  # save_version numbers it, mirrors its triggers and stamps "version"
            workflows.save_version(session, workflow.id, data, body.note or "created")
        created = WorkflowPublic.model_validate(workflow)
    return created


@router.get("/{workflow_id}", response_model=WorkflowPublic, responses=_NOT_FOUND)
def get_workflow(workflow_id: uuid.UUID, principal: Caller) -> WorkflowPublic:
    """One workflow (also one shared with you or your workspace)."""
    with db.db_session() as session:
        workflow = _reach(session, workflow_id, principal, shares.READ)
        have = shares.permission_of(
            session, workflow, workspace_id=principal.workspace_id, user_id=principal.user_id
        )
        return _public(workflow, None if have == shares.OWN else have)


@router.patch("/{workflow_id}", response_model=WorkflowPublic, responses=_SHARED)
def update_workflow(workflow_id: uuid.UUID, body: WorkflowUpdate, principal: Caller) -> WorkflowPublic:
    """Rename a workflow or change its description (its versions stay as they are); an edit share
    allows it too, a read share does not (403)."""
    admitted: list[Dispatch] = []
    with db.db_session() as session:
        _reach(
            session, workflow_id, principal, shares.OWN if _LIMIT in body.model_fields_set else shares.EDIT
        )
        if _LIMIT in body.model_fields_set:
            admitted = workspace_limits.set_workflow_limit(
                session.connection(),
                workflow_id,
                body.max_concurrent_runs,
                actor=principal.actor,
                source="api",
            )
            session.expire_all()  # the row changed under the ORM's copy
        workflow = workflows.update_workflow(
            session,
            workflow_id,
            name=body.name,
            description=body.description,
            workspace_id=principal.workspace_id,
            user_id=principal.user_id,
            need=shares.EDIT,
        )
        if workflow is None:
            raise _not_found(workflow_id)
        answer = WorkflowPublic.model_validate(workflow)
    dispatch.send(admitted)  # after the commit: runs a looser limit let start
    return answer


@router.delete("/{workflow_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_SHARED)
def delete_workflow(workflow_id: uuid.UUID, principal: Caller) -> Response:
    """Delete a workflow with its versions and runs (its own workspace only: a share never allows it, 403)."""
    with db.db_session() as session:
        _reach(session, workflow_id, principal, shares.OWN)
        deleted = workflows.delete_workflow(session, workflow_id, workspace_id=principal.workspace_id)
    if not deleted:
        raise _not_found(workflow_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""/api/workflows: list, create (optionally with version 1), read, rename and delete workflows.

Versions are app/api/versions.py; running one is app/api/runs.py.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response, status

from app import db
from app.api.callers import Caller
from app.api.schemas import WorkflowCreate, WorkflowPublic, WorkflowUpdate
from engine import workflows
from engine.errors import ErrorCode, FlowloomError
from engine.parse import parse_dict

router = APIRouter(prefix="/workflows", tags=["workflows"])

_NOT_FOUND = {404: {"description": "No workflow has this id"}}

# Each route opens its own session and commits before it returns, so a 201 or 204 means the
# change is in the database (a yield dependency may close after the response is sent).


def _not_found(workflow_id: uuid.UUID) -> FlowloomError:
    return FlowloomError(f"workflow {workflow_id} not found", code=ErrorCode.WORKFLOW_NOT_FOUND)


@router.get("", response_model=list[WorkflowPublic])
def list_workflows(
    principal: Caller,
    search: str = Query("", max_length=200, description="part of the name, case-insensitive"),
    limit: int = Query(100, ge=1, le=500),
) -> list[WorkflowPublic]:
    """The current workspace's workflows, most recently updated first."""
    with db.db_session() as session:
        found = workflows.list_workflows(session, search, limit, workspace_id=principal.workspace_id)
        return [WorkflowPublic.model_validate(w) for w in found]


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
    """One workflow."""
    with db.db_session() as session:
        workflow = workflows.get_workflow(session, workflow_id, workspace_id=principal.workspace_id)
        if workflow is None:
            raise _not_found(workflow_id)
        return WorkflowPublic.model_validate(workflow)


@router.patch("/{workflow_id}", response_model=WorkflowPublic, responses=_NOT_FOUND)
def update_workflow(workflow_id: uuid.UUID, body: WorkflowUpdate, principal: Caller) -> WorkflowPublic:
    """Rename a workflow or change its description (its versions stay as they are)."""
    with db.db_session() as session:
        workflow = workflows.update_workflow(
            session,
            workflow_id,
            name=body.name,
            description=body.description,
            workspace_id=principal.workspace_id,
        )
        if workflow is None:
            raise _not_found(workflow_id)
        return WorkflowPublic.model_validate(workflow)


@router.delete("/{workflow_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
def delete_workflow(workflow_id: uuid.UUID, principal: Caller) -> Response:
    """Delete a workflow with its versions and runs."""
    with db.db_session() as session:
        deleted = workflows.delete_workflow(session, workflow_id, workspace_id=principal.workspace_id)
    if not deleted:
        raise _not_found(workflow_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

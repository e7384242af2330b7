"""/api/workflows: list, create, read and delete workflows."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response, status

from app import db
from app.api.schemas import WorkflowCreate, WorkflowPublic
from engine import workflows
from engine.errors import ErrorCode, FlowloomError

router = APIRouter(prefix="/workflows", tags=["workflows"])

_NOT_FOUND = {404: {"description": "No workflow has this id"}}

# Each route opens its own session and commits before it returns, so a 201 or 204 means the
# change is in the database (a yield dependency may close after the response is sent).


def _not_found(workflow_id: uuid.UUID) -> FlowloomError:
    return FlowloomError(f"workflow {workflow_id} not found", code=ErrorCode.WORKFLOW_NOT_FOUND)


@router.get("", response_model=list[WorkflowPublic])
def list_workflows(
    search: str = Query("", max_length=200, description="part of the name, case-insensitive"),
    limit: int = Query(100, ge=1, le=500),
) -> list[WorkflowPublic]:
    """Workflows, most recently updated first."""
    with db.db_session() as session:
        return [WorkflowPublic.model_validate(w) for w in workflows.list_workflows(session, search, limit)]


@router.post("", response_model=WorkflowPublic, status_code=status.HTTP_201_CREATED)
def create_workflow(body: WorkflowCreate) -> WorkflowPublic:
    """Create an empty workflow (no version yet)."""
    with db.db_session() as session:
        created = WorkflowPublic.model_validate(
            workflows.create_workflow(session, body.name, body.description)
        )
    return created


@router.get("/{workflow_id}", response_model=WorkflowPublic, responses=_NOT_FOUND)
def get_workflow(workflow_id: uuid.UUID) -> WorkflowPublic:
    """One workflow."""
    with db.db_session() as session:
        workflow = workflows.get_workflow(session, workflow_id)
        if workflow is None:
            raise _not_found(workflow_id)
        return WorkflowPublic.model_validate(workflow)


@router.delete("/{workflow_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
def delete_workflow(workflow_id: uuid.UUID) -> Response:
    """Delete a workflow with its versions and runs."""
    with db.db_session() as session:
        deleted = workflows.delete_workflow(session, workflow_id)
    if not deleted:
        raise _not_found(workflow_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

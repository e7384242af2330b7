"""/api/runs/{id}/rerun and /api/runs/{id}/fork: a new run of a past run's version, from one of its
steps (the steps before it reused) or with edited inputs (engine/rerun.py)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from app.api.callers import Caller
from app.api.runs import RunPublic, read_run
from app.auth.principal import Principal
from app.run_restart import check_may_restart
from engine.rerun import RestartOptions, fork, rerun_from

router = APIRouter(tags=["runs"])


class RerunCreate(BaseModel):
    """Which step of the past run runs again (with everything after it)."""

    model_config = ConfigDict(extra="forbid")

    node_id: str = Field(min_length=1, max_length=100, description="the node to run again")
    visit: int = Field(
        1, ge=1, le=2**31 - 1, description="which visit of it (state machines visit a node again)"
    )


class ForkCreate(BaseModel):
    """The inputs of the fork; they are checked against the workflow's inputs schema."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)


def _options(principal: Principal) -> RestartOptions:
    return RestartOptions(
        created_by=principal.user_id,
        started_by=principal.started_by,
        started_via="api",
        actor=principal.actor,
        workspace_id=principal.workspace_id,
    )


_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"description": "A run of an inline definition, from a caller below editor"},
    404: {"description": "No such run"},
}


@router.post(
    "/runs/{run_id}/rerun",
    response_model=RunPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        **_RESPONSES,
        409: {"description": "The run has not ended yet (run_not_ended)"},
        422: {"description": "The run never ran that step, or skipped it (rerun_step_invalid)"},
    },
)
def rerun(run_id: uuid.UUID, body: RerunCreate, principal: Caller) -> RunPublic:
    """Re-run a past run from one of its steps: a new run of the same version and inputs in which the
    steps before it are copied with their recorded outputs (`reused_from`), and that step and everything
    downstream of it run anew."""
    check_may_restart(str(run_id), principal.role, workspace_id=principal.workspace_id)
    new_id = rerun_from(str(run_id), body.node_id, visit=body.visit, **_options(principal))
    return read_run(uuid.UUID(new_id), principal)


@router.post(
    "/runs/{run_id}/fork",
    response_model=RunPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**_RESPONSES, 422: {"description": "The inputs do not match the workflow's inputs schema"}},
)
def fork_run(run_id: uuid.UUID, body: ForkCreate, principal: Caller) -> RunPublic:
    """Fork a run: the same version started again with edited inputs (checked against its schema)."""
    check_may_restart(str(run_id), principal.role, workspace_id=principal.workspace_id)
    new_id = fork(str(run_id), body.inputs, **_options(principal))
    return read_run(uuid.UUID(new_id), principal)

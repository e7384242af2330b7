"""Public API of the engine for the app, the REST API and the CLI: start, watch, cancel, resume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema
from sqlalchemy import text

from engine import approvals, dispatch, executor
from engine.approvals import ApprovalError as ApprovalError  # re-exported for callers
from engine.approvals import Approver, Outcome
from engine.definition import WorkflowDefinition
from engine.errors import Issue as _Issue
from engine.errors import ValidationError
from engine.settings import get_settings
from engine.validate import ensure_valid
from models.db import get_engine


def _db(database_url: str | None = None):
    return get_engine(database_url or get_settings().database_url)


def check_inputs(defn: WorkflowDefinition, inputs: dict[str, Any]) -> None:
    """Refuse run inputs that do not match the workflow's inputs schema, naming the field."""
    if not defn.inputs:
        return
    validator = jsonschema.Draft202012Validator(defn.inputs)
    issues = [
        _Issue(
            message=e.message,
            code="input_invalid",
            field="input." + ".".join(str(p) for p in e.absolute_path),
        )
        for e in sorted(validator.iter_errors(inputs), key=lambda e: list(e.absolute_path))
    ]
    if issues:
        raise ValidationError(issues)


def start_run(
    defn: WorkflowDefinition,
    inputs: dict[str, Any] | None = None,
    *,
    workflow_id: str | None = None,
    version_id: str | None = None,
    created_by: str | None = None,
    database_url: str | None = None,
) -> str:
    """Validate, record and start a run; returns its id."""
    ensure_valid(defn)
    inputs = dict(inputs or {})
    check_inputs(defn, inputs)
    with _db(database_url).begin() as conn:
        run_id, sent = executor.create_run(
            conn, defn, inputs, workflow_id=workflow_id, version_id=version_id, created_by=created_by
        )
    dispatch.send(sent)
    return run_id


def cancel_run(run_id: str, *, database_url: str | None = None) -> bool:
    """Cancel a run that is still going; False if it had already ended."""
    with _db(database_url).begin() as conn:
        return executor.cancel_run(conn, run_id)


@dataclass
class RunView:
    """A run and its steps as the CLI, API and run view show them."""

    id: str
    status: str
    inputs: dict | None
    outputs: dict | None
    error: str | None
    steps: list[dict[str, Any]]


def get_run(run_id: str, *, database_url: str | None = None) -> RunView | None:
    """The run with its steps in the order they were queued; None if unknown."""
    with _db(database_url).connect() as conn:
        run = conn.execute(
            text("SELECT id, status, inputs, outputs, error FROM runs WHERE id = :id"), {"id": run_id}
        ).first()
        if run is None:
            return None
        steps = (
            conn.execute(
                text(
                    "SELECT id, node_id, node_type, visit, status, attempt, inputs, outputs, error, queued_at,"
                    " started_at, finished_at, metrics FROM step_runs WHERE run_id = :id"
                    " ORDER BY queued_at, visit"
                ),
                {"id": run_id},
            )
            .mappings()
            .all()
        )
    return RunView(str(run.id), run.status, run.inputs, run.outputs, run.error, [dict(s) for s in steps])


def decide_approval(
    approval_id: str,
    approver: Approver,
    *,
    action: str,
    form: dict[str, Any] | None = None,
    comment: str = "",
    database_url: str | None = None,
) -> Outcome:
    """Cast `approver`'s vote (engine.approvals.decide): approvers, quorum, deadlines, concurrency."""
    return approvals.decide(
        approval_id, approver, action=action, form=form, comment=comment, database_url=database_url
    )

"""Public API of the engine for the app, the REST API and the CLI: start, watch, cancel, resume."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from engine import approvals, dispatch, executor, json_schemas
from engine.approvals import ApprovalError as ApprovalError  # re-exported for callers
from engine.approvals import Approver, Outcome
from engine.definition import WorkflowDefinition
from engine.errors import Issue as _Issue
from engine.errors import ValidationError
from engine.parse import parse_dict
from engine.settings import get_settings
from engine.validate import ensure_valid
from models.db import get_engine

# Where a run was started from (runs.started_via); "" when a caller did not say (tests, internals).
STARTED_VIA = ("ui", "api", "cli", "trigger")


def _db(database_url: str | None = None):
    return get_engine(database_url or get_settings().database_url)


def _audit(conn: Connection, actor: str, action: str, run_id: str, details: dict[str, Any]) -> None:
    """An audit_log row in the transaction of the change it describes."""
    conn.execute(
        text("INSERT INTO audit_log (at, actor, action, target_type, target_id, details, ip)"
             " VALUES (now(), :actor, :action, 'run', :id, CAST(:details AS jsonb), '')"),
        {"actor": actor[:320], "action": action, "id": run_id, "details": json.dumps(details, default=str)},
    )  # fmt: skip


@dataclass(frozen=True)
class SavedVersion:
    """A saved workflow version a run may start from."""

    workflow_id: str
    version_id: str
    version: int
    definition: WorkflowDefinition


def saved_version(
    workflow_id: str | uuid.UUID, version: int | None = None, *, database_url: str | None = None
) -> SavedVersion | None:
    """The workflow's saved `version` (its latest when None); None when there is no such version."""
    try:
        wf = str(uuid.UUID(str(workflow_id)))
    except ValueError:
        return None
    with _db(database_url).connect() as conn:
        row = conn.execute(
            text("SELECT v.id, v.version, v.definition FROM workflow_versions v"
                 " JOIN workflows w ON w.id = v.workflow_id"
                 " WHERE w.id = :wf AND v.version = COALESCE(CAST(:v AS integer), w.latest_version)"),
            {"wf": wf, "v": version},
        ).first()  # fmt: skip
    if row is None:
        return None
    return SavedVersion(wf, str(row.id), row.version, parse_dict(row.definition))


def check_inputs(defn: WorkflowDefinition, inputs: dict[str, Any]) -> None:
    """Refuse run inputs that do not match the workflow's inputs schema, naming the field."""
    if not defn.inputs:
        return
    # The safe validator: "#..." references only (nothing is ever fetched), patterns on RE2.
    issues = [
        _Issue(message=p.message, code="input_invalid", field=f"input.{p.path}")
        for p in json_schemas.instance_problems(defn.inputs, inputs)
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
    started_by: str = "system",
    started_via: str = "",
    actor: str = "",
    database_url: str | None = None,
) -> str:
    """Validate, record and start a run; returns its id.

    `started_by` is "user:<id>", "api_key:<id>", "cli:<os user>" or "system"; `started_via` one of
    STARTED_VIA. The start is written to the audit log (as `actor`, else `started_by`) in the same
    transaction as the run.
    """
    if started_via and started_via not in STARTED_VIA:
        raise ValueError(f"started_via: {started_via!r} is not one of {', '.join(STARTED_VIA)}")
    ensure_valid(defn)
    inputs = dict(inputs or {})
    check_inputs(defn, inputs)
    with _db(database_url).begin() as conn:
        run_id, sent = executor.create_run(
            conn, defn, inputs, workflow_id=workflow_id, version_id=version_id, created_by=created_by,
            started_by=started_by, started_via=started_via,
        )  # fmt: skip
        version = None
        if version_id:
            version = conn.execute(
                text("SELECT version FROM workflow_versions WHERE id = :id"), {"id": version_id}
            ).scalar()
        _audit(conn, actor or started_by, "run.started", run_id,
               {"workflow_id": workflow_id, "workflow": defn.name, "version_id": version_id, "version": version,
                "started_by": started_by, "via": started_via})  # fmt: skip
    dispatch.send(sent)
    return run_id


def cancel_run(
    run_id: str,
    *,
    cancelled_by: str = "system",
    via: str = "",
    actor: str = "",
    database_url: str | None = None,
) -> bool:
    """Cancel a run that is still going (audited); False if it had already ended."""
    with _db(database_url).begin() as conn:
        cancelled = executor.cancel_run(conn, run_id)
        if cancelled:
            row = conn.execute(
                text("SELECT r.workflow_id, r.version_id, v.version FROM runs r"
                     " LEFT JOIN workflow_versions v ON v.id = r.version_id WHERE r.id = :id"),
                {"id": run_id},
            ).first()  # fmt: skip
            _audit(conn, actor or cancelled_by, "run.cancelled", run_id,
                   {"workflow_id": row.workflow_id, "version_id": row.version_id, "version": row.version,
                    "cancelled_by": cancelled_by, "via": via})  # fmt: skip
        return cancelled


@dataclass
class RunView:
    """A run and its steps as the CLI, API and run view show them."""

    id: str
    status: str
    inputs: dict | None
    outputs: dict | None
    error: str | None
    steps: list[dict[str, Any]]
    started_by: str = ""
    started_via: str = ""


def get_run(run_id: str, *, database_url: str | None = None) -> RunView | None:
    """The run with its steps in the order they were queued; None if unknown."""
    with _db(database_url).connect() as conn:
        run = conn.execute(
            text(
                "SELECT id, status, inputs, outputs, error, started_by, started_via FROM runs WHERE id = :id"
            ),
            {"id": run_id},
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
    return RunView(
        str(run.id), run.status, run.inputs, run.outputs, run.error, [dict(s) for s in steps],
        started_by=run.started_by, started_via=run.started_via,
    )  # fmt: skip


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

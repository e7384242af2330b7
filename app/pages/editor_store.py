"""The editor's database work: load a workflow, save a version, list versions and runs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from models.tables import Run, Workflow, WorkflowVersion, utcnow

VERSIONS_SHOWN = 50
RUNS_SHOWN = 25


@dataclass(frozen=True)
class LoadedWorkflow:
    """A workflow and its latest saved definition (None when it has no version yet)."""

    id: str
    name: str
    version: int
    version_id: str | None
    definition: dict[str, Any] | None


@dataclass(frozen=True)
class VersionInfo:
    version: int
    note: str
    nodes: int
    created_at: datetime


@dataclass(frozen=True)
class RunInfo:
    id: str
    status: str
    version: int | None
    created_at: datetime
    finished_at: datetime | None


def parse_id(value: str) -> uuid.UUID | None:
    """The UUID in `value`, or None when it is not one (a mistyped URL)."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError):
        return None


def _latest(session: Session, workflow_id: uuid.UUID) -> WorkflowVersion | None:
    return session.exec(
        select(WorkflowVersion)
        .where(WorkflowVersion.workflow_id == workflow_id)
        .order_by(col(WorkflowVersion.version).desc())
        .limit(1)
    ).first()


def load_workflow(session: Session, workflow_id: uuid.UUID) -> LoadedWorkflow | None:
    """The workflow with its latest definition; None when it does not exist."""
    workflow = session.get(Workflow, workflow_id)
    if workflow is None:
        return None
    latest = _latest(session, workflow_id)
    return LoadedWorkflow(
        id=str(workflow.id),
        name=workflow.name,
        version=latest.version if latest else 0,
        version_id=str(latest.id) if latest else None,
        definition=dict(latest.definition) if latest else None,
    )


def save_version(
    session: Session, workflow_id: uuid.UUID, definition: dict[str, Any], note: str = ""
) -> tuple[int, str]:
    """Store `definition` as the workflow's next version; returns (version, version row id).

    The workflow row is locked first, so two saves at once get consecutive numbers.
    """
    workflow = session.exec(select(Workflow).where(Workflow.id == workflow_id).with_for_update()).first()
    if workflow is None:
        raise LookupError(f"workflow {workflow_id} no longer exists")
    latest = _latest(session, workflow_id)
    number = max(workflow.latest_version, latest.version if latest else 0) + 1
    row = WorkflowVersion(
        workflow_id=workflow_id,
        version=number,
        definition={**definition, "version": number},
        note=note[:500],
    )
    session.add(row)
    workflow.latest_version = number
    workflow.updated_at = utcnow()
    session.add(workflow)
    session.flush()
    return number, str(row.id)


def list_versions(session: Session, workflow_id: uuid.UUID) -> list[VersionInfo]:
    """The newest versions first."""
    rows = session.exec(
        select(
            WorkflowVersion.version,
            WorkflowVersion.note,
            func.jsonb_array_length(WorkflowVersion.definition["nodes"]),
            WorkflowVersion.created_at,
        )
        .where(WorkflowVersion.workflow_id == workflow_id)
        .order_by(col(WorkflowVersion.version).desc())
        .limit(VERSIONS_SHOWN)
    ).all()
    return [VersionInfo(version, note, nodes or 0, created) for version, note, nodes, created in rows]


def get_version(session: Session, workflow_id: uuid.UUID, version: int) -> dict[str, Any] | None:
    """The definition saved as `version`, or None."""
    row = session.exec(
        select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.version == version
        )
    ).first()
    return dict(row.definition) if row else None


def list_runs(session: Session, workflow_id: uuid.UUID) -> list[RunInfo]:
    """The workflow's latest runs, newest first, with the version each ran."""
    rows = session.exec(
        select(Run.id, Run.status, WorkflowVersion.version, Run.created_at, Run.finished_at)
        .join(WorkflowVersion, col(Run.version_id) == col(WorkflowVersion.id), isouter=True)
        .where(Run.workflow_id == workflow_id)
        .order_by(col(Run.created_at).desc())
        .limit(RUNS_SHOWN)
    ).all()
    return [
        RunInfo(str(run_id), status, version, created, finished)
        for run_id, status, version, created, finished in rows
    ]

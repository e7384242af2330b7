"""Workflows and their versions: list, search, create, rename, copy, delete; save, list and read versions.

The pages, the REST API and the engine all go through these functions. Most take the caller's
SQLModel session (a page or route opens one, calls, commits), so several changes can share a
transaction; `saved_version` opens its own connection, for the places that start runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, col, select

from engine import triggers
from engine.definition import WorkflowDefinition
from engine.ids import parse_id  # noqa: F401 - re-exported: callers ask workflows.parse_id
from engine.parse import parse_dict
from engine.settings import get_settings
from models.db import get_engine
from models.tables import Workflow, WorkflowVersion, utcnow

# Column sizes of models.tables.Workflow, checked before a write so the user gets a message.
NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
VERSIONS_SHOWN = 50


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
    """One saved version as the version history lists it."""

    version: int
    note: str
    nodes: int
    created_at: datetime


@dataclass(frozen=True)
class SavedVersion:
    """A saved workflow version a run may start from."""

    workflow_id: str
    version_id: str
    version: int
    definition: WorkflowDefinition


def list_workflows(session: Session, search: str = "", limit: int = 500) -> list[Workflow]:
    """Workflows, most recently updated first; `search` matches names case-insensitively."""
    query = select(Workflow)
    term = search.strip()
    if term:
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(col(Workflow.name).ilike(f"%{escaped}%", escape="\\"))
    query = query.order_by(col(Workflow.updated_at).desc(), col(Workflow.name)).limit(limit)
    return list(session.exec(query))


def count_workflows(session: Session) -> int:
    """How many workflows exist."""
    return session.exec(select(func.count()).select_from(Workflow)).one()


def get_workflow(session: Session, workflow_id: uuid.UUID) -> Workflow | None:
    """The workflow with `workflow_id`, or None."""
    return session.get(Workflow, workflow_id)


def create_workflow(
    session: Session, name: str, description: str = "", definition: dict[str, Any] | None = None
) -> Workflow:
    """A new workflow; with a `definition` it also gets version 1."""
    workflow = Workflow(name=name, description=description)
    session.add(workflow)
    session.flush()
    if definition is not None:
        session.add(
            WorkflowVersion(workflow_id=workflow.id, version=1, definition=definition, note="created")
        )
        workflow.latest_version = 1
    session.flush()
    if definition is not None:  # a template's or a copy's triggers are live from version 1 on
        triggers.sync(session.connection(), workflow.id, definition)
    return workflow


def rename_workflow(session: Session, workflow_id: uuid.UUID, name: str) -> Workflow | None:
    """Rename a workflow; None when it does not exist."""
    workflow = session.get(Workflow, workflow_id)
    if workflow is None:
        return None
    workflow.name = name
    workflow.updated_at = utcnow()
    session.add(workflow)
    session.flush()
    return workflow


def update_workflow(
    session: Session, workflow_id: uuid.UUID, *, name: str | None = None, description: str | None = None
) -> Workflow | None:
    """Change a workflow's name and/or description (None leaves one as it is); None when it does not exist."""
    workflow = session.get(Workflow, workflow_id)
    if workflow is None:
        return None
    if name is not None:
        workflow.name = name
    if description is not None:
        workflow.description = description
    workflow.updated_at = utcnow()
    session.add(workflow)
    session.flush()
    return workflow


def duplicate_workflow(session: Session, workflow_id: uuid.UUID) -> Workflow | None:
    """A copy named "<name> (copy)" whose version 1 is the original's latest definition."""
    original = session.get(Workflow, workflow_id)
    if original is None:
        return None
    latest = latest_version(session, workflow_id)
    name = f"{original.name} (copy)"[:NAME_MAX_LENGTH]
    definition = dict(latest.definition) if latest is not None else None
    return create_workflow(session, name, original.description, definition)


def install_workflow(
    session: Session,
    workflow_id: uuid.UUID,
    name: str,
    description: str,
    definition: dict[str, Any],
    note: str,
) -> bool:
    """Create workflow `workflow_id` with `definition` as its version 1 unless it exists (a
    template's bundled sub-workflow, which its definition calls at that id and version); True
    when it was created now. Two installs at once create it once."""
    now = utcnow()
    created = session.execute(
        pg_insert(Workflow)
        .values(id=workflow_id, name=name[:NAME_MAX_LENGTH], description=description[:DESCRIPTION_MAX_LENGTH],
                latest_version=1, created_at=now, updated_at=now)
        .on_conflict_do_nothing()
        .returning(col(Workflow.id))
    ).first()  # fmt: skip
    if created is None:
        return False
    session.execute(
        pg_insert(WorkflowVersion)
        .values(id=uuid.uuid4(), workflow_id=workflow_id, version=1, definition={**definition, "version": 1},
                note=note[:500], created_at=now)
        .on_conflict_do_nothing()
    )  # fmt: skip
    triggers.sync(session.connection(), workflow_id, definition)
    return True


def delete_workflow(session: Session, workflow_id: uuid.UUID) -> bool:
    """Delete a workflow with its versions and runs (the database cascades); False when absent."""
    result = session.execute(delete(Workflow).where(col(Workflow.id) == workflow_id))
    return isinstance(result, CursorResult) and result.rowcount > 0  # a DML statement's result


def latest_version(session: Session, workflow_id: uuid.UUID) -> WorkflowVersion | None:
    """The workflow's newest saved version, or None when it has none."""
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
    latest = latest_version(session, workflow_id)
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
    latest = latest_version(session, workflow_id)
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
    # The triggers of the latest version are the live ones (in the same transaction as the save).
    triggers.sync(session.connection(), workflow_id, row.definition)
    return number, str(row.id)


def list_versions(
    session: Session, workflow_id: uuid.UUID, limit: int = VERSIONS_SHOWN, *, before: int | None = None
) -> list[VersionInfo]:
    """The newest versions first; with `before`, only the versions numbered below it (the next page)."""
    query = select(
        WorkflowVersion.version,
        WorkflowVersion.note,
        func.jsonb_array_length(WorkflowVersion.definition["nodes"]),
        WorkflowVersion.created_at,
    ).where(WorkflowVersion.workflow_id == workflow_id)
    if before is not None:
        query = query.where(col(WorkflowVersion.version) < before)
    rows = session.exec(query.order_by(col(WorkflowVersion.version).desc()).limit(limit)).all()
    return [VersionInfo(version, note, nodes or 0, created) for version, note, nodes, created in rows]


def get_version(session: Session, workflow_id: uuid.UUID, version: int) -> dict[str, Any] | None:
    """The definition saved as `version`, or None."""
    row = read_version(session, workflow_id, version)
    return dict(row.definition) if row else None


def read_version(session: Session, workflow_id: uuid.UUID, version: int) -> WorkflowVersion | None:
    """The saved version row (definition, note, when), or None."""
    return session.exec(
        select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.version == version
        )
    ).first()


def version_number(db: Connection | Session, version_id: str | uuid.UUID | None) -> int | None:
    """The number of the version row `version_id` (None without one)."""
    if not version_id:
        return None
    query = select(WorkflowVersion.version).where(WorkflowVersion.id == parse_id(version_id))
    return db.execute(query).scalar()


def saved_version(
    workflow_id: str | uuid.UUID, version: int | None = None, *, database_url: str | None = None
) -> SavedVersion | None:
    """The workflow's saved `version` (its latest when None); None when there is no such version."""
    wf = parse_id(workflow_id)
    if wf is None:
        return None
    number = col(Workflow.latest_version) if version is None else version
    query = (
        select(WorkflowVersion.id, WorkflowVersion.version, WorkflowVersion.definition)
        .join(Workflow, col(Workflow.id) == col(WorkflowVersion.workflow_id))
        .where(Workflow.id == wf, WorkflowVersion.version == number)
    )
    with get_engine(database_url or get_settings().database_url).connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return SavedVersion(str(wf), str(row.id), row.version, parse_dict(row.definition))


def latest_definitions(conn: Connection) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, name, definition) of every workflow's latest saved version, by workflow name."""
    query = (
        select(Workflow.id, Workflow.name, WorkflowVersion.definition)
        .join(
            WorkflowVersion,
            (col(WorkflowVersion.workflow_id) == col(Workflow.id))
            & (col(WorkflowVersion.version) == col(Workflow.latest_version)),
        )
        .order_by(col(Workflow.name))
    )
    for row in conn.execute(query):
        yield str(row.id), row.name, row.definition or {}

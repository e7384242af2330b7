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

from sqlalchemy import Connection, delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, col, select

from engine import audit, publishing, shares
from engine.definition import WorkflowDefinition
from engine.ids import parse_id  # noqa: F401 - re-exported: callers ask workflows.parse_id
from engine.parse import parse_dict
from engine.settings import get_settings
from models.db import get_engine
from models.tables import Workflow, WorkflowVersion, utcnow
from models.workspaces import Workspace

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
    status: str = ""  # engine/publishing.py: draft, in_review, approved, rejected, published, superseded


@dataclass(frozen=True)
class SavedVersion:
    """A saved workflow version a run may start from."""

    workflow_id: str
    version_id: str
    version: int
    definition: WorkflowDefinition


def _workspace_key(workspace_id: str | uuid.UUID) -> uuid.UUID:
    # An id that is no UUID names no workspace: it matches nothing.
    return parse_id(workspace_id) or uuid.UUID(int=0)


def list_workflows(
    session: Session,
    search: str = "",
    limit: int = 500,
    *,
    workspace_id: str | uuid.UUID | None = None,
    user_id: str | uuid.UUID | None = None,
    shared: bool = False,
) -> list[Workflow]:
    """Workflows (of workspace `workspace_id` when given; with `shared`, also those shared with it or
    with user `user_id`: engine/shares.py), most recently updated first; `search` matches names
    case-insensitively."""
    query = select(Workflow)
    if workspace_id is not None and shared:
        query = query.where(shares.visible(workspace_id, user_id))
    elif workspace_id is not None:
        query = query.where(col(Workflow.workspace_id) == _workspace_key(workspace_id))
    term = search.strip()
    if term:
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(col(Workflow.name).ilike(f"%{escaped}%", escape="\\"))
    query = query.order_by(col(Workflow.updated_at).desc(), col(Workflow.name)).limit(limit)
    return list(session.exec(query))


def count_workflows(session: Session, *, workspace_id: str | uuid.UUID | None = None) -> int:
    """How many workflows exist (in workspace `workspace_id` when given)."""
    query = select(func.count()).select_from(Workflow)
    if workspace_id is not None:
        query = query.where(col(Workflow.workspace_id) == _workspace_key(workspace_id))
    return session.exec(query).one()


def get_workflow(
    session: Session,
    workflow_id: uuid.UUID,
    *,
    workspace_id: str | uuid.UUID | None = None,
    user_id: str | uuid.UUID | None = None,
    need: str = shares.OWN,
) -> Workflow | None:
    """The workflow with `workflow_id`, or None; with `workspace_id` (a caller's) also None when it
    belongs to another workspace, so it answers like an unknown id, unless `need` is shares.READ or
    shares.EDIT and it is shared with that workspace or with user `user_id` at least so."""
    workflow = session.get(Workflow, workflow_id)
    if workflow is None or workspace_id is None:
        return workflow
    if need == shares.OWN:
        return workflow if workflow.workspace_id == _workspace_key(workspace_id) else None
    have = shares.permission_of(session, workflow, workspace_id=workspace_id, user_id=user_id)
    return workflow if shares.allows(have, need) else None


def _audit(
    session: Session, action: str, workflow_id: uuid.UUID, who: audit.Who | None, **entry: Any
) -> None:
    audit.record(session, action=action, target_type="workflow", target_id=str(workflow_id), who=who, **entry)


def _fields(workflow: Workflow) -> dict[str, Any]:
    return {"name": workflow.name, "description": workflow.description}


def create_workflow(
    session: Session,
    name: str,
    description: str = "",
    definition: dict[str, Any] | None = None,
    *,
    who: audit.Who | None = None,
    copied_from: uuid.UUID | None = None,
    workspace_id: str | uuid.UUID | None = None,
) -> Workflow:
    """A new workflow in workspace `workspace_id` (the default one when None; audited); with a
    `definition` it also gets version 1."""
    workflow = Workflow(name=name, description=description)
    if workspace_id is not None:
        workflow.workspace_id = _workspace_key(workspace_id)
    session.add(workflow)
    session.flush()
    if definition is not None:
        session.add(
            WorkflowVersion(workflow_id=workflow.id, version=1, definition=definition, note="created")
        )
        workflow.latest_version = 1
    session.flush()
    if definition is not None:  # published (its triggers live) unless the workspace requires review
        publishing.on_save(session, workflow.id, 1)
    details = {"version": workflow.latest_version or None, "copied_from": copied_from}
    _audit(session, "workflow.created", workflow.id, who, after=_fields(workflow),
           details={k: v for k, v in details.items() if v is not None})  # fmt: skip
    return workflow


def rename_workflow(
    session: Session,
    workflow_id: uuid.UUID,
    name: str,
    *,
    who: audit.Who | None = None,
    workspace_id: str | uuid.UUID | None = None,
    user_id: str | uuid.UUID | None = None,
    need: str = shares.OWN,
) -> Workflow | None:
    """Rename a workflow (audited); None when it does not exist (in `workspace_id` when given;
    `user_id` and `need` as for get_workflow)."""
    return update_workflow(
        session, workflow_id, name=name, who=who, workspace_id=workspace_id, user_id=user_id, need=need
    )


def update_workflow(
    session: Session,
    workflow_id: uuid.UUID,
    *,
    name: str | None = None,
    description: str | None = None,
    who: audit.Who | None = None,
    workspace_id: str | uuid.UUID | None = None,
    user_id: str | uuid.UUID | None = None,
    need: str = shares.OWN,
) -> Workflow | None:
    """Change a workflow's name and/or description (None leaves one as it is; audited with before
    and after); None when it does not exist (in `workspace_id` when given; `user_id` and `need` as
    for get_workflow: shares.EDIT lets an edit share do it)."""
    workflow = get_workflow(session, workflow_id, workspace_id=workspace_id, user_id=user_id, need=need)
    if workflow is None:
        return None
    before = _fields(workflow)
    if name is not None:
        workflow.name = name
    if description is not None:
        workflow.description = description
    workflow.updated_at = utcnow()
    session.add(workflow)
    session.flush()
    after = _fields(workflow)
    changed = [k for k in after if after[k] != before[k]]
    if changed:
        _audit(session, "workflow.renamed" if changed == ["name"] else "workflow.updated", workflow_id, who,
               before={k: before[k] for k in changed}, after={k: after[k] for k in changed})  # fmt: skip
    return workflow


def duplicate_workflow(
    session: Session,
    workflow_id: uuid.UUID,
    *,
    who: audit.Who | None = None,
    workspace_id: str | uuid.UUID | None = None,
) -> Workflow | None:
    """A copy named "<name> (copy)" in the original's workspace whose version 1 is the original's
    latest definition (audited); None when absent (in `workspace_id` when given)."""
    original = get_workflow(session, workflow_id, workspace_id=workspace_id)
    if original is None:
        return None
    latest = latest_version(session, workflow_id)
    name = f"{original.name} (copy)"[:NAME_MAX_LENGTH]
    definition = dict(latest.definition) if latest is not None else None
    return create_workflow(
        session, name, original.description, definition, who=who, copied_from=workflow_id,
        workspace_id=original.workspace_id,
    )  # fmt: skip


def install_workflow(
    session: Session,
    workflow_id: uuid.UUID,
    name: str,
    description: str,
    definition: dict[str, Any],
    note: str,
    *,
    who: audit.Who | None = None,
    workspace_id: str | uuid.UUID | None = None,
) -> bool:
    """Create workflow `workflow_id` with `definition` as its version 1 in workspace `workspace_id`
    (None: the default one) unless it exists (a template's bundled sub-workflow, which its
    definition calls at that id and version); True when it was created now (audited). Two installs
    at once create it once."""
    now = utcnow()
    where = {} if workspace_id is None else {"workspace_id": _workspace_key(workspace_id)}
    created = session.execute(
        pg_insert(Workflow)
        .values(id=workflow_id, name=name[:NAME_MAX_LENGTH], description=description[:DESCRIPTION_MAX_LENGTH],
                latest_version=1, created_at=now, updated_at=now, **where)
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
    publishing.on_save(session, workflow_id, 1)
    _audit(session, "workflow.created", workflow_id, who, details={"version": 1, "note": note[:500]},
           after={"name": name[:NAME_MAX_LENGTH], "description": description[:DESCRIPTION_MAX_LENGTH]})  # fmt: skip
    return True


def delete_workflow(
    session: Session,
    workflow_id: uuid.UUID,
    *,
    who: audit.Who | None = None,
    workspace_id: str | uuid.UUID | None = None,
) -> bool:
    """Delete a workflow with its versions and runs (the database cascades; audited); False when
    absent (in `workspace_id` when given)."""
    where = [col(Workflow.id) == workflow_id]
    if workspace_id is not None:
        where.append(col(Workflow.workspace_id) == _workspace_key(workspace_id))
    result = session.execute(
        delete(Workflow).where(*where)
        .returning(col(Workflow.name), col(Workflow.description), col(Workflow.latest_version))
    ).first()  # fmt: skip
    if result is None:
        return False
    _audit(session, "workflow.deleted", workflow_id, who,
           before={"name": result.name, "description": result.description, "latest_version": result.latest_version})  # fmt: skip
    return True


def latest_version(session: Session, workflow_id: uuid.UUID) -> WorkflowVersion | None:
    """The workflow's newest saved version, or None when it has none."""
    return session.exec(
        select(WorkflowVersion)
        .where(WorkflowVersion.workflow_id == workflow_id)
        .order_by(col(WorkflowVersion.version).desc())
        .limit(1)
    ).first()


def load_workflow(
    session: Session,
    workflow_id: uuid.UUID,
    *,
    workspace_id: str | uuid.UUID | None = None,
    user_id: str | uuid.UUID | None = None,
    need: str = shares.OWN,
) -> LoadedWorkflow | None:
    """The workflow with its latest definition; None when it does not exist (in `workspace_id` when
    given; `user_id` and `need` as for get_workflow)."""
    workflow = get_workflow(session, workflow_id, workspace_id=workspace_id, user_id=user_id, need=need)
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
    session: Session,
    workflow_id: uuid.UUID,
    definition: dict[str, Any],
    note: str = "",
    *,
    who: audit.Who | None = None,
    created_by: uuid.UUID | None = None,
) -> tuple[int, str]:
    """Store `definition` as the workflow's next version (audited); returns (version, version row id).

    The workflow row is locked first, so two saves at once get consecutive numbers. The version is
    published at once unless the workspace requires review (engine/publishing.py); `created_by` is
    its author, who may not approve it.
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
        created_by=created_by,
    )
    session.add(row)
    workflow.latest_version = number
    workflow.updated_at = utcnow()
    session.add(workflow)
    session.flush()
    # Published now (its triggers live, in this transaction) unless the workspace requires review.
    publishing.on_save(session, workflow_id, number)
    nodes = definition.get("nodes")
    _audit(session, "version.saved", workflow_id, who,
           details={"version": number, "version_id": row.id, "note": row.note,
                    "nodes": len(nodes) if isinstance(nodes, list) else 0},
           before={"latest_version": number - 1}, after={"latest_version": number})  # fmt: skip
    return number, str(row.id)


def list_versions(
    session: Session, workflow_id: uuid.UUID, limit: int = VERSIONS_SHOWN, *, before: int | None = None
) -> list[VersionInfo]:
    """The newest versions first; with `before`, only the versions numbered below it (the next page)."""
    # sqlmodel's select() is typed for up to four columns; this one reads five.
    query = select(  # type: ignore[call-overload]
        WorkflowVersion.version,
        WorkflowVersion.note,
        func.jsonb_array_length(WorkflowVersion.definition["nodes"]),
        WorkflowVersion.created_at,
        WorkflowVersion.status,
    ).where(WorkflowVersion.workflow_id == workflow_id)
    if before is not None:
        query = query.where(col(WorkflowVersion.version) < before)
    rows = session.exec(query.order_by(col(WorkflowVersion.version).desc()).limit(limit)).all()
    return [VersionInfo(v, note, nodes or 0, created, status) for v, note, nodes, created, status in rows]


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
    workflow_id: str | uuid.UUID,
    version: int | None = None,
    *,
    workspace_id: str | uuid.UUID | None = None,
    database_url: str | None = None,
) -> SavedVersion | None:
    """The workflow's saved `version` (its published one when None: engine/publishing.py); None when
    there is no such version or, with `workspace_id` (a caller's), when the workflow is in another
    workspace."""
    wf = parse_id(workflow_id)
    if wf is None:
        return None
    number = publishing.runnable_number() if version is None else version
    query = (
        select(WorkflowVersion.id, WorkflowVersion.version, WorkflowVersion.definition)
        .join(Workflow, col(Workflow.id) == col(WorkflowVersion.workflow_id))
        .join(Workspace, col(Workspace.id) == col(Workflow.workspace_id))
        .where(Workflow.id == wf, WorkflowVersion.version == number)
    )
    if workspace_id is not None:
        query = query.where(col(Workflow.workspace_id) == (parse_id(workspace_id) or uuid.UUID(int=0)))
    with get_engine(database_url or get_settings().database_url).connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return SavedVersion(str(wf), str(row.id), row.version, parse_dict(row.definition))


def latest_definitions(
    conn: Connection, *, workspace_id: str | uuid.UUID | None = None
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, name, definition) of every workflow's (of workspace `workspace_id` when given) latest
    saved version, by workflow name."""
    query = (
        select(Workflow.id, Workflow.name, WorkflowVersion.definition)
        .join(
            WorkflowVersion,
            (col(WorkflowVersion.workflow_id) == col(Workflow.id))
            & (col(WorkflowVersion.version) == col(Workflow.latest_version)),
        )
        .order_by(col(Workflow.name))
    )
    if workspace_id is not None:
        query = query.where(col(Workflow.workspace_id) == _workspace_key(workspace_id))
    for row in conn.execute(query):
        yield str(row.id), row.name, row.definition or {}

"""Database access for the web app: sessions on Flowloom's own engine and the workflow queries.

The pages and the REST API both list, create, rename, copy and delete workflows; they share
these functions so both behave the same. Calls are short and synchronous: an event handler or
request opens a session, runs one of these, commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, func
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, col, select

from engine.errors import ConfigError, FlowloomError
from engine.settings import get_settings
from models.db import session_scope
from models.tables import Workflow, WorkflowVersion, utcnow

# What a page or route catches around database work to show a message instead of crashing.
DB_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, FlowloomError)
# Column sizes of models.tables.Workflow, checked before a write so the user gets a message.
NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000


def database_url() -> str:
    """The configured database URL; refuses to guess when it is missing."""
    url = get_settings().database_url
    if not url:
        raise ConfigError(
            "FLOWLOOM_DATABASE_URL is not set: start the app with `flowloom up` "
            "(embedded PostgreSQL) or set it to a PostgreSQL URL"
        )
    return url


@contextmanager
def db_session() -> Iterator[Session]:
    """A session on the app's database that commits on success."""
    with session_scope(database_url()) as session:
        yield session


def describe_db_error(exc: Exception) -> str:
    """A message for the user: what failed and what to do about it."""
    if isinstance(exc, FlowloomError):
        return str(exc)
    if isinstance(exc, OperationalError):
        lines = str(exc.orig or "").strip().splitlines()
        # psycopg says 'connection failed: connection to server at ... failed: Connection refused'.
        reason = lines[0].rsplit("failed: ", 1)[-1] if lines else "connection failed"
        return f"The database is unavailable ({reason}); check that PostgreSQL runs and FLOWLOOM_DATABASE_URL"
    return f"A database error occurred ({type(exc).__name__}); see the server log for details"


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


def duplicate_workflow(session: Session, workflow_id: uuid.UUID) -> Workflow | None:
    """A copy named "<name> (copy)" whose version 1 is the original's latest definition."""
    original = session.get(Workflow, workflow_id)
    if original is None:
        return None
    latest = session.exec(
        select(WorkflowVersion)
        .where(WorkflowVersion.workflow_id == workflow_id)
        .order_by(col(WorkflowVersion.version).desc())
        .limit(1)
    ).first()
    name = f"{original.name} (copy)"[:NAME_MAX_LENGTH]
    definition = dict(latest.definition) if latest is not None else None
    return create_workflow(session, name, original.description, definition)


def delete_workflow(session: Session, workflow_id: uuid.UUID) -> bool:
    """Delete a workflow with its versions and runs (the database cascades); False when absent."""
    result = session.execute(delete(Workflow).where(col(Workflow.id) == workflow_id))
    return bool(result.rowcount)

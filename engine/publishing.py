"""Four-eyes publishing: a version moves draft → in review → approved → published.

Editors test-run any version; triggers, forms, chats, `/v1`, MCP and callers below editor run the
workflow's **published** version. The rule when a workspace does not require review (the default):
saving a version publishes it at once, as before, and an editor may publish any version directly.
When it does, a saved version is a draft until another editor approves it: the reviewer may be
neither its author nor the one who submitted it. Rolling back is publishing an earlier version
(submitted and approved again when review is required). Every transition is audited in its own
transaction (`version.submitted`, `version.approved`, `version.rejected`, `version.published`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, update
from sqlmodel import Session, col, select

from engine import audit, triggers
from engine.errors import ErrorCode, FlowloomError
from engine.ids import parse_id
from engine.roles import Role, at_least
from engine.settings import get_settings
from models.db import get_engine
from models.tables import Workflow, WorkflowVersion, utcnow
from models.workspaces import Workspace

DRAFT, IN_REVIEW, APPROVED, REJECTED = "draft", "in_review", "approved", "rejected"
PUBLISHED, SUPERSEDED = "published", "superseded"
STATUSES = (DRAFT, IN_REVIEW, APPROVED, REJECTED, PUBLISHED, SUPERSEDED)
# A version may be (re-)submitted from these: a draft, a rejected one, one published before (rollback).
SUBMITTABLE = (DRAFT, REJECTED, SUPERSEDED)
NOTE_MAX_LENGTH = 2000


@dataclass(frozen=True)
class Actor:
    """Who asks for a transition: their user id, their role in the workflow's workspace, the audit name."""

    user_id: uuid.UUID | None
    role: str
    who: audit.Who | None = None


@dataclass(frozen=True)
class ReviewState:
    """A version's place in the review, as the editor and the API show it."""

    workflow_id: str
    version: int
    status: str
    created_by: str | None
    submitted_by: str | None
    submitted_at: datetime | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str
    published_version: int | None
    require_review: bool


def requires_review(db: Connection | Session, workflow_id: uuid.UUID) -> bool:
    """True when the workflow's workspace requires a second editor's approval before publishing."""
    query = (
        select(Workspace.require_review)
        .join(Workflow, col(Workflow.workspace_id) == col(Workspace.id))
        .where(col(Workflow.id) == workflow_id)
    )
    return bool(db.execute(query).scalar())


def requires_review_in(db: Connection | Session, workspace_id: uuid.UUID) -> bool:
    """True when the workspace requires review (False for an unknown one)."""
    return bool(
        db.execute(select(Workspace.require_review).where(col(Workspace.id) == workspace_id)).scalar()
    )


def set_require_review(
    session: Session, workspace_id: uuid.UUID, value: bool, *, role: str, who: audit.Who | None = None
) -> bool:
    """Switch the workspace's review rule (workspace admins only, audited); False when it is unknown."""
    if not at_least(role, Role.ADMIN):
        raise FlowloomError("only a workspace admin may change whether versions need review",
                            code=ErrorCode.FORBIDDEN)  # fmt: skip
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        return False
    before = workspace.require_review
    workspace.require_review = value
    session.add(workspace)
    session.flush()
    if before != value:
        audit.record(session, action="workspace.review_required", target_type="workspace",
                     target_id=str(workspace_id), who=who, before={"require_review": before},
                     after={"require_review": value})  # fmt: skip
    return True


def runnable_number() -> Any:
    """The version number triggers and operators run: the published one; without review required, a
    workflow never published through this door (rows written directly) runs its latest, as before."""
    return case(
        (col(Workspace.require_review), col(Workflow.published_version)),
        else_=func.coalesce(col(Workflow.published_version), col(Workflow.latest_version)),
    )


def published_row(db: Connection | Session, workflow_id: uuid.UUID) -> Any | None:
    """(id, version, definition) of the version the workflow runs for triggers and operators, or None."""
    query = (
        select(WorkflowVersion.id, WorkflowVersion.version, WorkflowVersion.definition)
        .join(Workflow, col(Workflow.id) == col(WorkflowVersion.workflow_id))
        .join(Workspace, col(Workspace.id) == col(Workflow.workspace_id))
        .where(col(Workflow.id) == workflow_id, col(WorkflowVersion.version) == runnable_number())
    )
    return db.execute(query).first()


def published_definitions(
    conn: Connection, *, workspace_id: str | uuid.UUID | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, name, definition) of every workflow's published version (of one workspace's workflows
    when `workspace_id` is given: an API key's, for MCP), by workflow name."""
    query = (
        select(Workflow.id, Workflow.name, WorkflowVersion.definition)
        .join(Workspace, col(Workspace.id) == col(Workflow.workspace_id))
        .join(
            WorkflowVersion,
            (col(WorkflowVersion.workflow_id) == col(Workflow.id))
            & (col(WorkflowVersion.version) == runnable_number()),
        )
        .order_by(col(Workflow.name))
    )
    if workspace_id is not None:
        query = query.where(col(Workflow.workspace_id) == (parse_id(workspace_id) or uuid.UUID(int=0)))
    return [(str(r.id), r.name, r.definition or {}) for r in conn.execute(query)]


def check_may_run(db: Connection | Session, workflow_id: uuid.UUID, version: int, role: str | None) -> None:
    """Refuse a caller below editor a version other than the published one when review is required."""
    if at_least(role, Role.EDITOR) or not requires_review(db, workflow_id):
        return
    published = db.execute(select(Workflow.published_version).where(col(Workflow.id) == workflow_id)).scalar()
    if version != published:
        shown = f"v{published} is" if published else "no version is yet"
        raise FlowloomError(
            f"version {version} is not published ({shown}); callers below editor run the published "
            "version only: ask an editor to submit it for review",
            code=ErrorCode.VERSION_NOT_PUBLISHED,
        )


def refuse_unpublished(
    workflow_id: str | uuid.UUID, version: int, role: str | None, *, database_url: str | None = None
) -> None:
    """`check_may_run` on a connection of its own (for the places that start runs)."""
    wanted = parse_id(workflow_id)
    if wanted is None or at_least(role, Role.EDITOR):
        return
    with get_engine(database_url or get_settings().database_url).connect() as conn:
        check_may_run(conn, wanted, version, role)


def on_save(session: Session, workflow_id: uuid.UUID, version: int) -> None:
    """A version was just saved: publish it unless the workspace requires review (then it is a draft)."""
    if requires_review(session, workflow_id):
        return  # the column's default: draft; the published version and its triggers stay live
    row = _version(session, workflow_id, version, lock=False)
    _make_published(session, row)


def review_state(session: Session, workflow_id: uuid.UUID, version: int) -> ReviewState | None:
    """The version's review state, or None when there is no such version."""
    row = session.exec(
        select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.version == version
        )
    ).first()
    workflow = session.get(Workflow, workflow_id)
    if row is None or workflow is None:
        return None
    return ReviewState(
        workflow_id=str(workflow_id), version=row.version, status=row.status,
        created_by=_text(row.created_by), submitted_by=_text(row.submitted_by), submitted_at=row.submitted_at,
        reviewed_by=_text(row.reviewed_by), reviewed_at=row.reviewed_at, review_note=row.review_note,
        published_version=workflow.published_version, require_review=requires_review(session, workflow_id),
    )  # fmt: skip


def submit(session: Session, workflow_id: uuid.UUID, version: int, actor: Actor) -> WorkflowVersion:
    """Ask for a review of `version` (a draft, a rejected version or an earlier published one)."""
    _needs_editor(actor, "submit a version for review")
    row = _version(session, workflow_id, version)
    _expect(row, SUBMITTABLE, "submitted for review")
    row.status, row.submitted_by, row.submitted_at = IN_REVIEW, actor.user_id, utcnow()
    row.reviewed_by, row.reviewed_at, row.review_note = None, None, ""
    _write(session, row, "version.submitted", actor, {})
    return row


def approve(
    session: Session, workflow_id: uuid.UUID, version: int, actor: Actor, note: str = ""
) -> WorkflowVersion:
    """Approve a version in review; the reviewer is another editor than its author and submitter."""
    return _decide(session, workflow_id, version, actor, note, APPROVED)


def reject(
    session: Session, workflow_id: uuid.UUID, version: int, actor: Actor, note: str = ""
) -> WorkflowVersion:
    """Send a version in review back (with a note); it may be submitted again."""
    return _decide(session, workflow_id, version, actor, note, REJECTED)


def publish(session: Session, workflow_id: uuid.UUID, version: int, actor: Actor) -> WorkflowVersion:
    """Make `version` the one triggers and operators run (an approved one when review is required)."""
    _needs_editor(actor, "publish a version")
    row = _version(session, workflow_id, version)
    if requires_review(session, workflow_id):
        _expect(row, (APPROVED,), "published: it needs a second editor's approval first")
    else:
        _expect(row, (DRAFT, IN_REVIEW, APPROVED, REJECTED, SUPERSEDED), "published")
    before = _make_published(session, row)
    _write(session, row, "version.published", actor, {"previous_version": before})
    return row


def _decide(
    session: Session, workflow_id: uuid.UUID, version: int, actor: Actor, note: str, status: str
) -> WorkflowVersion:
    verb = "approve" if status == APPROVED else "reject"
    _needs_editor(actor, f"{verb} a version")
    row = _version(session, workflow_id, version)
    _expect(row, (IN_REVIEW,), "approved" if status == APPROVED else "rejected")
    if actor.user_id is None or actor.user_id in (row.created_by, row.submitted_by):
        raise FlowloomError(
            f"you cannot {verb} version {version}: you wrote or submitted it; another editor must review it",
            code=ErrorCode.SELF_REVIEW,
        )
    row.status, row.reviewed_by, row.reviewed_at = status, actor.user_id, utcnow()
    row.review_note = note.strip()[:NOTE_MAX_LENGTH]
    _write(session, row, f"version.{status}", actor, {"note": row.review_note} if row.review_note else {})
    return row


def _make_published(session: Session, row: WorkflowVersion) -> int | None:
    """Publish `row`: the previously published version is superseded and the triggers follow it."""
    workflow = session.exec(select(Workflow).where(Workflow.id == row.workflow_id).with_for_update()).one()
    before = workflow.published_version
    session.execute(
        update(WorkflowVersion)
        .where(col(WorkflowVersion.workflow_id) == row.workflow_id, col(WorkflowVersion.status) == PUBLISHED,
               col(WorkflowVersion.id) != row.id)
        .values(status=SUPERSEDED)
    )  # fmt: skip
    row.status = PUBLISHED
    workflow.published_version = row.version
    session.add(row)
    session.add(workflow)
    session.flush()
    # The published version's triggers are the live ones (in the same transaction).
    triggers.sync(session.connection(), row.workflow_id, dict(row.definition))
    return before


def _version(session: Session, workflow_id: uuid.UUID, version: int, *, lock: bool = True) -> WorkflowVersion:
    query = select(WorkflowVersion).where(
        WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.version == version
    )
    row = session.exec(query.with_for_update() if lock else query).first()
    if row is None:
        raise FlowloomError(
            f"workflow {workflow_id} has no version {version}", code=ErrorCode.VERSION_NOT_FOUND
        )
    return row


def _needs_editor(actor: Actor, what: str) -> None:
    if not at_least(actor.role, Role.EDITOR):
        raise FlowloomError(f"only editors may {what}; you are {actor.role or 'signed out'}",
                            code=ErrorCode.FORBIDDEN)  # fmt: skip


def _expect(row: WorkflowVersion, allowed: tuple[str, ...], what: str) -> None:
    if row.status not in allowed:
        raise FlowloomError(
            f"version {row.version} is {row.status.replace('_', ' ')} and cannot be {what}",
            code=ErrorCode.VERSION_STATE,
        )


def _write(
    session: Session, row: WorkflowVersion, action: str, actor: Actor, details: dict[str, Any]
) -> None:
    session.add(row)
    session.flush()
    audit.record(session, action=action, target_type="workflow", target_id=str(row.workflow_id),
                 who=actor.who, details={"version": row.version, "version_id": str(row.id), **details},
                 after={"status": row.status})  # fmt: skip


def _text(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None

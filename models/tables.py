"""SQLModel tables: the database is the source of truth for workflows, runs, steps, approvals, events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.workspace_column import workspace_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(nullable: bool = False, default: bool = True) -> Any:
    return Field(
        default_factory=utcnow if default else None,
        sa_column_kwargs={"nullable": nullable},
        sa_type=DateTime(timezone=True),
    )


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=JSONB, nullable=nullable)


class Workflow(SQLModel, table=True):
    """A workflow people edit; its definitions live in immutable `WorkflowVersion` rows."""

    __tablename__ = "workflows"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200, index=True)
    description: str = Field(default="", max_length=2000)
    owner_id: uuid.UUID | None = Field(default=None, index=True)
    workspace_id: uuid.UUID = workspace_column()
    latest_version: int = Field(default=0)
    # The version triggers, operators and the API run (engine/publishing.py); None: none published.
    published_version: int | None = Field(default=None)
    # Runs of this workflow running at once (None: only the workspace's limit); more wait queued.
    max_concurrent_runs: int | None = Field(default=None, ge=1)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class WorkflowVersion(SQLModel, table=True):
    """One immutable saved definition of a workflow; runs pin the version they started with."""

    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "version", name="uq_workflow_version"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workflow_id: uuid.UUID = Field(foreign_key="workflows.id", ondelete="CASCADE", index=True)
    version: int
    definition: dict = Field(sa_type=JSONB, nullable=False)
    note: str = Field(default="", max_length=500)
    created_by: uuid.UUID | None = None
    created_at: datetime = _ts()
    # Four-eyes publishing (engine/publishing.py): draft | in_review | approved | rejected |
    # published | superseded, who submitted it and who reviewed it, with the reviewer's note.
    status: str = Field(default="draft", max_length=20, sa_column_kwargs={"server_default": "draft"})
    submitted_by: uuid.UUID | None = None
    submitted_at: datetime | None = _ts(nullable=True, default=False)
    reviewed_by: uuid.UUID | None = None
    reviewed_at: datetime | None = _ts(nullable=True, default=False)
    review_note: str = Field(default="", max_length=2000, sa_column_kwargs={"server_default": ""})


class Run(SQLModel, table=True):
    """One execution of a pinned workflow version."""

    __tablename__ = "runs"
    # The runs list pages newest first by (created_at, id): keyset pages read this index.
    __table_args__ = (Index("ix_runs_created_at_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workflow_id: uuid.UUID | None = Field(
        default=None, foreign_key="workflows.id", ondelete="CASCADE", index=True
    )
    version_id: uuid.UUID | None = Field(default=None, foreign_key="workflow_versions.id", ondelete="CASCADE")
    # The workflow's workspace, copied so lists, limits and quotas filter runs without a join.
    workspace_id: uuid.UUID = workspace_column()
    # The definition the run executes, copied so a run of an unsaved file (CLI) needs no version row.
    definition: dict = Field(sa_type=JSONB, nullable=False)
    status: str = Field(default="queued", max_length=20, index=True)
    inputs: dict | None = _json()
    outputs: dict | None = _json()
    error: str | None = None
    cancel_requested: bool = False
    created_by: uuid.UUID | None = None  # the user who started it (an API key's owner for API-key runs)
    # Who and from where: "user:<id>" or "api_key:<id>" (or "system"), and ui | api | cli | trigger.
    started_by: str = Field(default="", max_length=120, sa_column_kwargs={"server_default": ""})
    started_via: str = Field(default="", max_length=20, sa_column_kwargs={"server_default": ""})
    # The trigger that started it (started_via "trigger") and the chat session it answers, if any.
    trigger_id: uuid.UUID | None = Field(
        default=None, foreign_key="triggers.id", ondelete="SET NULL", index=True
    )
    session_id: uuid.UUID | None = Field(default=None, index=True)
    # The past run this one re-runs (source_kind "rerun", from node source_node_id) or forks with
    # new inputs ("fork"); engine/rerun.py writes them.
    source_run_id: uuid.UUID | None = Field(
        default=None, foreign_key="runs.id", ondelete="SET NULL", index=True
    )
    source_kind: str = Field(default="", max_length=10, sa_column_kwargs={"server_default": ""})
    source_node_id: str | None = Field(default=None, max_length=100)
    # A child run started by a sub-workflow step: the run and step that wait for it (engine/child_runs.py).
    parent_run_id: uuid.UUID | None = Field(
        default=None, foreign_key="runs.id", ondelete="CASCADE", index=True
    )
    parent_step_id: uuid.UUID | None = None  # no foreign key: step_runs already points at runs
    created_at: datetime = _ts()
    started_at: datetime | None = _ts(nullable=True, default=False)
    finished_at: datetime | None = _ts(nullable=True, default=False)


class StepRun(SQLModel, table=True):
    """One visit of one node in one run; its outputs are stored once, keyed by (run, node, visit)."""

    __tablename__ = "step_runs"
    __table_args__ = (
        UniqueConstraint("run_id", "node_id", "visit", name="uq_step_run_visit"),
        Index("ix_step_runs_sweep", "status", "lease_until"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    run_id: uuid.UUID = Field(foreign_key="runs.id", ondelete="CASCADE", index=True)
    node_id: str = Field(max_length=100)
    node_type: str = Field(max_length=100)
    visit: int = 1
    status: str = Field(default="queued", max_length=20)
    attempt: int = 0
    inputs: dict | None = _json()
    outputs: dict | None = _json()
    fired_edges: list | None = Field(default=None, sa_type=JSONB)
    error: str | None = None
    # When the Celery message left (NULL: recorded but not yet sent; the sweeper sends it).
    sent_at: datetime | None = _ts(nullable=True, default=False)
    not_before: datetime | None = _ts(nullable=True, default=False)
    lease_until: datetime | None = _ts(nullable=True, default=False)
    worker: str | None = Field(default=None, max_length=200)
    queued_at: datetime = _ts()
    started_at: datetime | None = _ts(nullable=True, default=False)
    finished_at: datetime | None = _ts(nullable=True, default=False)
    metrics: dict | None = _json()
    # The step of the source run whose recorded result this copy reuses (a re-run from a later
    # step); NULL for a step this run executed. No foreign key: the copy outlives its source.
    reused_from: uuid.UUID | None = None
    # The child run a sub-workflow step started and waits for (its parent_step_id points back here).
    child_run_id: uuid.UUID | None = None


class Approval(SQLModel, table=True):
    """A human decision a suspended step waits for."""

    __tablename__ = "approvals"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    run_id: uuid.UUID = Field(foreign_key="runs.id", ondelete="CASCADE", index=True)
    step_id: uuid.UUID = Field(foreign_key="step_runs.id", ondelete="CASCADE", unique=True)
    node_id: str = Field(max_length=100)
    status: str = Field(default="pending", max_length=20, index=True)
    title: str = Field(default="", max_length=300)
    body: str = ""
    request: dict | None = _json()  # form fields, actions, approvers, quorum, data to review
    decision: dict | None = _json()
    decided_by: str | None = None
    deadline: datetime | None = _ts(nullable=True, default=False)
    created_at: datetime = _ts()
    decided_at: datetime | None = _ts(nullable=True, default=False)


class Event(SQLModel, table=True):
    """Outbox: events written in the same transaction as the state change they describe."""

    __tablename__ = "events"
    # The relay reads the unpublished tail in id order; once published a row leaves this index.
    __table_args__ = (Index("ix_events_unpublished", "id", postgresql_where=text("published_at IS NULL")),)

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, unique=True)
    event_type: str = Field(max_length=100, index=True)
    run_id: uuid.UUID | None = Field(default=None, index=True)
    payload: dict = Field(sa_type=JSONB, nullable=False)
    created_at: datetime = _ts()
    published_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))

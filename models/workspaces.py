"""Tables for teams: workspaces and their members, each member with a role of their own there."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, text
from sqlmodel import Field, SQLModel

from models.tables import utcnow


class Workspace(SQLModel, table=True):
    """A boundary between teams: workflows, runs, secrets, keys, agents and knowledge belong to one."""

    __tablename__ = "workspaces"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    slug: str = Field(max_length=60, unique=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000, sa_column_kwargs={"server_default": ""})
    # New users join every workspace marked so (a database trigger on users does it, so every way of
    # creating a user agrees); the default workspace starts marked.
    auto_join: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    # Versions need a second editor's approval before they are published (engine/publishing.py).
    require_review: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    # Limits and retention (engine/run_slots.py, engine/retention.py); None = no limit / keep forever.
    max_concurrent_runs: int | None = Field(default=None, ge=1)  # running at once; more wait queued
    runs_per_hour: int | None = Field(default=None, ge=1)  # starts in any 60 minutes; more are refused
    retention_days: int | None = Field(default=None, ge=1)  # ended runs older than this are deleted
    retention_keep_last: int | None = Field(default=None, ge=1)  # only the newest N ended runs per workflow
    step_data_retention_days: int | None = Field(default=None, ge=1)  # step inputs/outputs cleared after


class WorkspaceMember(SQLModel, table=True):
    """A user's membership of a workspace; `role` None = the user's instance role (users.role)."""

    __tablename__ = "workspace_members"

    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", ondelete="CASCADE", primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True, index=True)
    role: str | None = Field(default=None, max_length=20)  # admin | editor | operator | viewer | None
    added_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))

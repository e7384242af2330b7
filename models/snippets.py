"""Snippets: a selection of nodes and the edges between them, saved under a name to be inserted
into any workflow (personal, or shared with everyone)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.tables import utcnow
from models.workspace_column import workspace_column


class Snippet(SQLModel, table=True):
    """A saved fragment ({nodes, edges}, checked by engine.fragments) and who may see it."""

    __tablename__ = "snippets"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = workspace_column()
    name: str = Field(max_length=200)
    # Who saved it; a personal snippet is seen by its owner only, a shared one by everyone.
    owner_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="CASCADE", index=True)
    shared: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    fragment: dict = Field(default_factory=dict, sa_type=JSONB, nullable=False)
    nodes: int = 0
    created_at: datetime = Field(
        default_factory=utcnow, sa_column_kwargs={"nullable": False}, sa_type=DateTime(timezone=True)
    )

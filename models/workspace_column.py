"""The `workspace_id` column every workspace-owned table carries, and the default workspace's id.

Rows written without a workspace (older code paths, the CLI, fixtures) land in the default
workspace, which migration 0009 creates; the column is a foreign key, so a workspace that still
owns anything cannot be deleted.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlmodel import Field

# Migration 0009 creates this workspace ("Default") and puts every existing row and user in it.
DEFAULT_WORKSPACE_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")


def workspace_column() -> Any:
    """A NOT NULL `workspace_id` foreign key to workspaces.id, indexed, defaulting to the default one."""
    return Field(
        default=DEFAULT_WORKSPACE_ID,
        foreign_key="workspaces.id",
        ondelete="RESTRICT",
        index=True,
        sa_column_kwargs={"server_default": text(f"'{DEFAULT_WORKSPACE_ID}'::uuid")},
    )

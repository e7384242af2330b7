"""Workflow sharing: a share targets one user or one workspace, to read or edit, and says who granted it.

The unused `workflow_shares` of 0001 (workflow, user, permission view|run|edit, keyed by the pair)
becomes a table with its own id, a user OR a workspace as recipient, permission `read` or `edit`,
and who granted it when. Rows of the old table carry over as user shares (view and run become
read). A downgrade keeps the user shares (read becomes view); workspace shares cannot be held by
the old table and are dropped.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401 - autogenerate renders SQLModel columns as sqlmodel.sql.sqltypes.*
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.rename_table("workflow_shares", "workflow_shares_0001")
    op.execute(
        "ALTER TABLE workflow_shares_0001 RENAME CONSTRAINT workflow_shares_pkey TO workflow_shares_0001_pkey"
    )
    op.create_table(
        "workflow_shares",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("shared_with_user_id", sa.Uuid(), nullable=True),
        sa.Column("shared_with_workspace_id", sa.Uuid(), nullable=True),
        sa.Column("permission", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("granted_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("granted_by_user_id", sa.Uuid(), nullable=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(shared_with_user_id IS NULL) <> (shared_with_workspace_id IS NULL)",
            name="ck_workflow_share_target",
        ),
        sa.CheckConstraint("permission IN ('read', 'edit')", name="ck_workflow_share_permission"),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflows.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["shared_with_user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["shared_with_workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["granted_by_user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workflow_id", "shared_with_user_id", name="uq_workflow_share_user"),
        sa.UniqueConstraint("workflow_id", "shared_with_workspace_id", name="uq_workflow_share_workspace"),
    )
    op.create_index(op.f("ix_workflow_shares_workflow_id"), "workflow_shares", ["workflow_id"], unique=False)
    op.create_index(
        op.f("ix_workflow_shares_shared_with_user_id"),
        "workflow_shares",
        ["shared_with_user_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_workflow_shares_shared_with_workspace_id"),
        "workflow_shares",
        ["shared_with_workspace_id"],
        unique=False,
    )
    op.execute(
        "INSERT INTO workflow_shares (id, workflow_id, shared_with_user_id, permission, granted_by, granted_at) "
        "SELECT gen_random_uuid(), workflow_id, user_id, "
        "CASE WHEN permission = 'edit' THEN 'edit' ELSE 'read' END, '', now() FROM workflow_shares_0001"
    )
    op.drop_table("workflow_shares_0001")


def downgrade() -> None:
    op.rename_table("workflow_shares", "workflow_shares_0013")
    op.execute(
        "ALTER TABLE workflow_shares_0013 RENAME CONSTRAINT workflow_shares_pkey TO workflow_shares_0013_pkey"
    )
    op.create_table(
        "workflow_shares",
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("permission", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflows.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workflow_id", "user_id"),
    )
    op.execute(
        "INSERT INTO workflow_shares (workflow_id, user_id, permission) "
        "SELECT workflow_id, shared_with_user_id, CASE WHEN permission = 'edit' THEN 'edit' ELSE 'view' END "
        "FROM workflow_shares_0013 WHERE shared_with_user_id IS NOT NULL"
    )
    op.drop_table("workflow_shares_0013")

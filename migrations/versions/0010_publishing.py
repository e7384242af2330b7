"""Four-eyes publishing: a version's review state and a workflow's published version.

Adds `workspaces.require_review` (off: saving publishes, as before), each version's `status` with
who submitted and reviewed it, and `workflows.published_version`. Existing workflows keep running
what they ran: their latest version becomes the published one, the older ones superseded.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401 - autogenerate renders SQLModel columns as sqlmodel.sql.sqltypes.*
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "workspaces", sa.Column("require_review", sa.Boolean(), server_default=sa.text("false"), nullable=False)
    )
    op.add_column("workflows", sa.Column("published_version", sa.Integer(), nullable=True))
    op.add_column(
        "workflow_versions",
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), server_default="draft", nullable=False),
    )
    op.add_column("workflow_versions", sa.Column("submitted_by", sa.Uuid(), nullable=True))
    op.add_column("workflow_versions", sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("workflow_versions", sa.Column("reviewed_by", sa.Uuid(), nullable=True))
    op.add_column("workflow_versions", sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "workflow_versions",
        sa.Column(
            "review_note", sqlmodel.sql.sqltypes.AutoString(length=2000), server_default="", nullable=False
        ),
    )
    # What ran before keeps running: the latest version is published, the older ones superseded.
    op.execute(
        "UPDATE workflows SET published_version = latest_version "
        "WHERE EXISTS (SELECT 1 FROM workflow_versions v WHERE v.workflow_id = workflows.id "
        "AND v.version = workflows.latest_version)"
    )
    op.execute(
        "UPDATE workflow_versions v SET status = CASE WHEN v.version = w.published_version "
        "THEN 'published' ELSE 'superseded' END FROM workflows w WHERE w.id = v.workflow_id"
    )


def downgrade() -> None:
    for column in ("review_note", "reviewed_at", "reviewed_by", "submitted_at", "submitted_by", "status"):
        op.drop_column("workflow_versions", column)
    op.drop_column("workflows", "published_version")
    op.drop_column("workspaces", "require_review")

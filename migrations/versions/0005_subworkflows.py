"""Sub-workflows: a child run records the run and step that wait for it (parent_run_id,
parent_step_id), and the waiting step the child run it started (child_run_id).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("parent_run_id", sa.Uuid(), nullable=True))
    op.add_column("runs", sa.Column("parent_step_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        "runs_parent_run_id_fkey", "runs", "runs", ["parent_run_id"], ["id"], ondelete="CASCADE"
    )
    op.create_index(op.f("ix_runs_parent_run_id"), "runs", ["parent_run_id"], unique=False)
    op.add_column("step_runs", sa.Column("child_run_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("step_runs", "child_run_id")
    op.drop_index(op.f("ix_runs_parent_run_id"), table_name="runs")
    op.drop_constraint("runs_parent_run_id_fkey", "runs", type_="foreignkey")
    op.drop_column("runs", "parent_step_id")
    op.drop_column("runs", "parent_run_id")

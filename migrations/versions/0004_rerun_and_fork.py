"""Re-run and fork: a run records the run it came from (source_run_id, source_kind, source_node_id)
and a copied step the step whose result it reuses (reused_from).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401 - autogenerate renders SQLModel columns as sqlmodel.sql.sqltypes.*
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.add_column("runs", sa.Column("source_run_id", sa.Uuid(), nullable=True))
    op.add_column("runs", sa.Column("source_kind", _STR(length=10), nullable=False, server_default=""))
    op.add_column("runs", sa.Column("source_node_id", _STR(length=100), nullable=True))
    op.create_foreign_key(
        "runs_source_run_id_fkey", "runs", "runs", ["source_run_id"], ["id"], ondelete="SET NULL"
    )
    op.create_index(op.f("ix_runs_source_run_id"), "runs", ["source_run_id"], unique=False)
    op.add_column("step_runs", sa.Column("reused_from", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("step_runs", "reused_from")
    op.drop_index(op.f("ix_runs_source_run_id"), table_name="runs")
    op.drop_constraint("runs_source_run_id_fkey", "runs", type_="foreignkey")
    op.drop_column("runs", "source_node_id")
    op.drop_column("runs", "source_kind")
    op.drop_column("runs", "source_run_id")

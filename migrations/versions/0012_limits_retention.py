"""Concurrency limits, run quotas and retention.

Per workspace: `max_concurrent_runs`, `runs_per_hour`, `retention_days`, `retention_keep_last`,
`step_data_retention_days`; per workflow: `max_concurrent_runs`. Every one is NULL (no limit, keep
forever) until someone sets it, so upgrading changes nothing. A run over a limit waits with status
`queued` (engine/run_slots.py); the prune job reads the retention columns (engine/retention.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401 - autogenerate renders SQLModel columns as sqlmodel.sql.sqltypes.*
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKSPACE_COLUMNS = (
    "max_concurrent_runs",
    "runs_per_hour",
    "retention_days",
    "retention_keep_last",
    "step_data_retention_days",
)


def upgrade() -> None:
    for name in WORKSPACE_COLUMNS:
        op.add_column("workspaces", sa.Column(name, sa.Integer(), nullable=True))
    op.add_column("workflows", sa.Column("max_concurrent_runs", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("workflows", "max_concurrent_runs")
    for name in reversed(WORKSPACE_COLUMNS):
        op.drop_column("workspaces", name)

"""Trust boundaries: secret bindings and provenance, who started a run, verified e-mail,
sign-out revocations and used OIDC states in PostgreSQL, sign-in throttling.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401 - autogenerate renders SQLModel columns as sqlmodel.sql.sqltypes.*
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    """Add the columns (server defaults, so existing rows and plain INSERTs get them) and three tables."""
    empty_list = sa.text("'[]'::jsonb")
    op.add_column("secrets", sa.Column("description", _STR(length=500), nullable=False, server_default=""))
    op.add_column(
        "secrets",
        sa.Column("allowed_destinations", postgresql.JSONB(), nullable=False, server_default=empty_list),
    )
    op.add_column(
        "secrets",
        sa.Column("allowed_node_types", postgresql.JSONB(), nullable=False, server_default=empty_list),
    )
    op.add_column("secrets", sa.Column("created_by", _STR(length=320), nullable=False, server_default=""))
    op.add_column("secrets", sa.Column("rotated_by", _STR(length=320), nullable=False, server_default=""))
    op.add_column("secrets", sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("runs", sa.Column("started_by", _STR(length=120), nullable=False, server_default=""))
    op.add_column("runs", sa.Column("started_via", _STR(length=20), nullable=False, server_default=""))
    op.add_column(
        "users", sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    # The local account's address is its own: verified by definition.
    op.execute("UPDATE users SET email_verified = true WHERE issuer = 'local'")

    op.create_table(
        "revoked_sessions",
        sa.Column("session_id", _STR(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_index(op.f("ix_revoked_sessions_expires_at"), "revoked_sessions", ["expires_at"], unique=False)
    op.create_table(
        "used_oidc_states",
        sa.Column("state_hash", _STR(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_hash"),
    )
    op.create_index(op.f("ix_used_oidc_states_expires_at"), "used_oidc_states", ["expires_at"], unique=False)
    op.create_table(
        "auth_throttle",
        sa.Column("key", _STR(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_table("auth_throttle")
    op.drop_index(op.f("ix_used_oidc_states_expires_at"), table_name="used_oidc_states")
    op.drop_table("used_oidc_states")
    op.drop_index(op.f("ix_revoked_sessions_expires_at"), table_name="revoked_sessions")
    op.drop_table("revoked_sessions")
    op.drop_column("users", "email_verified")
    op.drop_column("runs", "started_via")
    op.drop_column("runs", "started_by")
    for column in ("rotated_at", "rotated_by", "created_by", "allowed_node_types", "allowed_destinations"):
        op.drop_column("secrets", column)
    op.drop_column("secrets", "description")

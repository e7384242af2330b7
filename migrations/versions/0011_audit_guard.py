"""Audit entries that cannot be changed (a trigger refuses UPDATE and DELETE); source, before, after.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A row-level trigger: any UPDATE or DELETE of an entry fails, whoever sends it (the app's own
# role included). TRUNCATE is a table owner's maintenance, not an app action, and is left alone.
_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION flowloom_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log entries cannot be changed or deleted (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""
_GUARD_TRIGGER = """
CREATE TRIGGER audit_log_append_only
BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION flowloom_audit_log_append_only()
"""


def upgrade() -> None:
    _str = sqlmodel.sql.sqltypes.AutoString
    op.add_column("audit_log", sa.Column("source", _str(length=20), nullable=False, server_default=""))
    op.add_column("audit_log", sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("audit_log", sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"], unique=False)
    op.create_index("ix_audit_log_target", "audit_log", ["target_type", "target_id"], unique=False)
    op.execute(_GUARD_FUNCTION)
    op.execute(_GUARD_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS flowloom_audit_log_append_only()")
    op.drop_index("ix_audit_log_target", table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_actor"), table_name="audit_log")
    op.drop_column("audit_log", "after")
    op.drop_column("audit_log", "before")
    op.drop_column("audit_log", "source")

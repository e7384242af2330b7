"""Workspaces: members with a role in each, and every object's workspace.

Creates the default workspace (every existing row and user lands in it), a `workspace_id` on
workflows, runs, secrets, API keys, agents, knowledge documents, memory chunks and snippets, and
two triggers: new users join the workspaces marked `auto_join`, and a run always carries its
workflow's workspace whichever code path inserts it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401 - autogenerate renders SQLModel columns as sqlmodel.sql.sqltypes.*
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT = "00000000-0000-4000-8000-000000000001"  # models.workspace_column.DEFAULT_WORKSPACE_ID
OWNED = (
    "workflows",
    "runs",
    "secrets",
    "api_keys",
    "agents",
    "knowledge_documents",
    "memory_chunks",
    "snippets",
)


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("slug", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column(
            "description", sqlmodel.sql.sqltypes.AutoString(length=2000), server_default="", nullable=False
        ),
        sa.Column("auto_join", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.execute(
        f"INSERT INTO workspaces (id, slug, name, description, auto_join, created_at) "
        f"VALUES ('{DEFAULT}', 'default', 'Default', 'Everyone who signs in joins it.', true, now())"
    )
    op.create_table(
        "workspace_members",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "user_id"),
    )
    op.create_index(op.f("ix_workspace_members_user_id"), "workspace_members", ["user_id"], unique=False)
    op.execute(
        f"INSERT INTO workspace_members (workspace_id, user_id, role, added_at) SELECT '{DEFAULT}', id, NULL, now() FROM users"
    )
    for table in OWNED:
        op.add_column(
            table,
            sa.Column(
                "workspace_id", sa.Uuid(), server_default=sa.text(f"'{DEFAULT}'::uuid"), nullable=False
            ),
        )
        op.create_index(op.f(f"ix_{table}_workspace_id"), table, ["workspace_id"], unique=False)
        op.create_foreign_key(None, table, "workspaces", ["workspace_id"], ["id"], ondelete="RESTRICT")
    # A secret's name is unique within its workspace (each may have its own "openai_key").
    op.drop_constraint("secrets_name_key", "secrets", type_="unique")
    op.create_unique_constraint("uq_secrets_workspace_name", "secrets", ["workspace_id", "name"])
    # Whichever path creates a user (sign-in, the local admin, a script), it joins the auto-join
    # workspaces with its instance role; whichever path creates a run, it is in its workflow's workspace.
    op.execute(
        """
        CREATE FUNCTION flowloom_user_joins() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO workspace_members (workspace_id, user_id, role, added_at)
            SELECT id, NEW.id, NULL, now() FROM workspaces WHERE auto_join
            ON CONFLICT DO NOTHING;
            RETURN NEW;
        END $$;
        CREATE TRIGGER users_join_workspaces AFTER INSERT ON users
            FOR EACH ROW EXECUTE FUNCTION flowloom_user_joins();
        CREATE FUNCTION flowloom_run_workspace() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.workflow_id IS NOT NULL THEN
                SELECT workspace_id INTO NEW.workspace_id FROM workflows WHERE id = NEW.workflow_id;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER runs_take_workflow_workspace BEFORE INSERT ON runs
            FOR EACH ROW EXECUTE FUNCTION flowloom_run_workspace();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS runs_take_workflow_workspace ON runs")
    op.execute("DROP FUNCTION IF EXISTS flowloom_run_workspace()")
    op.execute("DROP TRIGGER IF EXISTS users_join_workspaces ON users")
    op.execute("DROP FUNCTION IF EXISTS flowloom_user_joins()")
    op.drop_constraint("uq_secrets_workspace_name", "secrets", type_="unique")
    op.create_unique_constraint("secrets_name_key", "secrets", ["name"])
    for table in OWNED:
        op.drop_index(op.f(f"ix_{table}_workspace_id"), table_name=table)
        op.drop_column(table, "workspace_id")
    op.drop_index(op.f("ix_workspace_members_user_id"), table_name="workspace_members")
    op.drop_table("workspace_members")
    op.drop_table("workspaces")

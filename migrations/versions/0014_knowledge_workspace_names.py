"""Knowledge document names are unique per workspace: each workspace may have its own "docs/faq.md".

The unique constraint of 0008 on (collection, name) becomes one on (workspace_id, collection,
name), as secrets' names became per workspace in 0009. A downgrade restores the old constraint;
it fails when two workspaces hold a document of the same collection and name.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 15:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("uq_knowledge_document_name", "knowledge_documents", type_="unique")
    op.create_unique_constraint(
        "uq_knowledge_document_name", "knowledge_documents", ["workspace_id", "collection", "name"]
    )


def downgrade() -> None:
    op.drop_constraint("uq_knowledge_document_name", "knowledge_documents", type_="unique")
    op.create_unique_constraint("uq_knowledge_document_name", "knowledge_documents", ["collection", "name"])

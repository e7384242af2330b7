"""Tables for agents: long-term memory chunks in pgvector and the encrypted secrets store."""

from __future__ import annotations

import uuid
from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import Column, DateTime, Index, LargeBinary, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.tables import utcnow
from models.workspace_column import workspace_column

EMBEDDING_DIM = 384  # all-MiniLM-L6-v2


class MemoryChunk(SQLModel, table=True):
    """One chunk of a document with its embedding; searched by cosine distance through HNSW."""

    __tablename__ = "memory_chunks"
    __table_args__ = (
        Index(
            "ix_memory_chunks_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    collection: str = Field(max_length=100, index=True)
    document_id: str = Field(max_length=200)
    workspace_id: uuid.UUID = workspace_column()
    chunk_index: int = 0
    content: str
    meta: dict | None = Field(default=None, sa_type=JSONB)
    embedding: list[float] = Field(sa_column=Column(Vector(EMBEDDING_DIM), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class KnowledgeDocument(SQLModel, table=True):
    """An uploaded document of a knowledge collection: its file, how it is chunked, its indexing state.

    Its chunks are memory_chunks rows of the same collection with document_id = name; indexing (and
    re-indexing) reads the file from here, so a collection can be rebuilt with other settings.
    """

    __tablename__ = "knowledge_documents"
    # A name is unique within its workspace's collection: each workspace may have its own "docs/faq.md".
    __table_args__ = (
        UniqueConstraint("workspace_id", "collection", "name", name="uq_knowledge_document_name"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    collection: str = Field(max_length=100, index=True)
    workspace_id: uuid.UUID = workspace_column()
    name: str = Field(max_length=200)
    media_type: str = Field(default="text/plain", max_length=100)
    size: int = 0
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    chunk_size: int = 800
    chunk_overlap: int = 100
    status: str = Field(default="queued", max_length=20)  # queued | indexing | ready | failed
    chunks: int = 0
    characters: int = 0
    error: str | None = None
    uploaded_by: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    indexed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class Secret(SQLModel, table=True):
    """A credential referenced by name from node configs; stored encrypted, never exported."""

    __tablename__ = "secrets"
    # A name is unique within its workspace: each workspace may have its own "openai_key".
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_secrets_workspace_name"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = workspace_column()
    name: str = Field(max_length=100)
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    description: str = Field(default="", max_length=500, sa_column_kwargs={"server_default": ""})
    # Where the value may go: hosts ("api.openai.com", "*.example.com") or URL prefixes
    # ("https://hooks.example.com/flowloom/"). Empty = no network destination at all.
    allowed_destinations: list = Field(
        default_factory=list,
        sa_type=JSONB,
        nullable=False,
        sa_column_kwargs={"server_default": text("'[]'::jsonb")},
    )
    # Node types that may read it ("tool.http", "agent"); empty = any node type.
    allowed_node_types: list = Field(
        default_factory=list,
        sa_type=JSONB,
        nullable=False,
        sa_column_kwargs={"server_default": text("'[]'::jsonb")},
    )
    created_by: str = Field(default="", max_length=320, sa_column_kwargs={"server_default": ""})
    rotated_by: str = Field(default="", max_length=320, sa_column_kwargs={"server_default": ""})
    rotated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))

"""Knowledge collections for the Knowledge page: what each holds, adding and removing documents,
(re-)indexing them in a worker (the memory family's `memory.index_documents` job).

Every door takes the caller's `workspace_id`: collections, documents and chunks are that
workspace's only (two workspaces may each have a collection "docs" with a file "faq.md"), and the
id of another workspace's document finds nothing, as an unknown one. None (engine-internal
callers) is the default workspace.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlmodel import Session, col

from engine import audit, jobs
from engine.contract import (
    DOCUMENT_TYPES,
    INDEX_DOCUMENTS_JOB,
    MAX_DOCUMENT_BYTES,
    MEMORY_COLLECTION_PATTERN,
    document_media_type,
)
from engine.errors import ErrorCode, FlowloomError
from engine.ids import parse_id
from models.memory import KnowledgeDocument, MemoryChunk
from models.workspace_column import DEFAULT_WORKSPACE_ID

MAX_FILES = 20
MAX_FILE_BYTES = MAX_DOCUMENT_BYTES
_COLLECTION = re.compile(MEMORY_COLLECTION_PATTERN)


@dataclass(frozen=True)
class CollectionSummary:
    name: str
    documents: int
    ready: int
    failed: int
    chunks: int


@dataclass(frozen=True)
class Upload:
    """One file as the browser sent it."""

    filename: str
    data: bytes


def workspace_key(workspace_id: str | uuid.UUID | None) -> uuid.UUID:
    """The workspace a door acts in: None or "" is the default one; an id that is no UUID names a
    workspace that has nothing."""
    if workspace_id is None or workspace_id == "":
        return DEFAULT_WORKSPACE_ID
    return parse_id(workspace_id) or uuid.UUID(int=0)


def check_collection(name: str) -> str:
    name = name.strip()
    if not _COLLECTION.match(name):
        raise FlowloomError(
            f"collection: {name!r} is not a collection name (letters, digits, '_', '-', '.', at most 100)",
            code=ErrorCode.REQUEST_INVALID, field="collection",
        )  # fmt: skip
    return name


def collections(session: Session, *, workspace_id: str | uuid.UUID | None = None) -> list[CollectionSummary]:
    """Every collection of the workspace with uploaded documents or stored chunks."""
    workspace = workspace_key(workspace_id)
    docs = session.exec(
        select(
            KnowledgeDocument.collection,
            func.count(),
            func.count().filter(col(KnowledgeDocument.status) == "ready"),
            func.count().filter(col(KnowledgeDocument.status) == "failed"),
        )
        .where(col(KnowledgeDocument.workspace_id) == workspace)
        .group_by(col(KnowledgeDocument.collection))
    ).all()
    chunk_counts = dict(
        session.exec(
            select(MemoryChunk.collection, func.count())
            .where(col(MemoryChunk.workspace_id) == workspace)
            .group_by(col(MemoryChunk.collection))
        ).all()
    )
    found = {
        name: CollectionSummary(name, n, ready, failed, chunk_counts.get(name, 0))
        for name, n, ready, failed in docs
    }
    for name, chunks in chunk_counts.items():
        found.setdefault(name, CollectionSummary(name, 0, 0, 0, chunks))
    return sorted(found.values(), key=lambda c: c.name)


def documents(
    session: Session, collection: str, *, workspace_id: str | uuid.UUID | None = None
) -> list[KnowledgeDocument]:
    """The documents of the workspace's collection `collection`, by name."""
    return list(
        session.exec(
            select(KnowledgeDocument)
            .where(
                KnowledgeDocument.collection == collection,
                col(KnowledgeDocument.workspace_id) == workspace_key(workspace_id),
            )
            .order_by(col(KnowledgeDocument.name))
        ).scalars()
    )


def add_documents(
    session: Session,
    collection: str,
    uploads: list[Upload],
    *,
    chunk_size: int = 800,
    chunk_overlap: int = 100,
    uploaded_by: uuid.UUID | None = None,
    workspace_id: str | uuid.UUID | None = None,
) -> list[str]:
    """Store the files in the workspace's collection (a file with a name already in it replaces it);
    their ids, to index."""
    collection = check_collection(collection)
    workspace = workspace_key(workspace_id)
    if not uploads:
        raise FlowloomError("choose at least one file", code=ErrorCode.REQUEST_INVALID)
    if len(uploads) > MAX_FILES:
        raise FlowloomError(f"at most {MAX_FILES} files at once", code=ErrorCode.REQUEST_INVALID)
    if not 50 <= chunk_size <= 8000 or not 0 <= chunk_overlap < chunk_size:
        raise FlowloomError(
            "chunk size must be 50-8000 characters and the overlap smaller than it",
            code=ErrorCode.REQUEST_INVALID, field="chunk_size",
        )  # fmt: skip
    ids = []
    for upload in uploads:
        name = upload.filename.rsplit("/", 1)[-1].strip()[:200] or "document"
        media_type = document_media_type(name)
        if media_type is None:
            allowed = ", ".join(sorted(DOCUMENT_TYPES))
            raise FlowloomError(
                f"{name}: is not a document type Flowloom reads ({allowed})",
                code=ErrorCode.REQUEST_INVALID, field="files",
            )  # fmt: skip
        if len(upload.data) > MAX_DOCUMENT_BYTES:
            raise FlowloomError(
                f"{name}: {len(upload.data):,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}",
                code=ErrorCode.BODY_TOO_LARGE,
            )
        row = session.exec(
            select(KnowledgeDocument).where(KnowledgeDocument.collection == collection, KnowledgeDocument.name == name,
                                            col(KnowledgeDocument.workspace_id) == workspace)
        ).scalars().first()  # fmt: skip
        if row is None:
            row = KnowledgeDocument(collection=collection, name=name, content=b"", workspace_id=workspace)
        row.media_type, row.content, row.size = media_type, upload.data, len(upload.data)
        row.chunk_size, row.chunk_overlap, row.status, row.error = chunk_size, chunk_overlap, "queued", None
        row.uploaded_by = uploaded_by
        session.add(row)
        session.flush()
        ids.append(str(row.id))
        audit.record(session, action="knowledge.document_added", target_type="knowledge_document",
                     target_id=str(row.id), details={"collection": collection, "name": name, "size": row.size})  # fmt: skip
    return ids


def get_document(
    session: Session, document_id: str, *, workspace_id: str | uuid.UUID | None = None
) -> KnowledgeDocument | None:
    """The workspace's document `document_id`; None when it is unknown, no id, or another workspace's."""
    wanted = parse_id(document_id)
    row = session.get(KnowledgeDocument, wanted) if wanted else None
    if row is None or row.workspace_id != workspace_key(workspace_id):
        return None
    return row


def delete_document(
    session: Session, document_id: str, *, workspace_id: str | uuid.UUID | None = None
) -> str | None:
    """Remove a document of the workspace and its chunks; its name, or None when there was none."""
    row = get_document(session, document_id, workspace_id=workspace_id)
    if row is None:
        return None
    session.exec(
        delete(MemoryChunk).where(
            col(MemoryChunk.collection) == row.collection, col(MemoryChunk.document_id) == row.name,
            col(MemoryChunk.workspace_id) == row.workspace_id,
        )
    )  # fmt: skip
    session.delete(row)
    audit.record(session, action="knowledge.document_deleted", target_type="knowledge_document",
                 target_id=document_id, before={"collection": row.collection, "name": row.name, "size": row.size})  # fmt: skip
    return row.name


def mark_queued(session: Session, collection: str, *, workspace_id: str | uuid.UUID | None = None) -> int:
    rows = documents(session, collection, workspace_id=workspace_id)
    for row in rows:
        row.status, row.error = "queued", None
        session.add(row)
    return len(rows)


def start_indexing(
    *,
    document_ids: list[str] | None = None,
    collection: str = "",
    workspace_id: str | uuid.UUID | None = None,
) -> str:
    """Submit the indexing job to the workers; its job id (engine.jobs.status follows it). The job
    indexes documents of the workspace only (an id of another workspace's document is skipped)."""
    params: dict[str, object] = {"document_ids": document_ids} if document_ids else {"collection": collection}
    params["workspace_id"] = str(workspace_key(workspace_id))
    return jobs.submit(INDEX_DOCUMENTS_JOB, params)


def last_indexed(rows: list[KnowledgeDocument]) -> datetime | None:
    times = [r.indexed_at for r in rows if r.indexed_at]
    return max(times) if times else None

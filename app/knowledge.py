"""Knowledge collections for the Knowledge page: what each holds, adding and removing documents,
(re-)indexing them in a worker (the memory family's `memory.index_documents` job)."""

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
from models.memory import KnowledgeDocument, MemoryChunk

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


def check_collection(name: str) -> str:
    name = name.strip()
    if not _COLLECTION.match(name):
        raise FlowloomError(
            f"collection: {name!r} is not a collection name (letters, digits, '_', '-', '.', at most 100)",
            code=ErrorCode.REQUEST_INVALID, field="collection",
        )  # fmt: skip
    return name


def collections(session: Session) -> list[CollectionSummary]:
    """Every collection with uploaded documents or stored chunks."""
    docs = session.exec(
        select(
            KnowledgeDocument.collection,
            func.count(),
            func.count().filter(col(KnowledgeDocument.status) == "ready"),
            func.count().filter(col(KnowledgeDocument.status) == "failed"),
        ).group_by(col(KnowledgeDocument.collection))
    ).all()
    chunk_counts = dict(
        session.exec(select(MemoryChunk.collection, func.count()).group_by(col(MemoryChunk.collection))).all()
    )
    found = {
        name: CollectionSummary(name, n, ready, failed, chunk_counts.get(name, 0))
        for name, n, ready, failed in docs
    }
    for name, chunks in chunk_counts.items():
        found.setdefault(name, CollectionSummary(name, 0, 0, 0, chunks))
    return sorted(found.values(), key=lambda c: c.name)


def documents(session: Session, collection: str) -> list[KnowledgeDocument]:
    return list(
        session.exec(
            select(KnowledgeDocument)
            .where(KnowledgeDocument.collection == collection)
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
) -> list[str]:
    """Store the files (a file with a name already in the collection replaces it); their ids, to index."""
    collection = check_collection(collection)
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
            select(KnowledgeDocument).where(KnowledgeDocument.collection == collection, KnowledgeDocument.name == name)
        ).scalars().first()  # fmt: skip
        if row is None:
            row = KnowledgeDocument(collection=collection, name=name, content=b"")
        row.media_type, row.content, row.size = media_type, upload.data, len(upload.data)
        row.chunk_size, row.chunk_overlap, row.status, row.error = chunk_size, chunk_overlap, "queued", None
        row.uploaded_by = uploaded_by
        session.add(row)
        session.flush()
        ids.append(str(row.id))
        audit.record(session, action="knowledge.document_added", target_type="knowledge_document",
                     target_id=str(row.id), details={"collection": collection, "name": name, "size": row.size})  # fmt: skip
    return ids


def delete_document(session: Session, document_id: str) -> str | None:
    """Remove a document and its chunks; its name, or None when there was none."""
    row = session.get(KnowledgeDocument, uuid.UUID(document_id))
    if row is None:
        return None
    session.exec(
        delete(MemoryChunk).where(
            col(MemoryChunk.collection) == row.collection, col(MemoryChunk.document_id) == row.name
        )
    )
    session.delete(row)
    audit.record(session, action="knowledge.document_deleted", target_type="knowledge_document",
                 target_id=document_id, before={"collection": row.collection, "name": row.name, "size": row.size})  # fmt: skip
    return row.name


def mark_queued(session: Session, collection: str) -> int:
    rows = documents(session, collection)
    for row in rows:
        row.status, row.error = "queued", None
        session.add(row)
    return len(rows)


def start_indexing(*, document_ids: list[str] | None = None, collection: str = "") -> str:
    """Submit the indexing job to the workers; its job id (engine.jobs.status follows it)."""
    params: dict[str, object] = {"document_ids": document_ids} if document_ids else {"collection": collection}
    return jobs.submit(INDEX_DOCUMENTS_JOB, params)


def last_indexed(rows: list[KnowledgeDocument]) -> datetime | None:
    times = [r.indexed_at for r in rows if r.indexed_at]
    return max(times) if times else None

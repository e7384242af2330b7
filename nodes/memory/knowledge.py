"""Knowledge collections: the text of uploaded files, and the job that indexes them into memory.

A document's file (PDF, Markdown, plain text, HTML) is kept in `knowledge_documents`; the
`memory.index_documents` job, run by a worker, reads it, extracts its text, chunks it with the
document's own settings and embeds it into `memory_chunks` (document_id = its name), reporting
progress. Re-indexing a collection runs the same job over all its documents. A document's chunks
belong to its workspace; the job, given a workspace, indexes that workspace's documents only. `memory.search`
and agents with a memory collection then find its chunks, with their document, chunk and score.

Text extraction: PDF with pypdf (the text layer only: a scanned PDF without one has no text,
and is refused saying so); HTML with the standard library's parser (scripts, styles and tags
dropped, block elements as line breaks); Markdown and text as they are (UTF-8, else Latin-1).
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import select, update

from engine.contract import (
    DOCUMENT_TYPES,
    INDEX_DOCUMENTS_JOB,
    MAX_DOCUMENT_BYTES,
    Document,
    Progress,
    StepError,
    database,
    document_media_type,
    register_job,
)
from models.core_tables import table_of
from models.memory import KnowledgeDocument
from nodes.memory.memory_nodes import ingest, workspace_of

INDEX_JOB = INDEX_DOCUMENTS_JOB
MAX_FILE_BYTES = MAX_DOCUMENT_BYTES
MAX_TEXT_CHARS = 5_000_000
_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"}


class UnsupportedDocument(ValueError):
    """A file whose type or contents cannot be turned into text; the message says why."""


def media_type_of(filename: str) -> str:
    """The media type a file name says, or UnsupportedDocument."""
    found = document_media_type(filename)
    if found is None:
        suffix = PurePosixPath(filename.lower()).suffix
        allowed = ", ".join(sorted(DOCUMENT_TYPES))
        raise UnsupportedDocument(
            f"{filename}: {suffix or 'no suffix'} is not a document type Flowloom reads ({allowed})"
        )
    return found


class _TextOfHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def extract_text(raw: bytes, media_type: str) -> str:
    """The text of a document; UnsupportedDocument when there is none to read."""
    if len(raw) > MAX_FILE_BYTES:
        raise UnsupportedDocument(f"the file has {len(raw):,} bytes; the limit is {MAX_FILE_BYTES:,}")
    if media_type == "application/pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(io.BytesIO(raw))
            if reader.is_encrypted:
                raise UnsupportedDocument("the PDF is encrypted")
            text = "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
        except (PdfReadError, ValueError, KeyError, TypeError) as exc:
            raise UnsupportedDocument(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
        if not text.strip():
            raise UnsupportedDocument("the PDF has no text layer (a scan?); Flowloom does not run OCR")
    elif media_type == "text/html":
        parser = _TextOfHtml()
        parser.feed(_decode(raw))
        text = "".join(parser.parts)
    else:
        text = _decode(raw)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if not text:
        raise UnsupportedDocument("the document holds no text")
    return text[:MAX_TEXT_CHARS]


_docs = table_of(KnowledgeDocument)


def index_documents(
    progress: Progress, document_ids: list[str] | None = None, collection: str = "", workspace_id: str = ""
) -> dict[str, Any]:
    """The job: (re-)index the given documents, or every document of `collection`, one at a time;
    with `workspace_id` only that workspace's (another workspace's document id is skipped)."""
    with database().connect() as conn:
        query = select(_docs.c.id, _docs.c.collection, _docs.c.name, _docs.c.media_type, _docs.c.content,
                       _docs.c.chunk_size, _docs.c.chunk_overlap, _docs.c.workspace_id)  # fmt: skip
        if workspace_id:
            query = query.where(_docs.c.workspace_id == workspace_of(workspace_id))
        if document_ids:
            query = query.where(_docs.c.id.in_(document_ids))
        elif collection:
            query = query.where(_docs.c.collection == collection)
        else:
            raise StepError("give document_ids or a collection", retryable=False)
        rows = conn.execute(query.order_by(_docs.c.name)).all()
    done, failed, chunks = 0, 0, 0
    for i, row in enumerate(rows):
        progress(i / max(len(rows), 1), f"{row.name}: reading ({i + 1} of {len(rows)})")
        _set(row.id, status="indexing", error=None)
        try:
            text = extract_text(row.content, row.media_type)

            def report(embedded: int, total: int, note: str, i: int = i, name: str = row.name) -> None:
                progress((i + embedded / max(total, 1)) / max(len(rows), 1), f"{name}: {note}")

            stored = ingest(
                row.collection, [Document(row.name, text, {"document": row.name, "media_type": row.media_type})],
                chunk_size=row.chunk_size, chunk_overlap=row.chunk_overlap, on_progress=report,
                workspace_id=row.workspace_id,
            )  # fmt: skip
        except (UnsupportedDocument, StepError) as exc:
            failed += 1
            _set(row.id, status="failed", error=str(exc)[:2000])
            continue
        done += 1
        chunks += stored.chunks
        _set(row.id, status="ready", chunks=stored.chunks, characters=len(text), indexed_at=datetime.now(UTC))
    progress(1.0, f"indexed {done} documents into {chunks} chunks" + (f"; {failed} failed" if failed else ""))
    return {"indexed": done, "failed": failed, "chunks": chunks}


def _set(document_id: Any, **values: Any) -> None:
    with database().begin() as conn:
        conn.execute(update(_docs).where(_docs.c.id == document_id).values(**values))


register_job(INDEX_JOB, index_documents, description="Extract, chunk and embed uploaded documents")

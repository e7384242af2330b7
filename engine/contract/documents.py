"""Values of text and `documents` ports (text, lists, dicts) turned into texts and documents."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import StepError

# How memory collections (memory.* nodes, agents' long-term memory) are named.
MEMORY_COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
TEXT_KEYS = ("text", "content", "label", "page_content")


def item_text(item: Any) -> str:
    """The text of one item: a string itself, a dict's text/content/label field, else its JSON."""
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        for key in TEXT_KEYS:
            if isinstance(item.get(key), str):
                return item[key]
    if item is None:
        return ""
    return json.dumps(item, ensure_ascii=False, default=str)


def as_text_list(value: Any, *, field: str) -> list[str]:
    """A list of non-empty texts from a string, a list of strings/dicts, or a dict."""
    items = value if isinstance(value, list) else [value]
    texts = [item_text(v) for v in items]
    if not texts or not any(t.strip() for t in texts):
        raise StepError(f"{field}: no text to work on; connect an input or fill in {field}", retryable=False)
    return texts


@dataclass(frozen=True)
class Document:
    """One document to store: an id, its text and metadata kept with each chunk."""

    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


def as_documents(value: Any, *, field: str = "in") -> list[Document]:
    """Documents from a string, a list of strings, or dicts with id/text (or content) and meta."""
    items = value if isinstance(value, list) else [value]
    docs = []
    for i, item in enumerate(items):
        if isinstance(item, Mapping):
            doc_id = str(item.get("id") or item.get("document_id") or f"doc-{i}")
            meta = item.get("meta") or item.get("metadata") or {}
            docs.append(Document(doc_id, item_text(item), dict(meta) if isinstance(meta, Mapping) else {}))
        elif item is not None:
            docs.append(Document(f"doc-{i}", item_text(item)))
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise StepError(
            f"{field}: no documents with text; send text, a list of texts or {{id, text}} objects",
            retryable=False,
        )
    return docs


# Uploaded documents of knowledge collections: what a memory family reads, and its indexing job.
INDEX_DOCUMENTS_JOB = "memory.index_documents"
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
DOCUMENT_TYPES = {
    ".pdf": "application/pdf",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".text": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
}


def document_media_type(filename: str) -> str | None:
    """The media type of an uploadable document by its file name's suffix; None for other files."""
    name = filename.lower().rsplit("/", 1)[-1]
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    return DOCUMENT_TYPES.get(suffix)

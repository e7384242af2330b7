"""Documents as nodes receive them (text, lists, dicts) turned into texts, and texts into chunks."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import StepError

TEXT_KEYS = ("text", "content", "label", "page_content")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


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


def chunk_text(text: str, *, size: int, overlap: int) -> list[str]:
    """Split `text` into chunks of at most `size` characters, on paragraph then sentence bounds.

    Consecutive chunks share up to `overlap` trailing characters of whole sentences, so an
    answer that straddles a boundary is still found whole in one chunk.
    """
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        for sentence in _SENTENCE_END.split(paragraph.strip()):
            sentence = " ".join(sentence.split())
            while len(sentence) > size:  # a sentence longer than a chunk: cut on a space
                cut = sentence.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                pieces.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if sentence:
                pieces.append(sentence)
    chunks: list[str] = []
    current: list[str] = []
    for piece in pieces:
        if current and len(" ".join([*current, piece])) > size:
            chunks.append(" ".join(current))
            current = _tail(current, overlap)
            while current and len(" ".join([*current, piece])) > size:
                current.pop(0)
        current.append(piece)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _tail(pieces: list[str], overlap: int) -> list[str]:
    kept: list[str] = []
    for piece in reversed(pieces):
        if len(" ".join([piece, *kept])) > overlap:
            break
        kept.insert(0, piece)
    return kept

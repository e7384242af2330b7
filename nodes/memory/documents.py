"""Documents cut into chunks for memory: on paragraph then sentence bounds, with overlap."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


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

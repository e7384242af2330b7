"""Citations of an agent's answer: which recalled memory chunks it cites, as [document#chunk]."""

from __future__ import annotations

import re
from typing import Any

SNIPPET_CHARS = 240
_CITE = re.compile(r"\[([^\[\]#\n]{1,200})#(\d{1,6})\]")


def label(hit: dict[str, Any]) -> str:
    """How a recalled chunk is named to the model and in citations: `refunds#0`."""
    return f"{hit.get('document_id', '?')}#{hit.get('chunk_index', 0)}"


def citations(hits: list[dict[str, Any]], answer: str) -> list[dict[str, Any]]:
    """Each recalled chunk with its document, chunk, score and a snippet, and whether the answer cites it
    (as `[document#chunk]`); the answer's citations of chunks it was never given are listed as unknown."""
    cited = {f"{doc}#{chunk}" for doc, chunk in _CITE.findall(answer or "")}
    found = []
    for hit in hits:
        name = label(hit)
        content = str(hit.get("content", ""))
        found.append(
            {
                "id": name,
                "document": hit.get("document_id"),
                "chunk": hit.get("chunk_index"),
                "score": round(float(hit.get("score", 0.0)), 4),
                "snippet": content if len(content) <= SNIPPET_CHARS else content[: SNIPPET_CHARS - 1] + "…",
                "cited": name in cited,
            }
        )
    known = {c["id"] for c in found}
    for name in sorted(cited - known):  # a citation of nothing it was shown: flagged, not dropped
        doc, _, chunk = name.rpartition("#")
        found.append({"id": name, "document": doc, "chunk": int(chunk), "score": None, "snippet": "", "cited": True,
                      "unknown": True})  # fmt: skip
    return found

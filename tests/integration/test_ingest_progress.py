"""memory.ingest over many documents reports its progress batch by batch, with the real embedder."""

from __future__ import annotations

import pytest

from engine.contract import Document
from nodes.memory import memory_nodes
from tests.fixtures.ai_engine import ai_data_dir, ai_env  # noqa: F401

pytestmark = pytest.mark.usefixtures("ai_env", "clean_db")


def test_ingesting_many_documents_reports_progress_after_each_batch_of_chunks() -> None:
    documents = [Document(f"note-{i}", f"Note {i}. The warehouse in zone {i} opens at {i % 12} o'clock.")
                 for i in range(memory_nodes.EMBED_BATCH * 2 + 10)]  # fmt: skip
    seen: list[tuple[int, int, str]] = []
    result = memory_nodes.ingest("progress", documents, on_progress=lambda *report: seen.append(report))
    total = result.chunks
    assert total == len(documents)  # one short chunk each
    assert [done for done, _, _ in seen] == [0, 64, 128, total] and {t for _, t, _ in seen} == {total}
    assert seen[-1][2] == f"embedded {total} of {total} chunks from {len(documents)} documents"
    assert result.metrics["batches"] == 3 and result.metrics["inference_ms"] > 0

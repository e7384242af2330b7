"""Long-term memory in pgvector: chunking, ingest, HNSW search, and a retrieval workflow on real workers."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import text

from engine.contract import Document, as_documents
from engine.runs import start_run
from engine.settings import get_settings
from models.db import get_engine
from models.memory import EMBEDDING_DIM
from models.workspace_column import DEFAULT_WORKSPACE_ID
from nodes.memory import memory_nodes
from nodes.memory.documents import chunk_text
from tests.fixtures.ai_engine import ai_data_dir, ai_env, ai_worker  # noqa: F401
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

pytestmark = pytest.mark.usefixtures("ai_env")

HANDBOOK = [
    {
        "id": "refunds",
        "text": "Refund policy.\n\nCustomers may return any item within 30 days of delivery for a full "
        "refund. Items must be unused and in their original packaging. Refunds reach the original "
        "payment method within five business days.",
        "meta": {"team": "support"},
    },
    {
        "id": "shipping",
        "text": "Shipping. Orders leave our warehouse within two working days. Express delivery costs "
        "nine euros and arrives the next day. We ship to every country in the European Union.",
    },
    {
        "id": "security",
        "text": "Account security. Enable two-factor authentication in your profile settings. If you "
        "forget your password, use the reset link on the sign-in page; it expires after one hour.",
    },
    {
        "id": "office",
        "text": "Our office in Lisbon is open Monday to Friday from nine to six. The cafeteria on the "
        "second floor serves lunch between noon and two.",
    },
]


def _chunk_count(collection: str) -> int:
    with get_engine(get_settings().database_url).connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM memory_chunks WHERE collection = :c"), {"c": collection}
        ).scalar_one()


def test_chunks_respect_the_size_and_overlap_whole_sentences():
    sentences = [f"Sentence number {i} says something short." for i in range(40)]
    chunks = chunk_text(" ".join(sentences), size=200, overlap=60)
    assert all(len(c) <= 200 for c in chunks)
    assert " ".join(sentences).startswith(chunks[0])
    # Every sentence survives whole in some chunk, and consecutive chunks share a sentence.
    assert all(any(s in c for c in chunks) for s in sentences)
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert any(s in a and s in b for s in sentences), (a, b)


def test_documents_accept_text_lists_and_objects():
    docs = as_documents(["first", {"id": "x", "content": "second", "meta": {"k": 1}}, "  "])
    assert docs == [Document("doc-0", "first"), Document("x", "second", {"k": 1})]


def test_ingest_twice_replaces_the_chunks_of_a_document(clean_db):
    docs = as_documents(HANDBOOK)
    first = memory_nodes.ingest("handbook", docs, chunk_size=120, chunk_overlap=40)
    assert first.chunks > len(HANDBOOK)  # the longer documents were split
    memory_nodes.ingest("handbook", docs, chunk_size=120, chunk_overlap=40)
    assert _chunk_count("handbook") == first.chunks


def test_search_finds_the_right_document_and_keeps_collections_apart(clean_db):
    memory_nodes.ingest("handbook", as_documents(HANDBOOK))
    memory_nodes.ingest("other", [Document("decoy", "Returns are accepted within 30 days for a refund.")])
    hits, metrics = memory_nodes.search("handbook", "I forgot my password, what do I do?", top_k=3)
    assert hits[0].document_id == "security"
    assert {h.document_id for h in hits} <= {d["id"] for d in HANDBOOK}
    assert hits[0].score > hits[1].score
    assert metrics["search_ms"] >= 0 and "model_load_ms" in metrics


def test_search_query_uses_the_hnsw_index(clean_db):
    rng = random.Random(7)
    rows = []
    for i in range(2000):
        v = [rng.gauss(0, 1) for _ in range(EMBEDDING_DIM)]
        rows.append({"c": "bulk", "d": f"d{i}", "e": str(v)})
    with get_engine(get_settings().database_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO memory_chunks (id, collection, document_id, chunk_index, content, embedding,"
                " created_at) VALUES (gen_random_uuid(), :c, :d, 0, 'x', CAST(:e AS vector), now())"
            ),
            rows,
        )
        conn.execute(text("ANALYZE memory_chunks"))
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                text("EXPLAIN " + str(memory_nodes._SEARCH)),
                {"q": rows[0]["e"], "collection": "bulk", "workspace": DEFAULT_WORKSPACE_ID, "k": 5},
            )
        )
    assert "ix_memory_chunks_embedding_hnsw" in plan, plan


@pytest.mark.usefixtures("ai_worker", "clean_db")
def test_retrieval_workflow_ingests_documents_and_answers_with_the_right_chunk_first():
    defn = workflow(
        [
            node("start", "start"),
            node("docs", "tool.python", tool="json_pick", args={"path": "docs"}),
            node(
                "ingest",
                "memory.ingest",
                collection="kb-{{ input.tenant }}",
                chunk_size=150,
                chunk_overlap=40,
            ),
            node(
                "search",
                "memory.search",
                collection="kb-{{ input.tenant }}",
                text="{{ input.question }}",
                top_k=3,
            ),
            node("end", "end"),
        ],
        [("start", "docs"), ("docs", "ingest"), ("ingest", "search"), ("search", "end")],
        outputs={
            "answer": "{{ steps.search.outputs.out[0].content }}",
            "source": "{{ steps.search.outputs.out[0].document_id }}",
            "chunks": "{{ steps.ingest.outputs.out.chunks }}",
        },
    )
    view = wait_for_run(
        start_run(
            defn,
            {"tenant": "acme", "question": "How many days do I have to send an item back?", "docs": HANDBOOK},
        ),
        timeout=120,
    )
    assert view.status == "succeeded", (view.error, [s.get("error") for s in view.steps])
    assert view.outputs["source"] == "refunds"
    assert "30 days" in view.outputs["answer"]
    assert view.outputs["chunks"] > len(HANDBOOK)
    search_step = steps_by_node(view)["search"]
    assert [h["score"] for h in search_step["outputs"]["out"]] == sorted(
        [h["score"] for h in search_step["outputs"]["out"]], reverse=True
    )

"""Knowledge collections: documents uploaded as files (PDF, Markdown, text, HTML), indexed by a worker
with the real OpenVINO embedder, found by memory.search, and cited by an agent's answer."""

from __future__ import annotations

import time

import pytest
from sqlmodel import select

from app import knowledge
from app.db import db_session
from engine import jobs, secrets
from engine.runs import start_run
from models.memory import KnowledgeDocument
from nodes.memory import memory_nodes
from nodes.memory.knowledge import UnsupportedDocument, extract_text, media_type_of
from tests.fixtures.ai_engine import ai_data_dir, ai_env, ai_worker  # noqa: F401
from tests.fixtures.scripted_llm import answer, scripted_llm  # noqa: F401
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF whose text layer says `text` (Helvetica), with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def test_text_comes_out_of_each_document_type() -> None:
    assert "refund within 30 days" in extract_text(
        tiny_pdf("Customers may refund within 30 days"), "application/pdf"
    )
    html = b"<html><head><style>p{}</style><script>alert(1)</script></head><body><h1>Shipping</h1><p>Two days.</p></body></html>"
    assert extract_text(html, "text/html") == "Shipping\n\nTwo days."
    assert (
        extract_text("# Title\n\nCaf\u00e9 opens at nine.".encode(), "text/markdown")
        == "# Title\n\nCaf\u00e9 opens at nine."
    )
    assert extract_text("na\xefve".encode("latin-1"), "text/plain") == "na\xefve"


@pytest.mark.parametrize(
    ("raw", "media_type", "words"),
    [
        (b"not a pdf at all", "application/pdf", "not a readable PDF"),
        (tiny_pdf(""), "application/pdf", "no text layer"),
        (b"   \n\n ", "text/plain", "holds no text"),
    ],
)
def test_documents_without_text_are_refused_saying_why(raw: bytes, media_type: str, words: str) -> None:
    with pytest.raises(UnsupportedDocument, match=words):
        extract_text(raw, media_type)


def test_only_known_document_types_are_taken() -> None:
    assert media_type_of("Handbook.PDF") == "application/pdf"
    with pytest.raises(UnsupportedDocument, match=r"\.exe is not a document type"):
        media_type_of("setup.exe")


@pytest.mark.usefixtures("engine_env", "clean_db")
def test_bad_uploads_are_refused_before_anything_is_stored() -> None:
    with db_session() as session:
        with pytest.raises(Exception, match="not a collection name"):
            knowledge.add_documents(session, "no spaces allowed", [knowledge.Upload("a.txt", b"x")])
        with pytest.raises(Exception, match="is not a document type"):
            knowledge.add_documents(session, "kb", [knowledge.Upload("a.docx", b"x")])
        with pytest.raises(Exception, match="overlap smaller"):
            knowledge.add_documents(
                session, "kb", [knowledge.Upload("a.txt", b"x")], chunk_size=100, chunk_overlap=100
            )
    with db_session() as session:
        assert session.exec(select(KnowledgeDocument)).all() == []


def wait_for_job(job_id: str, timeout: float = 180.0) -> jobs.JobStatus:
    deadline = time.monotonic() + timeout
    status = jobs.status(job_id)
    while not status.done and time.monotonic() < deadline:
        time.sleep(0.2)
        status = jobs.status(job_id)
    assert status.done, f"job {job_id} did not finish: {status}"
    return status


@pytest.mark.usefixtures("ai_env", "ai_worker", "clean_db")
def test_uploaded_documents_are_indexed_found_and_cited(scripted_llm) -> None:  # noqa: F811
    uploads = [
        knowledge.Upload(
            "refunds.pdf", tiny_pdf("Customers may return any item within 30 days for a full refund.")
        ),
        knowledge.Upload(
            "office.md", b"# Office\n\nThe Lisbon office is open Monday to Friday from nine to six."
        ),
        knowledge.Upload("scan.pdf", tiny_pdf("")),  # no text layer: fails on its own, the others go on
    ]
    with db_session() as session:
        ids = knowledge.add_documents(session, "handbook", uploads, chunk_size=200, chunk_overlap=20)
    status = wait_for_job(knowledge.start_indexing(document_ids=ids))
    assert status.state == "succeeded", status.error
    assert status.result == {"indexed": 2, "failed": 1, "chunks": 2}
    with db_session() as session:
        rows = {r.name: r for r in knowledge.documents(session, "handbook")}
        summary = knowledge.collections(session)
    assert rows["refunds.pdf"].status == "ready" and rows["refunds.pdf"].chunks == 1
    assert rows["scan.pdf"].status == "failed" and "no text layer" in rows["scan.pdf"].error
    assert [(c.name, c.documents, c.ready, c.failed, c.chunks) for c in summary] == [("handbook", 3, 2, 1, 2)]

    hits, _ = memory_nodes.search("handbook", "How long can I send something back?", top_k=2)
    assert hits[0].document_id == "refunds.pdf" and hits[0].meta["media_type"] == "application/pdf"

    # An agent answering from the collection cites what it used.
    secrets.set_secret("llm-key", "sk-test", allowed_destinations=[scripted_llm.host])
    scripted_llm.script(answer("You have 30 days [refunds.pdf#0]."))
    agent = node("agent", "agent", model="scripted", base_url=scripted_llm.base_url, api_key_secret="llm-key",
                 prompt="{{ input.q }}", memory_collection="handbook", memory_top_k=2, memory_min_score=-1)  # fmt: skip
    defn = workflow(
        [node("start", "start"), agent, node("end", "end")],
        [("start", "agent"), ("agent", "end")],
        policy={"egress": {"allowed_hosts": [scripted_llm.host]}},
    )
    view = wait_for_run(start_run(defn, {"q": "How long can I send something back?"}), timeout=120)
    assert view.status == "succeeded", view.error
    cited = steps_by_node(view)["agent"]["outputs"]["out"]["citations"]
    assert [(c["id"], c["cited"]) for c in cited] == [("refunds.pdf#0", True), ("office.md#0", False)]
    assert cited[0]["snippet"].startswith("Customers may return") and cited[0]["score"] > cited[1]["score"]

    # Removing a document removes its chunks; re-indexing the collection rebuilds the rest.
    with db_session() as session:
        assert knowledge.delete_document(session, str(rows["office.md"].id)) == "office.md"
    hits, _ = memory_nodes.search("handbook", "office hours", top_k=5)
    assert {h.document_id for h in hits} == {"refunds.pdf"}
    with db_session() as session:
        assert knowledge.mark_queued(session, "handbook") == 2
    status = wait_for_job(knowledge.start_indexing(collection="handbook"))
    assert status.result == {"indexed": 1, "failed": 1, "chunks": 1}

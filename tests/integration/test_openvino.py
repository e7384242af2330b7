"""OpenVINO nodes on real models: MiniLM converted from PyPI, a tiny Llama built here, real workers."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from engine.runs import start_run
from engine.settings import get_settings
from models.db import get_engine
from nodes.openvino import model_store, openvino_runtime
from tests.fixtures.ai_engine import ai_data_dir, ai_env, ai_worker  # noqa: F401
from tests.fixtures.models import EMBEDDER, EMBEDDER_INT8, TINY_LLAMA, built_models
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

pytestmark = pytest.mark.usefixtures("ai_env")

# Sentences of different length, topic and punctuation; the reference is computed from them in the test.
REFERENCE_SENTENCES = [
    "The cat sits on the mat",
    "A kitten is resting on a rug",
    "Stock markets fell sharply",
    "How do I reset my password?",
    "Quarterly revenue grew by 12% while operating costs stayed flat.",
    "Der Zug nach Berlin fährt um neun Uhr ab.",
    "OpenVINO compiles the model once and reuses it for every request.",
    "short",
    "Please summarise the attached contract, paying particular attention to the termination "
    "clauses, the liability caps and any automatic renewal terms hidden in the appendices.",
    "🙂 emoji and symbols: #42 @home $5.00",
]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_cat_on_mat_is_closer_to_kitten_on_rug_than_to_stock_markets():
    for model in (EMBEDDER, EMBEDDER_INT8):
        cat, kitten, stocks = openvino_runtime.embed(REFERENCE_SENTENCES[:3], model=model).vectors
        near, far = openvino_runtime.cosine(cat, kitten), openvino_runtime.cosine(cat, stocks)
        assert near > far + 0.3, (model, near, far)


def test_openvino_embeddings_match_the_pytorch_reference_on_stored_sentences():
    from sentence_transformers import SentenceTransformer

    from nodes.openvino.openvino_convert import minilm_checkpoint

    reference = SentenceTransformer(str(minilm_checkpoint()), device="cpu").encode(
        REFERENCE_SENTENCES, normalize_embeddings=True
    )
    result = openvino_runtime.embed(REFERENCE_SENTENCES, model=EMBEDDER)
    ours = _unit(np.asarray(result.vectors))
    cosines = (ours * _unit(reference)).sum(axis=1)
    assert result.dimension == 384
    assert cosines.min() > 0.999, dict(zip(REFERENCE_SENTENCES, cosines.round(6), strict=True))


def test_int8_embeddings_stay_close_to_fp32():
    fp32 = np.asarray(openvino_runtime.embed(REFERENCE_SENTENCES, model=EMBEDDER).vectors)
    int8 = np.asarray(openvino_runtime.embed(REFERENCE_SENTENCES, model=EMBEDDER_INT8).vectors)
    assert (fp32 * int8).sum(axis=1).min() > 0.98


def test_model_directories_are_listed_with_kind_size_and_precision():
    found = {m.name: m for m in model_store.list_models()}
    assert {EMBEDDER, EMBEDDER_INT8, TINY_LLAMA} <= set(found)
    assert (found[EMBEDDER].kind, found[EMBEDDER].precision) == ("embedding", "fp32")
    assert found[EMBEDDER_INT8].precision == "int8"
    assert found[TINY_LLAMA].kind == "llm"
    assert found[EMBEDDER_INT8].size_bytes < found[EMBEDDER].size_bytes
    # Precision read from the IR itself agrees with what the converter recorded.
    assert model_store.weight_precision(built_models().embedder / model_store.MODEL_XML) == "fp32"
    assert model_store.weight_precision(built_models().embedder_int8 / model_store.MODEL_XML) == "int8"


def test_int8_weight_compression_keeps_a_language_model_working(tmp_path, monkeypatch):
    from nodes.openvino import openvino_convert

    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / TINY_LLAMA).symlink_to(built_models().tiny_llama, target_is_directory=True)
    openvino_convert.compress_int8(tmp_path / "models" / TINY_LLAMA, tmp_path / "models" / "tiny-llama-int8")
    info = model_store.describe(tmp_path / "models" / "tiny-llama-int8")
    assert (info.kind, info.precision) == ("llm", "int8-weights")
    assert (
        model_store.weight_precision(tmp_path / "models" / "tiny-llama-int8" / model_store.MODEL_XML)
        == "int8-weights"
    )
    result = openvino_runtime.generate(
        "tiny-llama-int8", "Hello", options=openvino_runtime.SamplingOptions(8)
    )
    assert result.token_count == 8 and result.chunks


def test_precision_auto_calibrates_once_and_keeps_cosine_to_f32(tmp_path, monkeypatch):
    from nodes.openvino import precision_auto

    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    (tmp_path / "models").symlink_to(built_models().root, target_is_directory=True)
    monkeypatch.setattr(precision_auto, "ROUNDS", 2)
    precision_auto.forget()
    try:
        first = openvino_runtime.embed(REFERENCE_SENTENCES, model=EMBEDDER, precision="auto")
        again = openvino_runtime.embed(REFERENCE_SENTENCES, model=EMBEDDER, precision="auto")
    finally:
        precision_auto.forget()
    m = first.timing.metrics()
    capabilities = precision_auto.device_capabilities("CPU")
    tried = {"f32", "int8"} | {h for h, needs in precision_auto.HINTS if needs in capabilities}
    assert set(m["precision_rates"]) == tried  # the INT8 sibling exists; only hints the CPU lists
    assert m["precision_chosen"] in tried and m["precision_calibration_ms"] > 0
    assert m["precision_cosines"][m["precision_chosen"]] >= precision_auto.MIN_COSINE
    assert m["precision_cosines"]["f32"] == pytest.approx(1.0, abs=1e-4)
    fp32 = np.asarray(openvino_runtime.embed(REFERENCE_SENTENCES, model=EMBEDDER).vectors)
    assert (fp32 * np.asarray(first.vectors)).sum(axis=1).min() >= 0.99
    again_m = again.timing.metrics()
    assert again_m["precision_chosen"] == m["precision_chosen"] and "precision_calibration_ms" not in again_m
    assert again.vectors == first.vectors
    stored = (tmp_path / "openvino" / "precision-auto.json").read_text()
    assert f'"precision": "{m["precision_chosen"]}"' in stored


def test_model_names_cannot_leave_the_models_directory():
    from engine.errors import StepError

    for bad in ("../secrets", "/etc", ".hidden", "a/../../b"):
        with pytest.raises(StepError, match="not a model name"):
            model_store.model_path(bad)


@pytest.mark.usefixtures("ai_worker")
class TestInWorkflows:
    def test_embed_and_classify_in_a_workflow_load_the_model_once_per_worker(self):
        defn = workflow(
            [
                node("start", "start"),
                node("embed", "openvino.embed", text="{{ input.text }}"),
                node(
                    "route",
                    "openvino.classify",
                    text="{{ input.text }}",
                    labels=["pets and animals", "finance and markets", "weather"],
                ),
                node("end", "end"),
            ],
            [("start", "embed"), ("embed", "route"), ("route", "end")],
            outputs={
                "label": "{{ steps.route.outputs.out.label }}",
                "dim": "{{ steps.embed.outputs.out | length }}",
            },
        )
        first = wait_for_run(start_run(defn, {"text": "The cat sits on the mat"}), timeout=120)
        assert first.status == "succeeded", first.error
        assert first.outputs == {"label": "pets and animals", "dim": 384}
        second = wait_for_run(start_run(defn, {"text": "Stock markets fell sharply"}), timeout=120)
        assert second.outputs["label"] == "finance and markets"

        m1 = steps_by_node(first)["embed"]["outputs"]["metrics"]
        m2 = steps_by_node(second)["embed"]["outputs"]["metrics"]
        classify = steps_by_node(second)["route"]["outputs"]["metrics"]
        # Same worker process; the second run found the compiled model already loaded.
        assert m1["pid"] == m2["pid"] == classify["pid"]
        assert m2["model_cached"] is True and m2["model_load_ms"] == 0
        assert classify["model_cached"] is True
        assert m1["inference_ms"] > 0

    def test_generate_runs_the_tiny_llama_in_a_workflow_and_streams_tokens(self):
        defn = workflow(
            [
                node("start", "start"),
                node(
                    "gen",
                    "openvino.generate",
                    model=TINY_LLAMA,
                    prompt="Tell me about {{ input.topic }}",
                    system_prompt="You are terse.",
                    max_new_tokens=24,
                ),
                node("end", "end"),
            ],
            [("start", "gen"), ("gen", "end")],
        )
        run_id = start_run(defn, {"topic": "cats"})
        view = wait_for_run(run_id, timeout=120)
        assert view.status == "succeeded", view.error
        out = steps_by_node(view)["gen"]["outputs"]
        assert out["tokens"] and "".join(out["tokens"]) == out["out"]
        assert out["metrics"]["generated_tokens"] == 24  # random weights rarely pick EOS; greedy is fixed
        assert out["metrics"]["input_tokens"] > 0
        with get_engine(get_settings().database_url).connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT event_type, payload FROM events WHERE run_id = :r AND event_type LIKE 'agent.%'"
                    " ORDER BY id"
                ),
                {"r": run_id},
            ).all()
        kinds = [r.event_type for r in rows]
        assert kinds[0] == "agent.started" and kinds[-1] == "agent.completed"
        assert rows[-1].payload["data"]["chunks"] == out["tokens"]
        # The tokens were streamed: agent.stream events between the start and the end carry them all,
        # in order, the first one alone (written as soon as it came), the rest in later batches.
        streamed = [r.payload["data"] for r in rows if r.event_type == "agent.stream"]
        assert streamed, f"no agent.stream event was written: {kinds}"
        assert kinds.index("agent.stream") < kinds.index("agent.completed")
        assert [c for e in streamed for c in e["chunks"]] == out["tokens"]
        assert streamed[0]["index"] == 0 and len(streamed[0]["chunks"]) == 1 and len(streamed) >= 2
        assert all(e["node_id"] == "gen" for e in streamed)

        again = wait_for_run(start_run(defn, {"topic": "cats"}), timeout=120)
        out2 = steps_by_node(again)["gen"]["outputs"]
        assert out2["out"] == out["out"]  # greedy decoding is deterministic
        assert out2["metrics"]["model_cached"] is True

    def test_generate_with_a_missing_model_fails_naming_the_folder(self):
        defn = workflow(
            [
                node("start", "start"),
                node("gen", "openvino.generate", model="no-such-model", prompt="hi"),
                node("end", "end"),
            ],
            [("start", "gen"), ("gen", "end")],
        )
        view = wait_for_run(start_run(defn, {}), timeout=60)
        assert view.status == "failed"
        step = steps_by_node(view)["gen"]
        assert "no-such-model" in step["error"] and "missing openvino_model.xml" in step["error"]
        assert step["attempt"] == 1  # a missing model is not retried

"""This family's side of the contract's local models service: OpenVINO embeds, generates and lists models for others."""

from __future__ import annotations

from typing import Unpack

from engine.contract import (
    DEFAULT_EMBEDDER,
    Embeddings,
    Generation,
    GenerationSettings,
    ModelFolder,
    provide_local_models,
)
from nodes.openvino import model_store
from nodes.openvino import openvino_runtime as runtime


class OpenVINOModels:
    """Embeddings and generation with OpenVINO pipelines compiled once per worker process."""

    def list_models(self) -> list[ModelFolder]:
        """Every model folder under the models directory, with kind, precision and size."""
        return [
            ModelFolder(m.name, m.kind, m.precision, m.size_bytes, m.source)
            for m in model_store.list_models()
        ]

    def embed(
        self, texts: list[str], *, model: str = DEFAULT_EMBEDDER, device: str = "CPU", precision: str = "f32"
    ) -> Embeddings:
        """Unit-length sentence embeddings of `texts`, with load and inference time as metrics."""
        result = runtime.embed(texts, model=model, device=device, precision=precision)
        return Embeddings(result.vectors, result.model, result.timing.metrics())

    def generate(
        self, model: str, messages: list[dict[str, str]] | str, **settings: Unpack[GenerationSettings]
    ) -> Generation:
        """Text from a local language model, streamed chunk by chunk to `on_chunk`."""
        options = runtime.SamplingOptions(
            max_new_tokens=settings.get("max_new_tokens", 256), temperature=settings.get("temperature", 0.0)
        )
        device, on_chunk = settings.get("device", "CPU"), settings.get("on_chunk")
        return runtime.generate(model, messages, options=options, device=device, on_chunk=on_chunk)


provide_local_models(OpenVINOModels())

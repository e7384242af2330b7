"""Local models as a service between node families: declared here, provided by one (OpenVINO), used by others.

Memory embeds its chunks and agents run local models without importing the family that runs
them: that family calls `provide_local_models` when it loads, the others call `local_models()`.
The Models page lists the model folders through the same provider.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, Unpack

from engine.contract.registry import ensure_plugins_loaded
from engine.errors import StepError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
# A model name is a relative path under the models directory; segments start with a letter or
# digit, so "..", hidden files and absolute paths cannot be named.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$"


@dataclass(frozen=True)
class Embeddings:
    """Unit-length vectors, one per text, and the step metrics of computing them."""

    vectors: list[list[float]]
    model: str
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def dimension(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0


@dataclass(frozen=True)
class Generation:
    """A generated text, the chunks it streamed in, token counts and the step metrics."""

    text: str
    chunks: list[str]
    token_count: int
    input_tokens: int
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelFolder:
    """One model directory under the models directory, as the Models page lists it."""

    name: str  # its path under the models directory, as node configs name it
    kind: str  # embedding | llm | unknown
    precision: str  # fp32 | fp16 | bf16 | int8 | int8-weights | unknown
    size_bytes: int
    source: str = ""  # the checkpoint it was converted from, when Flowloom converted it


class GenerationSettings(TypedDict, total=False):
    """How a local model generates: new tokens at most (256), temperature (0: greedy), device ("CPU"),
    and `on_chunk`, called with each text chunk as it comes (returning True stops the generation)."""

    max_new_tokens: int
    temperature: float
    device: str
    on_chunk: Callable[[str], bool | None] | None


class LocalModels(Protocol):
    """Embedding and generation with models kept under the models directory, and what is there."""

    def list_models(self) -> list[ModelFolder]: ...

    def embed(
        self, texts: list[str], *, model: str = DEFAULT_EMBEDDER, device: str = "CPU", precision: str = "f32"
    ) -> Embeddings: ...

    def generate(
        self, model: str, messages: list[dict[str, str]] | str, **settings: Unpack[GenerationSettings]
    ) -> Generation: ...


_provider: LocalModels | None = None


def provide_local_models(provider: LocalModels) -> None:
    """Offer `provider` to every node family (called by the family that runs local models, when it loads)."""
    global _provider
    _provider = provider


def local_models() -> LocalModels:
    """The local models provider; StepError when no installed node family provides one."""
    ensure_plugins_loaded()
    if _provider is None:
        raise StepError(
            "model: no node family that runs local models is installed (the OpenVINO family provides them)",
            retryable=False,
        )
    return _provider

"""A local OpenVINO GenAI model directory as an LLM provider (chat, complete, embed, stream).

`model` names a folder under the models directory. Generation runs in a thread so the
worker's event loop stays free; the pipeline is compiled once per worker process. The models run
through the contract's local models service (provided by the OpenVINO node family).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Unpack

from engine.contract import Generation, GenerationSettings, StepError, local_models
from nodes.agent.llm import (
    ChatOptions,
    ChatResult,
    GenerationOptions,
    Message,
    content_text,
    register_provider,
)

_DONE = object()


def _plain(messages: list[Message]) -> list[dict[str, str]]:
    """Chat-template messages: tool results become user turns, content becomes text."""
    plain = []
    for m in messages:
        text = content_text(m.get("content"))
        role = m.get("role", "user")
        if role == "tool":
            role, text = "user", f"Tool result: {text}"
        plain.append({"role": role, "content": text or ""})
    return plain


def _chat_result(result: Generation, raw: dict[str, Any]) -> ChatResult:
    return ChatResult(
        text=result.text,
        usage={"prompt_tokens": result.input_tokens, "completion_tokens": result.token_count},
        raw=raw,
    )


class OpenVINOProvider:
    """openvino_genai.LLMPipeline over a local model directory; no tool calling."""

    def __init__(self, *, device: str = "CPU", embed_model: str = "") -> None:
        self.device = device
        self.embed_model = embed_model

    def _settings(
        self, options: GenerationOptions, on_chunk: Callable[[str], bool] | None = None
    ) -> GenerationSettings:
        return {
            "max_new_tokens": options.get("max_tokens") or 256,
            "temperature": options.get("temperature") or 0.0,
            "device": self.device,
            "on_chunk": on_chunk,
        }

    async def _generate(self, prompt: str | list[dict[str, str]], options: GenerationOptions) -> Generation:
        """One generation in a worker thread: a raw prompt, or messages through the chat template."""
        return await asyncio.to_thread(
            local_models().generate,
            options["model"],
            prompt,
            **self._settings(options),
        )

    async def chat(self, messages: list[Message], **options: Unpack[ChatOptions]) -> ChatResult:
        """Generate one answer with the model's chat template."""
        if options.get("tools"):
            raise StepError(
                "tools: the openvino provider does not call tools; remove the tools or use an "
                "openai-compatible server (OpenVINO Model Server, vLLM, Ollama) that does",
                retryable=False,
            )
        result = await self._generate(_plain(messages), options)
        return _chat_result(result, {"metrics": result.metrics, "chunks": result.chunks})

    async def complete(self, prompt: str, **options: Unpack[GenerationOptions]) -> ChatResult:
        """Generate from a raw prompt (no chat template)."""
        result = await self._generate(prompt, options)
        return _chat_result(result, {"metrics": result.metrics})

    async def embed(self, texts: list[str], *, model: str) -> list[list[float]]:
        """Sentence embeddings with an OpenVINO embedding model folder."""
        result = await asyncio.to_thread(local_models().embed, texts, model=model, device=self.device)
        return result.vectors

    async def stream(
        self, messages: list[Message], **options: Unpack[GenerationOptions]
    ) -> AsyncIterator[str]:
        """Text chunks as the model produces them."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def on_chunk(chunk: str) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            return False

        def run() -> None:
            try:
                local_models().generate(
                    options["model"],
                    _plain(messages),
                    **self._settings(options, on_chunk),
                )
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)
            except BaseException as exc:  # handed to the consumer, raised there
                loop.call_soon_threadsafe(queue.put_nowait, exc)

        task = loop.run_in_executor(None, run)
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            await task


def _openvino(**kw: Any) -> OpenVINOProvider:
    # base_url, api_key and http mean nothing for a local model; the device may come later.
    return OpenVINOProvider(device=str(kw.get("device") or "CPU"))


register_provider("openvino", _openvino)

"""Language-model providers: the interface agents use, the messages they exchange, and a registry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, Required, TypedDict, Unpack

Message = dict[str, Any]


class GenerationOptions(TypedDict, total=False):
    """The model and its sampling settings, as every provider call takes them (keywords)."""

    model: Required[str]
    temperature: float | None
    max_tokens: int | None


class ChatOptions(GenerationOptions, total=False):
    """A chat call's keywords: the generation options and the tools the model may call."""

    tools: list[dict[str, Any]] | None


@dataclass(frozen=True)
class ToolCall:
    """A model's request to call one tool."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ChatResult:
    """One model answer: its text, any tool calls, token usage and the provider's raw reply."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def assistant_message(result: ChatResult) -> Message:
    """The model's answer as a conversation message (OpenAI's shape, which every provider here reads)."""
    message: Message = {"role": "assistant", "content": result.text or None}
    if result.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
            }
            for c in result.tool_calls
        ]
    return message


def tool_result_message(call: ToolCall, content: str) -> Message:
    """A tool's result, answering one of the model's tool calls."""
    return {"role": "tool", "tool_call_id": call.id, "content": content}


def content_text(content: Any) -> str:
    """A message's content as text: a string as it is, anything else as JSON."""
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)


class LLMProvider(Protocol):
    """A chat/completion/embedding model service.

    Messages use OpenAI's shape ({role, content}, assistant `tool_calls`, `tool` results);
    providers with another wire format translate. Tool specs are {name, description, parameters}.
    """

    async def chat(self, messages: list[Message], **options: Unpack[ChatOptions]) -> ChatResult: ...

    async def complete(self, prompt: str, **options: Unpack[GenerationOptions]) -> ChatResult: ...

    async def embed(self, texts: list[str], *, model: str) -> list[list[float]]: ...

    def stream(self, messages: list[Message], **options: Unpack[GenerationOptions]) -> AsyncIterator[str]: ...


ProviderFactory = Callable[..., LLMProvider]
_PROVIDERS: dict[str, ProviderFactory] = {}
_BASE_URLS: dict[str, str | None] = {}


def register_provider(name: str, factory: ProviderFactory, *, base_url: str | None = None) -> None:
    """Make `factory(**kw)` available as provider `name`; `base_url` is its default API URL (None: local)."""
    _PROVIDERS[name] = factory
    _BASE_URLS[name] = base_url


def api_destination(name: str, base_url: str = "") -> str | None:
    """Where provider `name` sends its API key: `base_url`, else its default; None for a local provider."""
    default = _BASE_URLS.get(name)
    if default is None:
        return None
    return base_url or default


def provider_names() -> list[str]:
    """Names of the registered providers, sorted."""
    return sorted(_PROVIDERS)


def get_provider(name: str, **kw: Any) -> LLMProvider:
    """A provider instance by name; ValueError listing the known names when unknown."""
    factory = _PROVIDERS.get(name)
    if factory is None:
        raise ValueError(f"unknown LLM provider {name!r}; known: {', '.join(provider_names())}")
    return factory(**kw)

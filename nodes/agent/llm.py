"""Language-model providers: the interface agents use, a registry, and an OpenAI-compatible client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from engine.contract import HttpClient, StepError, raise_for_status, send

OPENAI_BASE_URL = "https://api.openai.com/v1"
Message = dict[str, Any]


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


class LLMProvider(Protocol):
    """A chat/completion/embedding model service.

    Messages use OpenAI's shape ({role, content}, assistant `tool_calls`, `tool` results);
    providers with another wire format translate. Tool specs are {name, description, parameters}.
    """

    async def chat(
        self,
        messages: list[Message],
        *,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> ChatResult: ...

    async def complete(
        self, prompt: str, *, model: str, temperature: float | None = None, max_tokens: int | None = None
    ) -> ChatResult: ...

    async def embed(self, texts: list[str], *, model: str) -> list[list[float]]: ...

    def stream(
        self,
        messages: list[Message],
        *,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> AsyncIterator[str]: ...


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


def _tool_param(spec: dict[str, Any]) -> dict[str, Any]:
    # Accept a Tool.spec() ({name, description, parameters}) as well as OpenAI's own shape.
    return spec if "type" in spec else {"type": "function", "function": spec}


def _tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    calls = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            args = {"_raw": fn.get("arguments")}  # the model wrote broken JSON; let the caller decide
        calls.append(ToolCall(id=call.get("id", ""), name=fn.get("name", ""), arguments=args))
    return calls


class OpenAICompatibleProvider:
    """Any server speaking OpenAI's /chat/completions and /embeddings (OpenAI, vLLM, Ollama, ...)."""

    def __init__(self, base_url: str, api_key: str, http: HttpClient, *, timeout_s: float = 120.0) -> None:
        self.base_url = (base_url or OPENAI_BASE_URL).rstrip("/")
        self.api_key = api_key
        self.http = http
        self.timeout_s = timeout_s

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def _post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        url = f"{self.base_url}{path}"
        resp = await send(
            self.http, "POST", url, timeout=self.timeout_s, headers=self._headers(), json=payload
        )
        raise_for_status(resp, [], f"LLM {url}")
        return resp

    def _chat_payload(
        self, messages: list[Message], model: str, temperature: float | None, max_tokens: int | None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": model, "messages": messages}
        if temperature is not None:
            payload["temperature"] = temperature
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        return payload

    async def chat(
        self,
        messages: list[Message],
        *,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> ChatResult:
        """One chat completion."""
        payload = self._chat_payload(messages, model, temperature, max_tokens)
        if tools:
            payload["tools"] = [_tool_param(t) for t in tools]
        raw = _json(await self._post("/chat/completions", payload))
        try:
            message = raw["choices"][0]["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise StepError(
                f"LLM reply has no choices[0].message: {str(raw)[:200]}", retryable=False
            ) from exc
        return ChatResult(
            text=message.get("content") or "",
            tool_calls=_tool_calls(message),
            usage={k: v for k, v in (raw.get("usage") or {}).items() if isinstance(v, int)},
            raw=raw,
        )

    async def complete(
        self, prompt: str, *, model: str, temperature: float | None = None, max_tokens: int | None = None
    ) -> ChatResult:
        """A single-prompt completion (sent as one user message)."""
        messages = [{"role": "user", "content": prompt}]
        return await self.chat(messages, model=model, temperature=temperature, max_tokens=max_tokens)

    async def embed(self, texts: list[str], *, model: str) -> list[list[float]]:
        """One embedding per text, in order."""
        raw = _json(await self._post("/embeddings", {"model": model, "input": texts}))
        data = sorted(raw.get("data") or [], key=lambda d: d.get("index", 0))
        if len(data) != len(texts):
            raise StepError(f"LLM embeddings: asked for {len(texts)}, got {len(data)}", retryable=False)
        return [d["embedding"] for d in data]

    async def stream(
        self,
        messages: list[Message],
        *,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> AsyncIterator[str]:
        """Text deltas of a streamed chat completion (the egress client buffers the whole reply)."""
        payload = self._chat_payload(messages, model, temperature, max_tokens)
        payload["stream"] = True
        resp = await self._post("/chat/completions", payload)
        for line in resp.text.splitlines():
            if not line.startswith("data:"):
                continue
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                break
            try:
                choices = json.loads(data).get("choices") or [{}]
            except ValueError:
                continue
            delta = (choices[0].get("delta") or {}).get("content")
            if delta:
                yield delta


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError as exc:
        raise StepError(f"LLM reply is not JSON: {resp.text[:200]}", retryable=True) from exc
    if not isinstance(data, dict):
        raise StepError("LLM reply is not a JSON object", retryable=False)
    return data


def _openai(*, base_url: str = "", api_key: str = "", http: HttpClient, **kw: Any) -> LLMProvider:
    return OpenAICompatibleProvider(base_url or OPENAI_BASE_URL, api_key, http, **kw)


register_provider("openai", _openai, base_url=OPENAI_BASE_URL)

"""OpenAI's /chat/completions and /embeddings as an LLM provider; any compatible server fits (vLLM, Ollama, ...)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Unpack

import httpx

from engine.contract import ErrorCode, HttpClient, StepError
from nodes.agent.llm import (
    ChatOptions,
    ChatResult,
    GenerationOptions,
    LLMProvider,
    Message,
    ToolCall,
    register_provider,
)
from nodes.agent.llm_http import HttpProvider

OPENAI_BASE_URL = "https://api.openai.com/v1"


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


class OpenAICompatibleProvider(HttpProvider):
    """Any server speaking OpenAI's /chat/completions and /embeddings (OpenAI, vLLM, Ollama, ...)."""

    default_base_url = OPENAI_BASE_URL

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _chat_payload(
        self, messages: list[Message], options: GenerationOptions, tools: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": options["model"], "messages": messages}
        if options.get("temperature") is not None:
            payload["temperature"] = options["temperature"]
        if options.get("max_tokens") is not None:
            payload["max_tokens"] = options["max_tokens"]
        if tools:
            payload["tools"] = [_tool_param(t) for t in tools]
        return payload

    async def chat(self, messages: list[Message], **options: Unpack[ChatOptions]) -> ChatResult:
        """One chat completion."""
        payload = self._chat_payload(messages, options, options.get("tools"))
        return _chat_result(_json(await self._post("/chat/completions", payload)))

    async def chat_stream(
        self, messages: list[Message], *, on_text: Callable[[str], Any], **options: Unpack[ChatOptions]
    ) -> ChatResult:
        """One chat completion streamed: `on_text` gets each text delta as it arrives; tool calls
        are assembled from their deltas. A server that answers without streaming is read as `chat`."""
        payload = self._chat_payload(messages, options, options.get("tools"))
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
        reply = _StreamedReply(on_text)
        resp = await self._post_streamed("/chat/completions", payload, reply.add)
        if not reply.events:  # no server-sent events: a plain JSON completion
            return _chat_result(_json(resp))
        return reply.result()

    async def embed(self, texts: list[str], *, model: str) -> list[list[float]]:
        """One embedding per text, in order."""
        raw = _json(await self._post("/embeddings", {"model": model, "input": texts}))
        data = sorted(raw.get("data") or [], key=lambda d: d.get("index", 0))
        if len(data) != len(texts):
            raise StepError(f"LLM embeddings: asked for {len(texts)}, got {len(data)}", retryable=False)
        return [d["embedding"] for d in data]

    async def stream(
        self, messages: list[Message], **options: Unpack[GenerationOptions]
    ) -> AsyncIterator[str]:
        """Text deltas of a streamed chat completion, each as soon as the server sent it."""
        payload = self._chat_payload(messages, options)
        payload["stream"] = True
        async for event in self._stream_events("/chat/completions", payload):
            if not isinstance(event, dict):
                continue
            choices = event.get("choices") or [{}]
            delta = (choices[0].get("delta") or {}).get("content")
            if delta:
                yield delta


def _chat_result(raw: dict[str, Any]) -> ChatResult:
    try:
        message = raw["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise StepError(f"LLM reply has no choices[0].message: {str(raw)[:200]}", retryable=False,
                        code=ErrorCode.LLM_REPLY_INVALID) from exc  # fmt: skip
    return ChatResult(
        text=message.get("content") or "",
        tool_calls=_tool_calls(message),
        usage={k: v for k, v in (raw.get("usage") or {}).items() if isinstance(v, int)},
        raw=raw,
    )


class _StreamedReply:
    """A streamed chat completion put together from its chunks."""

    def __init__(self, on_text: Callable[[str], Any]) -> None:
        self.on_text = on_text
        self.events = 0
        self.text: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.usage: dict[str, int] = {}

    async def add(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        self.events += 1
        self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if isinstance(v, int)})
        for choice in event.get("choices") or []:
            delta = (choice or {}).get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                self.text.append(delta["content"])
                self.on_text(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(
                    int(call.get("index", 0)), {"id": "", "name": "", "arguments": ""}
                )
                slot["id"] = call.get("id") or slot["id"]
                fn = call.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""

    def result(self) -> ChatResult:
        message = {
            "tool_calls": [
                {"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}}
                for _, c in sorted(self.calls.items())
            ]
        }
        return ChatResult(text="".join(self.text), tool_calls=_tool_calls(message), usage=self.usage,
                          raw={"streamed": True, "chunks": self.events})  # fmt: skip


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError as exc:
        raise StepError(f"LLM reply is not JSON: {resp.text[:200]}", retryable=True,
                        code=ErrorCode.LLM_REPLY_INVALID) from exc  # fmt: skip
    if not isinstance(data, dict):
        raise StepError("LLM reply is not a JSON object", retryable=False, code=ErrorCode.LLM_REPLY_INVALID)
    return data


def _openai(*, base_url: str = "", api_key: str = "", http: HttpClient, **kw: Any) -> LLMProvider:
    return OpenAICompatibleProvider(base_url or OPENAI_BASE_URL, api_key, http, **kw)


register_provider("openai", _openai, base_url=OPENAI_BASE_URL)

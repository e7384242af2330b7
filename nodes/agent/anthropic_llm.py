"""Anthropic's Messages API as an LLM provider (chat, tool use, streaming as it arrives; no embeddings)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Unpack

import httpx

from engine.contract import ErrorCode, HttpClient, StepError
from nodes.agent.anthropic_stream import AnthropicStream
from nodes.agent.llm import (
    ChatOptions,
    ChatResult,
    GenerationOptions,
    Message,
    ToolCall,
    content_text,
    register_provider,
)
from nodes.agent.llm_http import HttpProvider

ANTHROPIC_BASE_URL = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024


def _text_of(content: Any) -> str:
    return "" if content is None else content_text(content)


def to_anthropic(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """OpenAI-shaped messages -> (system prompt, Anthropic messages with tool_use/tool_result blocks)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        # Anthropic wants user/assistant turns to alternate: merge consecutive same-role turns.
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in messages:
        role = m.get("role")
        if role == "system":
            system.append(_text_of(m.get("content")))
        elif role == "tool":
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": m.get("tool_call_id", ""),
                        "content": _text_of(m.get("content")),
                    }
                ],
            )
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            if m.get("content"):
                blocks.append({"type": "text", "text": _text_of(m["content"])})
            for call in m.get("tool_calls") or []:
                fn = call.get("function") or {}
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except ValueError:
                    args = {}
                blocks.append(
                    {"type": "tool_use", "id": call.get("id", ""), "name": fn.get("name", ""), "input": args}
                )
            add("assistant", blocks or [{"type": "text", "text": ""}])
        else:
            add("user", [{"type": "text", "text": _text_of(m.get("content"))}])
    return "\n\n".join(s for s in system if s), out


def _tool_param(spec: dict[str, Any]) -> dict[str, Any]:
    fn = spec.get("function", spec)
    return {
        "name": fn["name"],
        "description": fn.get("description", ""),
        "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
    }


class AnthropicProvider(HttpProvider):
    """Claude models through https://api.anthropic.com/v1/messages (or a compatible base URL)."""

    default_base_url = ANTHROPIC_BASE_URL

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def _payload(
        self, messages: list[Message], options: GenerationOptions, tools: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        system, converted = to_anthropic(messages)
        payload: dict[str, Any] = {
            "model": options["model"],
            "messages": converted,
            "max_tokens": options.get("max_tokens") or DEFAULT_MAX_TOKENS,
        }
        if system:
            payload["system"] = system
        if (temperature := options.get("temperature")) is not None:
            payload["temperature"] = min(temperature, 1.0)  # Anthropic's range is 0-1
        if tools:
            payload["tools"] = [_tool_param(t) for t in tools]
        return payload

    async def chat(self, messages: list[Message], **options: Unpack[ChatOptions]) -> ChatResult:
        """One Messages API call; tool_use blocks become tool calls."""
        resp = await self._post("/messages", self._payload(messages, options, options.get("tools")))
        return _chat_result(resp)

    async def chat_stream(
        self, messages: list[Message], *, on_text: Callable[[str], Any], **options: Unpack[ChatOptions]
    ) -> ChatResult:
        """One Messages API call streamed: `on_text` gets each text delta as the server sends it;
        tool_use blocks are put together from their JSON pieces. A reply that is not a stream is
        read as `chat` reads it."""
        payload = self._payload(messages, options, options.get("tools"))
        payload["stream"] = True
        reply = AnthropicStream(on_text)
        resp = await self._post_streamed("/messages", payload, reply.add)
        if not reply.events:  # no server-sent events: a plain JSON reply
            return _chat_result(resp)
        return reply.result()

    async def embed(self, texts: list[str], *, model: str) -> list[list[float]]:
        raise StepError(
            "provider anthropic has no embeddings API; embed with openvino.embed or an openai provider",
            retryable=False,
        )

    async def stream(
        self, messages: list[Message], **options: Unpack[GenerationOptions]
    ) -> AsyncIterator[str]:
        """Text deltas of a streamed reply, each as soon as the server sent it."""
        payload = self._payload(messages, options)
        payload["stream"] = True
        reply = AnthropicStream(lambda _text: None)  # raises on an `error` event
        async for event in self._stream_events("/messages", payload):
            await reply.add(event)
            delta = (event.get("delta") or {}) if isinstance(event, dict) else {}
            if delta.get("type") == "text_delta" and event.get("type") == "content_block_delta":
                yield delta.get("text", "")


def _chat_result(resp: httpx.Response) -> ChatResult:
    """A whole (not streamed) Messages reply: text blocks joined, tool_use blocks as tool calls."""
    try:
        raw = resp.json()
        blocks = raw["content"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StepError(f"LLM reply has no content: {resp.text[:200]}", retryable=False,
                        code=ErrorCode.LLM_REPLY_INVALID) from exc  # fmt: skip
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [
        ToolCall(id=b.get("id", ""), name=b.get("name", ""), arguments=b.get("input") or {})
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    usage = raw.get("usage") or {}
    return ChatResult(
        text=text,
        tool_calls=calls,
        usage={
            "prompt_tokens": int(usage.get("input_tokens", 0)),
            "completion_tokens": int(usage.get("output_tokens", 0)),
        },
        raw=raw,
    )


def _anthropic(*, base_url: str = "", api_key: str = "", http: HttpClient, **kw: Any) -> AnthropicProvider:
    return AnthropicProvider(base_url or ANTHROPIC_BASE_URL, api_key, http, **kw)


register_provider("anthropic", _anthropic, base_url=ANTHROPIC_BASE_URL)

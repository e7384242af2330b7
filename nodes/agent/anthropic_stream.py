"""An Anthropic Messages reply put together from its server-sent events, as they arrive.

The stream is `message_start` (with the input tokens), then per content block a
`content_block_start` (a text block, or a tool_use block with its id and name), its
`content_block_delta`s (`text_delta` text, `input_json_delta` pieces of the tool's JSON input) and
a `content_block_stop`, then `message_delta` (stop reason, output tokens so far) and
`message_stop`; `ping`s anywhere, and an `error` event when the service gives up mid-stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from engine.contract import ErrorCode, StepError
from nodes.agent.llm import ChatResult, ToolCall

# Errors Anthropic sends in the stream that are worth another attempt later.
RETRYABLE_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})


class AnthropicStream:
    """Feed it each event's JSON (`add`); `on_text` gets each text delta at once; `result()` at the end."""

    def __init__(self, on_text: Callable[[str], Any]) -> None:
        self.on_text = on_text
        self.events = 0
        self.blocks: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, int] = {}
        self.stop_reason = ""

    async def add(self, event: Any) -> None:
        """Take one event; an `error` event becomes a StepError."""
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind in (None, "ping"):
            return
        self.events += 1
        if kind == "error":
            error = event.get("error") or {}
            raise StepError(
                f"LLM stream: {error.get('type', 'error')}: {str(error.get('message', ''))[:200]}",
                retryable=error.get("type") in RETRYABLE_ERRORS,
                code=ErrorCode.LLM_REPLY_INVALID,
            )
        if kind == "message_start":
            self._count((event.get("message") or {}).get("usage"))
        elif kind == "content_block_start":
            block = dict(event.get("content_block") or {})
            block.setdefault("text" if block.get("type") == "text" else "json", "")
            self.blocks[int(event.get("index", len(self.blocks)))] = block
        elif kind == "content_block_delta":
            self._delta(int(event.get("index", 0)), event.get("delta") or {})
        elif kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            self._count(event.get("usage"))

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        if delta.get("type") == "text_delta":
            block = self.blocks.setdefault(index, {"type": "text", "text": ""})
            text = str(delta.get("text") or "")
            if text:
                block["text"] = block.get("text", "") + text
                self.on_text(text)
        elif delta.get("type") == "input_json_delta":
            block = self.blocks.setdefault(index, {"type": "tool_use", "json": ""})
            block["json"] = block.get("json", "") + str(delta.get("partial_json") or "")

    def _count(self, usage: Any) -> None:
        # input_tokens come with message_start; output_tokens grow, message_delta has the total.
        for ours, theirs in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens")):
            value = (usage or {}).get(theirs)
            if isinstance(value, int):
                self.usage[ours] = value

    def result(self) -> ChatResult:
        """The reply: its text, its tool calls (inputs parsed from their JSON pieces) and usage."""
        blocks = [b for _, b in sorted(self.blocks.items())]
        calls = [
            ToolCall(id=b.get("id", ""), name=b.get("name", ""), arguments=_tool_input(b))
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        return ChatResult(
            text="".join(b.get("text", "") for b in blocks if b.get("type") == "text"),
            tool_calls=calls,
            usage={"prompt_tokens": 0, "completion_tokens": 0, **self.usage},
            raw={"streamed": True, "events": self.events, "stop_reason": self.stop_reason},
        )


def _tool_input(block: dict[str, Any]) -> dict[str, Any]:
    """A tool_use block's input: its streamed JSON pieces joined (none: the block's own `input`)."""
    raw = block.get("json") or ""
    if not raw:
        return dict(block.get("input") or {})
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_raw": raw}  # the model wrote broken JSON; the agent asks it to call again
    return value if isinstance(value, dict) else {"_raw": raw}

"""Anthropic's streamed Messages events put together as they come: text at once, tool inputs from
their JSON pieces, usage from message_start and message_delta, an error event as a StepError."""

from __future__ import annotations

import asyncio

import pytest

from engine.errors import StepError
from nodes.agent.anthropic_stream import AnthropicStream

EVENTS = [
    {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 25, "output_tokens": 1}}},
    {"type": "ping"},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "add."}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1,
     "content_block": {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a": 4'}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '0, "b": 2}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 17}},
    {"type": "message_stop"},
]  # fmt: skip


def _feed(events: list) -> tuple[AnthropicStream, list[tuple[str, int]]]:
    seen: list[tuple[str, int]] = []
    reply = AnthropicStream(lambda text: seen.append((text, reply.events)))

    async def go() -> None:
        for event in events:
            await reply.add(event)

    asyncio.run(go())
    return reply, seen


def test_text_goes_out_as_each_delta_arrives_and_tool_inputs_join_their_pieces() -> None:
    reply, seen = _feed(EVENTS)
    # Each text delta reached on_text when its own event came in (the 3rd and 4th counted events).
    assert seen == [("Let me ", 3), ("add.", 4)]
    result = reply.result()
    assert result.text == "Let me add."
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [("toolu_1", "add", {"a": 40, "b": 2})]
    assert result.usage == {"prompt_tokens": 25, "completion_tokens": 17}
    assert result.raw["stop_reason"] == "tool_use"


def test_broken_tool_json_is_handed_on_raw_for_the_agent_to_correct() -> None:
    start = {"type": "tool_use", "id": "t", "name": "add", "input": {}}
    reply, _ = _feed([
        {"type": "content_block_start", "index": 0, "content_block": start},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"a": '}},
    ])  # fmt: skip
    assert reply.result().tool_calls[0].arguments == {"_raw": '{"a": '}


def test_an_error_event_fails_the_call_retryable_when_the_service_is_overloaded() -> None:
    with pytest.raises(StepError, match="overloaded_error: Overloaded") as caught:
        _feed([{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}])
    assert caught.value.retryable
    with pytest.raises(StepError) as caught:
        _feed([{"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}])
    assert not caught.value.retryable

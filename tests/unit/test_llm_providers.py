"""The HTTP model providers' shared plumbing: completions as one user message, streamed deltas, the key header.

A server on 127.0.0.1 answers as OpenAI's and Anthropic's APIs do (JSON, or server-sent events
when the request asks to stream) and records what it was sent.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

import nodes.agent  # noqa: F401 - registers the providers
from nodes.agent.llm import get_provider

OPENAI_EVENTS = [
    {"choices": [{"delta": {"role": "assistant"}}]},
    {"choices": [{"delta": {"content": "Hel"}}]},
    "not json",
    {"choices": [{"delta": {"content": "lo"}}]},
    "[DONE]",
    {"choices": [{"delta": {"content": "after done"}}]},
]
ANTHROPIC_EVENTS = [
    {"type": "message_start", "message": {"id": "msg_1"}},
    {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Bon"}},
    {"type": "content_block_delta", "delta": {"type": "input_json_delta", "partial_json": "{}"}},
    {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "jour"}},
    {"type": "message_stop"},
]


class _Handler(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        anthropic = self.path.endswith("/messages")
        if body.get("stream"):
            events = ANTHROPIC_EVENTS if anthropic else OPENAI_EVENTS
            lines = [f"data: {e if isinstance(e, str) else json.dumps(e)}" for e in events]
            raw, content_type = ("event: ping\n" + "\n\n".join(lines) + "\n\n").encode(), "text/event-stream"
        else:
            reply = (
                {
                    "content": [{"type": "text", "text": "hi"}],
                    "usage": {"input_tokens": 3, "output_tokens": 1},
                }
                if anthropic
                else {
                    "choices": [{"message": {"role": "assistant", "content": "hi"}}],
                    "usage": {"total_tokens": 4},
                }
            )
            raw, content_type = json.dumps(reply).encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    """The base URL of the local server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _ask(name: str, base_url: str, call: str) -> tuple[Any, dict[str, Any]]:
    async def go() -> Any:
        async with httpx.AsyncClient() as http:
            provider = get_provider(name, base_url=base_url + "/", api_key="k-123", http=http)
            if call == "stream":
                messages = [{"role": "user", "content": "hello"}]
                return [delta async for delta in provider.stream(messages, model="m", max_tokens=5)]
            return await provider.complete("hello", model="m", temperature=0.5)

    _Handler.requests.clear()
    result = asyncio.run(go())
    (request,) = _Handler.requests
    return result, request


def test_openai_stream_yields_the_content_deltas_until_done(api: str) -> None:
    deltas, request = _ask("openai", api, "stream")
    assert deltas == ["Hel", "lo"]
    assert request["path"] == "/v1/chat/completions" and request["body"]["stream"] is True
    assert request["headers"]["Authorization"] == "Bearer k-123"


def test_openai_complete_sends_the_prompt_as_one_user_message(api: str) -> None:
    result, request = _ask("openai", api, "complete")
    assert result.text == "hi" and result.usage == {"total_tokens": 4}
    assert request["body"] == {
        "model": "m",
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": 0.5,
    }


def test_anthropic_stream_yields_only_the_text_deltas(api: str) -> None:
    deltas, request = _ask("anthropic", api, "stream")
    assert deltas == ["Bon", "jour"]
    assert request["path"] == "/v1/messages" and request["body"]["max_tokens"] == 5
    assert request["headers"]["x-api-key"] == "k-123"


def test_anthropic_complete_sends_the_prompt_as_one_user_message(api: str) -> None:
    result, request = _ask("anthropic", api, "complete")
    assert result.text == "hi" and result.usage == {"prompt_tokens": 3, "completion_tokens": 1}
    assert request["body"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    assert request["body"]["temperature"] == 0.5

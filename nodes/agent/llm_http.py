"""What the HTTP model providers share: base URL and key, one POST through the egress policy, streamed events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Unpack

import httpx

from engine.contract import HttpClient, raise_for_status, send, send_streamed
from nodes.agent.llm import ChatResult, GenerationOptions


class HttpProvider:
    """A model service over HTTP; a subclass names its default URL, the headers that carry the key, and `chat`."""

    default_base_url = ""

    def __init__(self, base_url: str, api_key: str, http: HttpClient, *, timeout_s: float = 120.0) -> None:
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.api_key = api_key
        self.http = http
        self.timeout_s = timeout_s

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    async def _post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        """POST `payload` as JSON to `path`; network trouble and error statuses become StepErrors."""
        url = f"{self.base_url}{path}"
        resp = await send(
            self.http, "POST", url, timeout=self.timeout_s, headers=self._headers(), json=payload
        )
        raise_for_status(resp, [], f"LLM {url}")
        return resp

    async def _post_streamed(
        self, path: str, payload: dict[str, Any], on_event: Callable[[Any], Awaitable[None]]
    ) -> httpx.Response:
        """POST like `_post`, awaiting `on_event` with each server-sent event's JSON as it arrives."""
        url = f"{self.base_url}{path}"
        decoder = SseDecoder()

        async def on_chunk(chunk: bytes) -> None:
            for event in decoder.feed(chunk):
                await on_event(event)

        resp = await send_streamed(
            self.http, "POST", url, timeout=self.timeout_s, headers=self._headers(), json=payload,
            on_chunk=on_chunk,
        )  # fmt: skip
        raise_for_status(resp, [], f"LLM {url}")
        for event in decoder.close():
            await on_event(event)
        return resp

    async def _stream_events(self, path: str, payload: dict[str, Any]) -> AsyncIterator[Any]:
        """Each server-sent event's JSON of a streamed POST, yielded as it arrives (not after the reply)."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        end = object()

        async def produce() -> None:
            try:
                await self._post_streamed(path, payload, queue.put)
            finally:
                await queue.put(end)

        task = asyncio.create_task(produce())
        try:
            while (event := await queue.get()) is not end:
                yield event
            await task  # the POST's own error, if it failed
        finally:
            if not task.done():  # the reader stopped early: stop reading the reply too
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def complete(self, prompt: str, **options: Unpack[GenerationOptions]) -> ChatResult:
        """A single-prompt completion (sent as one user message)."""
        messages = [{"role": "user", "content": prompt}]
        return await self.chat(messages, **options)  # type: ignore[attr-defined]


class SseDecoder:
    """The JSON of each `data:` line of a server-sent-events body fed in chunks of any size, until
    `[DONE]`; lines that are not JSON are skipped."""

    def __init__(self) -> None:
        self._buffer = b""
        self.done = False

    def feed(self, chunk: bytes) -> list[Any]:
        """The events completed by `chunk` (a line is complete at its newline)."""
        if self.done:
            return []
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        found: list[Any] = []
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            if not line.startswith("data:"):
                continue
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                self.done = True
                break
            try:
                found.append(json.loads(data))
            except ValueError:
                continue
        return found

    def close(self) -> list[Any]:
        """The last event, when the body did not end with a newline."""
        return self.feed(b"\n")

"""What the HTTP model providers share: base URL and key, one POST through the egress policy, streamed events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from engine.contract import HttpClient, raise_for_status, send
from nodes.agent.llm import ChatResult


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

    async def complete(
        self, prompt: str, *, model: str, temperature: float | None = None, max_tokens: int | None = None
    ) -> ChatResult:
        """A single-prompt completion (sent as one user message)."""
        messages = [{"role": "user", "content": prompt}]
        return await self.chat(messages, model=model, temperature=temperature, max_tokens=max_tokens)  # type: ignore[attr-defined]


def sse_events(resp: httpx.Response) -> Iterator[Any]:
    """The JSON of each `data:` line of a server-sent-events reply, until `[DONE]`; lines that are not JSON are skipped."""
    for line in resp.text.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            break
        try:
            event = json.loads(data)
        except ValueError:
            continue
        yield event

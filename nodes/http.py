"""The `tool.http` node: one HTTP request through the workflow's egress policy."""

from __future__ import annotations

from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from engine.context import StepContext
from engine.errors import StepError
from nodes.registry import Port, register

# Response headers that carry credentials or session state; never stored in step outputs.
SENSITIVE_RESPONSE_HEADERS = frozenset(
    {"set-cookie", "set-cookie2", "cookie", "authorization", "proxy-authorization", "x-api-key"}
)


class HttpRequestConfig(BaseModel):
    """Config of `tool.http`."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, description="Full http(s) URL; the egress policy must allow its host")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field("GET", description="HTTP method")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers",
        json_schema_extra={"format": "keyvalue"},
    )
    query: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Query-string parameters",
        json_schema_extra={"format": "keyvalue"},
    )
    body: Any = Field(
        None,
        description="JSON body; a string is sent as-is (set Content-Type yourself)",
        json_schema_extra={"format": "multiline"},
    )
    body_from_input: bool = Field(False, description="Send the input value as the JSON body instead")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds before the request gives up")
    expect_status: list[int] = Field(
        default_factory=list,
        description="Statuses that count as success; empty = any 2xx or 3xx",
    )


def _is_success(status: int, expect: list[int]) -> bool:
    return status in expect if expect else 200 <= status < 400


def _parse_body(resp: httpx.Response) -> Any:
    content_type = resp.headers.get("content-type", "")
    if "json" in content_type:
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            pass  # a server that mislabels text; hand the text back
    return resp.text


def response_output(resp: httpx.Response) -> dict[str, Any]:
    """Status, headers without credentials, and the body parsed as JSON when it says so."""
    headers = {k.lower(): v for k, v in resp.headers.items() if k.lower() not in SENSITIVE_RESPONSE_HEADERS}
    return {"status": resp.status_code, "headers": headers, "body": _parse_body(resp)}


def raise_for_status(resp: httpx.Response, expect: list[int], what: str) -> None:
    """StepError unless the status counts as success: 5xx, 429 and 408 retryable, the rest not."""
    status = resp.status_code
    if _is_success(status, expect):
        return
    retryable = status >= 500 or status in (408, 429)
    snippet = resp.text[:200].strip()
    raise StepError(f"{what} answered HTTP {status}: {snippet}", retryable=retryable)


class HttpClient(Protocol):
    """What a node needs from HTTP; `StepContext.http` (the egress-checked client) fits."""

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response: ...


async def send(client: HttpClient, method: str, url: str, *, timeout: float, **kwargs: Any) -> httpx.Response:
    """One request through `client`; network trouble becomes a retryable StepError."""
    try:
        return await client.request(method, url, timeout=timeout, **kwargs)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise StepError(f"url: {exc}", retryable=False) from exc
    except httpx.TimeoutException as exc:
        raise StepError(f"{method} {url} timed out after {timeout:g} s", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise StepError(f"{method} {url} failed: {exc!r}", retryable=True) from exc


@register(
    "tool.http",
    category="tool",
    label="HTTP request",
    config=HttpRequestConfig,
    inputs={"in": Port("any", required=False, description="the JSON body when body_from_input is set")},
    outputs={"out": Port("any", description="{status, headers, body}")},
    icon="globe",
)
async def http_request(ctx: StepContext, cfg: HttpRequestConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Send one HTTP request and return its status, headers and body."""
    body = inputs.get("in") if cfg.body_from_input else cfg.body
    kwargs: dict[str, Any] = {"headers": dict(cfg.headers) or None, "params": dict(cfg.query) or None}
    if isinstance(body, str):
        kwargs["content"] = body.encode()
    elif body is not None:
        kwargs["json"] = body
    resp = await send(ctx.http, cfg.method, cfg.url, timeout=cfg.timeout_s, **kwargs)
    raise_for_status(resp, cfg.expect_status, f"{cfg.method} {cfg.url}")
    return {"out": response_output(resp)}

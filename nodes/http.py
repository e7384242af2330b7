"""The `tool.http` node: one HTTP request through the workflow's egress policy."""

from __future__ import annotations

import base64
import re
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.context import StepContext
from engine.errors import PolicyViolation, StepError
from engine.secrets import NAME_PATTERN as SECRET_NAME_PATTERN
from nodes.registry import Port, register

# Response headers that carry credentials or session state; never stored in step outputs.
SENSITIVE_RESPONSE_HEADERS = frozenset(
    {"set-cookie", "set-cookie2", "cookie", "authorization", "proxy-authorization", "x-api-key"}
)


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
# Marks a dict field whose values are secret names (the editor shows it as key/value pairs).
SECRET_VALUES = "x-secret-values"


def _check_header_names(names: list[str]) -> None:
    bad = [n for n in names if not _HEADER_NAME.match(n)]
    if bad:
        raise ValueError(f"{', '.join(map(repr, bad))} is not a header name")


class HttpAuth(BaseModel):
    """A credential from the secrets store, sent in a header; the value never is in the workflow."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["bearer", "basic", "header"] = Field(
        "bearer", description="bearer: Authorization: Bearer <secret>; basic: username + secret; header"
    )
    secret: str = Field(
        pattern=SECRET_NAME_PATTERN,
        description="Name of the secret (Secrets page); its bindings must allow this URL",
        json_schema_extra={"format": "secret"},
    )
    header: str = Field("X-Api-Key", description="The header that carries the secret (type header)")
    username: str = Field("", max_length=200, description="The user name (type basic)")

    @field_validator("header")
    @classmethod
    def _header_name(cls, name: str) -> str:
        _check_header_names([name])
        return name


def secret_headers_of(
    ctx: StepContext, url: str, auth: HttpAuth | None, secret_headers: dict[str, str]
) -> dict[str, str]:
    """The request headers that carry secrets, each resolved for `url` through the secret's bindings."""
    headers: dict[str, str] = {}
    if auth is not None:
        value = ctx.secret(auth.secret, field="auth.secret", destination=url)
        if auth.type == "bearer":
            headers["Authorization"] = f"Bearer {value}"
        elif auth.type == "basic":
            token = base64.b64encode(f"{auth.username}:{value}".encode()).decode()
            ctx.keep_secret(token)  # a server echoing the header back shows the encoded form
            headers["Authorization"] = f"Basic {token}"
        else:
            headers[auth.header] = value
    for header, name in secret_headers.items():
        headers[header] = ctx.secret(name, field=f"secret_headers.{header}", destination=url)
    return headers


def merge_headers(plain: dict[str, str], secret: dict[str, str]) -> dict[str, str]:
    """Plain headers with the secret-carrying ones on top (a plain header cannot shadow them)."""
    taken = {k.lower() for k in secret}
    return {**{k: v for k, v in plain.items() if k.lower() not in taken}, **secret}


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
    auth: HttpAuth | None = Field(
        None, description="A credential from the secrets store: {type: bearer|basic|header, secret, ...}"
    )
    secret_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Header -> secret name; each header carries that secret's value",
        json_schema_extra={"format": "keyvalue", SECRET_VALUES: True},
    )
    body_from_input: bool = Field(False, description="Send the input value as the JSON body instead")
    timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds before the request gives up")
    expect_status: list[int] = Field(
        default_factory=list,
        description="Statuses that count as success; empty = any 2xx or 3xx",
    )

    @field_validator("secret_headers")
    @classmethod
    def _secret_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        _check_header_names(list(headers))
        bad = [n for n in headers.values() if not re.match(SECRET_NAME_PATTERN, n)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} is not a secret name")
        return headers


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


async def send_with_secrets(
    ctx: StepContext, secret: dict[str, str], method: str, url: str, *, timeout: float, **kwargs: Any
) -> httpx.Response:
    """`send` through `ctx.secret_http` when the request carries secrets (redirects refused), else `ctx.http`."""
    if not secret:
        return await send(ctx.http, method, url, timeout=timeout, **kwargs)
    try:
        return await send(ctx.secret_http, method, url, timeout=timeout, **kwargs)
    except PolicyViolation as exc:
        if "max_redirects" not in str(exc):
            raise
        raise PolicyViolation(
            f"{method} {url} answered with a redirect; a request that carries a secret never follows "
            "redirects: use the final URL"
        ) from None


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
    secret = secret_headers_of(ctx, cfg.url, cfg.auth, cfg.secret_headers)  # refused before any request
    body = inputs.get("in") if cfg.body_from_input else cfg.body
    headers = merge_headers(dict(cfg.headers), secret)
    kwargs: dict[str, Any] = {"headers": headers or None, "params": dict(cfg.query) or None}
    if isinstance(body, str):
        kwargs["content"] = body.encode()
    elif body is not None:
        kwargs["json"] = body
    resp = await send_with_secrets(ctx, secret, cfg.method, cfg.url, timeout=cfg.timeout_s, **kwargs)
    raise_for_status(resp, cfg.expect_status, f"{cfg.method} {cfg.url}")
    return {"out": response_output(resp)}

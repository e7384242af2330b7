"""HTTP for nodes: credentials in headers, requests through the step's egress-checked client, errors classified."""

from __future__ import annotations

import base64
import inspect
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal, Protocol, TypedDict, Unpack

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from engine.config_fields import SECRET_VALUES
from engine.contract.context import StepContext
from engine.egress import egress_httpx_client  # noqa: F401 - offered to nodes through the contract
from engine.errors import PolicyViolation, StepError
from engine.secrets import NAME_PATTERN as SECRET_NAME_PATTERN

# Response headers that carry credentials or session state; never stored in step outputs.
SENSITIVE_RESPONSE_HEADERS = frozenset(
    {"set-cookie", "set-cookie2", "cookie", "authorization", "proxy-authorization", "x-api-key"}
)


# The longest wait a Retry-After may ask for; a longer one is taken as this.
MAX_RETRY_AFTER_S = 3600


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")


def check_header_names(names: list[str]) -> None:
    """ValueError naming every entry of `names` that is not a valid HTTP header name."""
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
        check_header_names([name])
        return name


def check_secret_headers(headers: dict[str, str]) -> dict[str, str]:
    """`headers` when every key is a header name and every value a secret name; ValueError otherwise."""
    check_header_names(list(headers))
    bad = [n for n in headers.values() if not re.match(SECRET_NAME_PATTERN, n)]
    if bad:
        raise ValueError(f"{', '.join(map(repr, bad))} is not a secret name")
    return headers


# The config fields of a node that sends credentials with its requests (tool.http, webhook.send):
# `auth: HttpAuthField = None` and `secret_headers: SecretHeadersField`; `secret_headers_of` reads them.
HttpAuthField = Annotated[
    HttpAuth | None,
    Field(description="A credential from the secrets store: {type: bearer|basic|header, secret, ...}"),
]
SecretHeadersField = Annotated[
    dict[str, str],
    Field(
        default_factory=dict,
        description="Header -> secret name; each header carries that secret's value",
        json_schema_extra={"format": "keyvalue", SECRET_VALUES: True},
    ),
    AfterValidator(check_secret_headers),
]


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
    wait = retry_after_s(resp.headers.get("retry-after")) if retryable else None
    raise StepError(f"{what} answered HTTP {status}: {snippet}", retryable=retryable, retry_after_s=wait)


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks to wait (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), MAX_RETRY_AFTER_S))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return float(min(max(seconds, 0.0), MAX_RETRY_AFTER_S))


class RequestOptions(TypedDict, total=False):
    """The keyword arguments of `HttpClient.request`, each optional: those of `EgressClient.request`."""

    headers: httpx.Headers | dict[str, str] | None
    json: Any
    content: bytes | str | None
    params: dict[str, Any] | None
    timeout: float | None
    on_chunk: Callable[[bytes], Awaitable[None]] | None


class HttpClient(Protocol):
    """What a node needs from HTTP; `StepContext.http` (the egress-checked client) fits."""

    async def request(self, method: str, url: str, **options: Unpack[RequestOptions]) -> httpx.Response: ...


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


ChunkHandler = Callable[[bytes], Awaitable[None]]


async def send_streamed(
    client: HttpClient, method: str, url: str, *, timeout: float, on_chunk: ChunkHandler, **kwargs: Any
) -> httpx.Response:
    """`send`, handing the body of a 2xx reply to `on_chunk` as it arrives (a streamed model reply).

    The step's egress-checked clients read it live; any other client hands it over once, whole,
    after the reply. The whole response is returned either way.
    """
    try:
        live = "on_chunk" in inspect.signature(client.request).parameters
    except (TypeError, ValueError):
        live = False
    if live:
        return await send(client, method, url, timeout=timeout, on_chunk=on_chunk, **kwargs)
    resp = await send(client, method, url, timeout=timeout, **kwargs)
    if resp.is_success and resp.content:
        await on_chunk(resp.content)
    return resp


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

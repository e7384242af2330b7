"""Outbound HTTP that cannot be turned into SSRF: every destination and redirect hop passes the egress policy.

check_destination resolves the host and refuses the URL unless every address passes; EgressClient then
connects to an address it checked (the Host header and TLS SNI keep the name), so DNS cannot change the
answer between the check and the connection. Redirects are followed by hand: each hop is checked again,
and a hop to another origin (scheme, host or port) carries only CROSS_ORIGIN_HEADERS. The client keeps
no cookies, so a cookie one server sets never reaches another.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import unquote

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine import circuit_breaker, guardrail_scope
from engine.errors import EgressRefused, ErrorCode, PolicyViolation, StepError
from engine.special_addresses import IPAddress, IPNetwork, embedded_ipv4, why_not_global

# Cloud instance-metadata and platform endpoints: refused unless listed by exact address, even with
# allow_private. 168.63.129.16 is a public address, but it is Azure's WireServer inside every VM.
METADATA_ADDRESSES: dict[IPAddress, str] = {
    ipaddress.ip_address(address): provider
    for address, provider in (
        ("169.254.169.254", "AWS, GCP, Azure, OpenStack, DigitalOcean instance metadata"),
        ("169.254.170.2", "AWS ECS task credentials"),
        ("169.254.170.23", "AWS EKS pod identity"),
        ("100.100.100.200", "Alibaba Cloud instance metadata"),
        ("192.0.0.192", "Oracle Cloud instance metadata"),
        ("168.63.129.16", "Azure WireServer"),
        ("fd00:ec2::254", "AWS instance metadata over IPv6"),
        ("fd00:ec2::23", "AWS EKS pod identity over IPv6"),
    )
}
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})
_HOSTNAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# What a request carries to another origin after a redirect: these and nothing else, so Authorization,
# Proxy-Authorization, Cookie, X-Api-Key and any custom header holding a secret stay behind.
CROSS_ORIGIN_HEADERS = frozenset(
    {"accept", "accept-encoding", "accept-language", "content-language", "content-type", "user-agent"}
)
_FIX = "allow it in the workflow's egress policy (policy.egress.allowed_hosts)"


@dataclass(frozen=True)
class _Rule:
    """One allowed_hosts / denied_hosts entry: a name, a *.suffix, an address or a CIDR, maybe a port."""

    host: str | None = None
    suffix: str | None = None
    network: IPNetwork | None = None
    exact: bool = False  # the network is one address written out, not a CIDR
    port: int | None = None

    @classmethod
    def parse(cls, entry: str) -> _Rule:
        text = entry.strip().lower().rstrip(".")
        if "/" in text:
            return cls(network=ipaddress.ip_network(text, strict=False))
        host, port = text, None
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest:
                port = _parse_port(rest.removeprefix(":"), entry) if rest.startswith(":") else -1
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            port = _parse_port(port_text, entry)
        if port == -1:
            raise ValueError(f"{entry!r} is not a valid host entry")
        try:
            return cls(network=ipaddress.ip_network(host), exact=True, port=port)
        except ValueError:
            pass
        wildcard = host.startswith("*.")
        name = _normalize_name(host[2:] if wildcard else host)
        if name is None:
            raise ValueError(f"{entry!r} is not a host, host:port, *.domain or CIDR entry")
        return cls(suffix=f".{name}", port=port) if wildcard else cls(host=name, port=port)

    def matches(self, host: str, port: int, address: IPAddress | None) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return address is not None and address in self.network
        return host.endswith(self.suffix) if self.suffix else host == self.host


def _parse_port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r} has an invalid port")
    return int(text)


def _normalize_name(name: str) -> str | None:
    """Lower-case, IDNA-encoded the way httpx encodes it, or None when it is no hostname."""
    try:
        encoded = httpx.URL(f"http://{name}/").raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError):
        return None
    return encoded if _HOSTNAME.fullmatch(encoded) else None


@lru_cache(maxsize=256)
def _rules(entries: tuple[str, ...]) -> tuple[_Rule, ...]:
    return tuple(_Rule.parse(entry) for entry in entries)


class EgressPolicy(BaseModel):
    """Where a workflow's HTTP steps may connect; embedded in workflow definitions."""

    model_config = ConfigDict(extra="forbid")

    allow_private: bool = False  # every non-global address (metadata endpoints still need an exact entry)
    allowed_hosts: list[str] = Field(
        default_factory=list
    )  # "host", "host:port", "*.example.com", "10.0.0.0/8"
    denied_hosts: list[str] = Field(default_factory=list)
    max_redirects: int = Field(5, ge=0, le=20)
    max_response_bytes: int = Field(5_000_000, gt=0, le=100_000_000)
    timeout_s: float = Field(30, gt=0, le=300)

    @field_validator("allowed_hosts", "denied_hosts")
    @classmethod
    def _entries_parse(cls, entries: list[str]) -> list[str]:
        _rules(tuple(entries))
        return entries


def _refusal(address: IPAddress, host: str, port: int, policy: EgressPolicy) -> str | None:
    """Why the policy refuses this resolved address, or None when it may be used."""
    embedded = embedded_ipv4(address)
    candidates = [address] if embedded is None else [address, embedded]
    allow, deny = _rules(tuple(policy.allowed_hosts)), _rules(tuple(policy.denied_hosts))
    if any(rule.matches(host, port, a) for rule in deny for a in candidates):
        return "which policy.egress.denied_hosts refuses"
    metadata = next((METADATA_ADDRESSES[a] for a in candidates if a in METADATA_ADDRESSES), None)
    if metadata is not None:
        if any(rule.exact and rule.matches(host, port, a) for rule in allow for a in candidates):
            return None
        return (
            f"a cloud metadata address ({metadata}); it is refused unless listed by exact address "
            "in policy.egress.allowed_hosts"
        )
    if any(rule.matches(host, port, a) for rule in allow for a in candidates):
        return None
    kind = why_not_global(address)
    if kind is None or policy.allow_private:
        return None
    return f"{f'which leads to {embedded}, ' if embedded else ''}{kind}; {_FIX}"


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in."""
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def _split(url: str | httpx.URL) -> tuple[httpx.URL, str, int]:
    """Parse url the way the client will, refusing what is not plain http(s) to a named host."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise EgressRefused(f"url {str(url)!r} is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise EgressRefused(f"url {str(url)!r}: scheme {parsed.scheme!r} is not allowed; only http and https")
    if parsed.userinfo:
        raise EgressRefused(f"url {str(url)!r} carries credentials before '@'; send them in a header instead")
    host = unquote(parsed.raw_host.decode("ascii")).lower().rstrip(".")
    if not host:
        raise EgressRefused(f"url {str(url)!r} has no host")
    if "%" in host:
        raise EgressRefused(f"url {str(url)!r}: IPv6 zone ids are not allowed")
    return parsed, host, parsed.port or (443 if parsed.scheme == "https" else 80)


def _resolve(url: str, host: str, port: int) -> list[IPAddress]:
    """Every address the OS would connect to for host (numeric forms such as 2130706433 included)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise StepError(f"url {url!r}: cannot resolve host {host!r}: {exc}", retryable=True) from exc
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _check(url: str, policy: EgressPolicy) -> tuple[httpx.URL, str, list[IPAddress]]:
    parsed, host, port = _split(url)
    if host in METADATA_HOSTS and not any(r.host == host for r in _rules(tuple(policy.allowed_hosts))):
        raise EgressRefused(
            f"url {url!r} names {host}, a cloud metadata host; it is refused unless listed exactly "
            "in the workflow's egress policy (policy.egress.allowed_hosts)"
        )
    addresses = _resolve(url, host, port)
    for address in addresses:
        reason = _refusal(address, host, port, policy)
        if reason is not None:
            raise EgressRefused(f"url {url!r} resolves to {address}, {reason}")
    return parsed, host, addresses


def check_destination(url: str, policy: EgressPolicy) -> list[IPAddress]:
    """Resolve url's host; return its addresses when every one passes the policy, else raise EgressRefused."""
    return _check(url, policy)[2]


class EgressClient:
    """Async HTTP client whose every request and redirect hop passes the egress policy."""

    def __init__(self, policy: EgressPolicy | None = None) -> None:
        self.policy = policy or EgressPolicy()
        # No keep-alive: the pool keys connections by IP, so a TLS connection opened for one name
        # could otherwise carry a request for another name that resolves to the same address.
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=self.policy.timeout_s,
            limits=httpx.Limits(max_keepalive_connections=0),
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),  # stores and sends none
        )

    async def __aenter__(self) -> EgressClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying connection pool."""
        await self._client.aclose()

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET url through the egress policy."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST to url through the egress policy."""
        return await self.request("POST", url, **kwargs)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: httpx.Headers | dict[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        on_chunk: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> httpx.Response:
        """Send a request and follow redirects by hand; every hop is checked and sent to its checked address.

        `on_chunk` is awaited with each body chunk of a final 2xx response as it arrives (a streamed
        reply read live); the size limit still applies and the whole response is still returned.
        """
        limit = self.policy.timeout_s if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await self._follow(
                    method.upper(), url, httpx.Headers(headers), json, content, params, limit, on_chunk
                )
        except TimeoutError as exc:
            raise StepError(
                f"{method} {url}: no complete response within {limit:g}s", retryable=True
            ) from exc
        except httpx.RequestError as exc:
            retryable = isinstance(exc, httpx.TransportError)
            raise StepError(f"{method} {url}: {type(exc).__name__}: {exc}", retryable=retryable) from exc

    async def _follow(
        self,
        method: str,
        url: str,
        headers: httpx.Headers,
        json: Any,
        content: bytes | str | None,
        params: dict[str, Any] | None,
        timeout: float,
        on_chunk: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> httpx.Response:
        current = _split(url)[0]
        if params:
            current = current.copy_merge_params(params)
        history: list[httpx.Response] = []
        via: str | None = None
        for _ in range(self.policy.max_redirects + 1):
            response = await self._send(method, current, headers, json, content, timeout, via)
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or location is None:
                return await self._read(response, current, headers, history, on_chunk)
            await response.aclose()
            history.append(response)
            target = current.join(location)
            if (response.status_code == 303 and method != "HEAD") or (
                response.status_code in (301, 302) and method == "POST"
            ):
                method, json, content = "GET", None, None
            if _origin(target) != _origin(current):
                kept = [(k, v) for k, v in headers.multi_items() if k.lower() in CROSS_ORIGIN_HEADERS]
                headers = httpx.Headers(kept)
            via, current = f"redirect {len(history)} ({current} -> {target})", target
        raise EgressRefused(
            f"url {url!r} redirected more than {self.policy.max_redirects} times (policy.egress.max_redirects)"
        )

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        headers: httpx.Headers,
        json: Any,
        content: bytes | str | None,
        timeout: float,
        via: str | None,
    ) -> httpx.Response:
        """Check url, then send to one of its checked addresses with the name in Host and SNI."""
        try:
            _, hop_host, hop_port = _split(url)
            guardrail_scope.check_destination(hop_host, hop_port)  # the step's network guardrails, every hop
            _, host, addresses = await asyncio.to_thread(_check, str(url), self.policy)
        except PolicyViolation as exc:
            if via is None:
                raise
            raise EgressRefused(f"{via} refused: {exc}") from exc
        destination = f"{url.scheme}://{host}:{url.port or (443 if url.scheme == 'https' else 80)}"
        admission = circuit_breaker.allow(destination)
        if not admission.admitted:
            raise StepError(
                f"{destination}: circuit breaker open after repeated failures; next try in "
                f"{admission.wait_s:.0f} s (breaker_failures, breaker_open_s)",
                retryable=True, code=ErrorCode.CIRCUIT_OPEN, retry_after_s=admission.wait_s,
            )  # fmt: skip
        try:
            response = await self._send_checked(method, url, host, addresses, headers, json, content, timeout)
        except (httpx.TransportError, StepError, asyncio.CancelledError):
            circuit_breaker.record(destination, ok=False)
            raise
        circuit_breaker.record(destination, ok=response.status_code < 500 and response.status_code != 429)
        return response

    async def _send_checked(
        self,
        method: str,
        url: httpx.URL,
        host: str,
        addresses: list[IPAddress],
        headers: httpx.Headers,
        json: Any,
        content: bytes | str | None,
        timeout: float,
    ) -> httpx.Response:
        """Send to the first of the checked addresses that takes a connection."""
        pinned = httpx.Headers(headers)
        pinned["host"] = url.netloc.decode("ascii")
        extensions = {"sni_hostname": host} if url.scheme == "https" else {}
        error: httpx.ConnectError | None = None
        for address in addresses:
            request = self._client.build_request(
                method,
                url.copy_with(host=str(address)),
                headers=pinned,
                json=json,
                content=content,
                timeout=timeout,
                extensions=extensions,
            )
            try:
                return await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:  # nothing was sent; try the next checked address
                error = exc
        raise error or StepError(f"{url}: no address to connect to", retryable=True)

    async def _read(
        self,
        response: httpx.Response,
        url: httpx.URL,
        headers: httpx.Headers,
        history: list[httpx.Response],
        on_chunk: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> httpx.Response:
        """Read the body, refusing it once it passes max_response_bytes; the result names the host, not the IP."""
        limit = self.policy.max_response_bytes
        declared = response.headers.get("content-length", "")
        chunks: list[bytes] = []
        try:
            if declared.isdigit() and int(declared) > limit:
                raise EgressRefused(
                    f"response from {url} declares {int(declared):,} bytes; {_size_fix(limit)}"
                )
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise EgressRefused(f"response from {url} is over {limit:,} bytes; {_size_fix(limit)}")
                chunks.append(chunk)
                if on_chunk is not None and response.is_success:
                    await on_chunk(chunk)
        finally:
            await response.aclose()
        dropped = ("content-encoding", "content-length", "transfer-encoding")  # the body is decoded now
        result = httpx.Response(
            response.status_code,
            headers=[(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped],
            content=b"".join(chunks),
            request=httpx.Request(response.request.method, url, headers=headers),
            extensions=response.extensions,
        )
        result.history = history
        with suppress(RuntimeError):  # unset when the response never went through a real connection
            result.elapsed = response.elapsed
        return result


def _size_fix(limit: int) -> str:
    return f"the limit is {limit:,} (policy.egress.max_response_bytes)"


class EgressTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends each request (each redirect hop is a request) only after the
    egress policy and the destination's circuit breaker allowed it, to the address that was
    checked (Host and SNI keep the name), for libraries that want an `httpx.AsyncClient` of
    their own (the MCP client). Response size is not capped here; the library reads the body.
    """

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._inner = httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _, hop_host, hop_port = _split(request.url)
        guardrail_scope.check_destination(hop_host, hop_port)  # the step's network guardrails
        _, host, addresses = await asyncio.to_thread(_check, str(request.url), self.policy)
        url = request.url
        destination = f"{url.scheme}://{host}:{url.port or (443 if url.scheme == 'https' else 80)}"
        admission = circuit_breaker.allow(destination)
        if not admission.admitted:
            raise httpx.ConnectError(
                f"{destination}: circuit breaker open after repeated failures; next try in {admission.wait_s:.0f} s",
                request=request,
            )
        headers = httpx.Headers(request.headers)
        headers["host"] = url.netloc.decode("ascii")
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        error: httpx.TransportError | None = None
        for address in addresses:
            pinned = httpx.Request(
                request.method, url.copy_with(host=str(address)), headers=headers,
                stream=request.stream, extensions=extensions,
            )  # fmt: skip
            try:
                response = await self._inner.handle_async_request(pinned)
            except httpx.ConnectError as exc:  # nothing was sent; try the next checked address
                error = exc
                continue
            except httpx.TransportError:
                circuit_breaker.record(destination, ok=False)
                raise
            circuit_breaker.record(destination, ok=response.status_code < 500 and response.status_code != 429)
            return response
        circuit_breaker.record(destination, ok=False)
        raise error or httpx.ConnectError(f"{url}: no address to connect to", request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def egress_httpx_client(
    policy: EgressPolicy,
    *,
    headers: dict[str, str] | None = None,
    timeout: httpx.Timeout | float | None = None,
    auth: httpx.Auth | None = None,
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` whose every request and redirect hop passes `policy` (EgressTransport)."""
    return httpx.AsyncClient(
        transport=EgressTransport(policy),
        headers=headers,
        timeout=timeout if timeout is not None else policy.timeout_s,
        auth=auth,
        follow_redirects=policy.max_redirects > 0,
        max_redirects=max(policy.max_redirects, 1),
        trust_env=False,
        cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
    )

"""Where a secret may go: destination and node-type bindings, the environment variables no secret
may come from, and redaction of secret values from what the engine stores.

A secret's `allowed_destinations` holds host entries ("api.openai.com", "api.openai.com:443",
"*.example.com") and URL prefixes ("https://hooks.example.com/flowloom/"). A host entry matches
the destination's host exactly (a `*.` entry: any subdomain, not the apex), on any port unless
it names one; a URL prefix matches scheme, host and port exactly and the path on a segment
boundary. An empty list allows no network destination at all. `allowed_node_types` empty means
any node type.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import httpx

REDACTED = "[redacted]"
MIN_REDACTED_LENGTH = 4  # shorter values would blank out ordinary words
NODE_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")
_HOSTNAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Environment variables the application itself (or its database and broker clients) reads: an
# opted-in environment secret may never name one. Every FLOWLOOM_ variable is refused as well.
APP_ENV_PREFIXES = ("FLOWLOOM_", "REFLEX_")
APP_ENV_NAMES = frozenset(
    {
        "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "OIDC_PROVIDERS", "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND", "BROKER_URL", "PGPASSWORD", "PGPASSFILE", "PGUSER", "PGHOST",
        "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE", "PGSERVICEFILE", "PGSSLKEY", "PGSSLCERT",
        "PGSSLROOTCERT", "REDISCLI_AUTH",
    }
)  # fmt: skip


def _host_of(url: httpx.URL) -> str | None:
    """The URL's host as httpx sends it (lower case, IDNA, no trailing dot), or None when it has none."""
    raw = url.raw_host.decode("ascii", "replace").lower().rstrip(".")
    if ":" in raw:
        try:
            return str(ipaddress.IPv6Address(raw))
        except ValueError:
            return None
    return raw if raw and _HOSTNAME.fullmatch(raw) else None


def _clean_path(raw_path: str) -> str | None:
    """The decoded path without a trailing slash; None when it walks up ('..') after decoding."""
    path = unquote(raw_path.split("?", 1)[0]).replace("\\", "/")
    if any(segment in (".", "..") for segment in path.split("/")):
        return None
    return path.rstrip("/")


@dataclass(frozen=True)
class Destination:
    """One allowed_destinations entry, parsed."""

    entry: str
    host: str | None = None  # exact host
    suffix: str | None = None  # "*.example.com" -> ".example.com"
    port: int | None = None
    scheme: str | None = None  # set for URL prefixes
    path: str = ""  # URL prefixes: the path without a trailing slash

    @classmethod
    def parse(cls, entry: str) -> Destination:
        """Parse an entry; ValueError saying which forms are accepted."""
        text = (entry or "").strip()
        if "://" in text:
            return cls._parse_prefix(entry, text)
        if not text or "/" in text or "@" in text:
            raise ValueError(_form_error(entry))
        wildcard = text.startswith("*.")
        try:
            url = httpx.URL(f"http://{text[2:] if wildcard else text}/")
        except httpx.InvalidURL:
            raise ValueError(_form_error(entry)) from None
        host = _host_of(url)
        if host is None or (wildcard and ":" in host):
            raise ValueError(_form_error(entry))
        if wildcard:
            return cls(entry, suffix=f".{host}", port=url.port)
        return cls(entry, host=host, port=url.port)

    @classmethod
    def _parse_prefix(cls, entry: str, text: str) -> Destination:
        try:
            url = httpx.URL(text)
        except httpx.InvalidURL:
            raise ValueError(_form_error(entry)) from None
        host = _host_of(url)
        if url.scheme not in _DEFAULT_PORTS or host is None or url.userinfo or url.query or url.fragment:
            raise ValueError(
                f"{entry!r}: a URL prefix is http(s)://host[:port]/path, without user, query or #"
            )
        path = _clean_path(url.raw_path.decode("ascii"))
        if path is None:
            raise ValueError(f"{entry!r}: the path may not contain '.' or '..' segments")
        return cls(
            entry, host=host, port=url.port or _DEFAULT_PORTS[url.scheme], scheme=url.scheme, path=path
        )

    def matches(self, url: httpx.URL) -> bool:
        """Whether a request to `url` may carry the secret."""
        host = _host_of(url)
        if host is None or url.scheme not in _DEFAULT_PORTS:
            return False
        port = url.port or _DEFAULT_PORTS[url.scheme]
        if self.suffix is not None:
            return host.endswith(self.suffix) and (self.port is None or self.port == port)
        if host != self.host or (self.port is not None and self.port != port):
            return False
        if self.scheme is None:
            return True
        path = _clean_path(url.raw_path.decode("ascii"))
        if url.scheme != self.scheme or path is None:
            return False
        return not self.path or path == self.path or path.startswith(self.path + "/")


def _form_error(entry: str) -> str:
    return (
        f"{entry!r} is not a destination: use a host (api.example.com), host:port, *.example.com "
        "or a URL prefix (https://api.example.com/v1/)"
    )


@lru_cache(maxsize=512)
def _parsed(entries: tuple[str, ...]) -> tuple[Destination, ...]:
    return tuple(Destination.parse(e) for e in entries)


def check_destinations(entries: Iterable[str]) -> list[str]:
    """The entries, stripped, if every one parses; ValueError naming the first that does not."""
    cleaned = [e.strip() for e in entries]
    _parsed(tuple(cleaned))
    return cleaned


def check_node_types(entries: Iterable[str]) -> list[str]:
    """The node type names, stripped, if each looks like one; ValueError otherwise."""
    cleaned = [e.strip() for e in entries]
    for name in cleaned:
        if not NODE_TYPE_PATTERN.match(name):
            raise ValueError(f"{name!r} is not a node type name (e.g. tool.http, webhook.send, agent)")
    return cleaned


def destination_allowed(url: str, entries: Iterable[str]) -> bool:
    """Whether a request to `url` may carry a secret bound to `entries`."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    return any(d.matches(parsed) for d in _parsed(tuple(entries)))


def display_host(url: str) -> str:
    """The destination as an error names it: scheme://host[:port]/path, no user or query."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return repr(url[:200])
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.raw_host.decode('ascii', 'replace')}{port}{parsed.path}"


def env_var_refusal(variable: str) -> str | None:
    """Why `variable` may not hold an opted-in secret (it is the app's own configuration), or None."""
    upper = variable.upper()
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,199}", upper):
        return f"{variable!r} is not an environment variable name"
    if upper.startswith(APP_ENV_PREFIXES):
        return f"{variable} is the application's own configuration ({upper.split('_', 1)[0]}_ variables)"
    if upper in APP_ENV_NAMES:
        return f"{variable} is read by the application itself"
    return None


def redact_value(value: Any, secrets: Iterable[str]) -> Any:
    """`value` (JSON-like) with every secret value replaced by [redacted], in strings and keys."""
    known = sorted({s for s in secrets if s and len(s) >= MIN_REDACTED_LENGTH}, key=len, reverse=True)
    if not known:
        return value
    return _redact(value, known)


def _redact(value: Any, known: list[str]) -> Any:
    if isinstance(value, str):
        for secret in known:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {_redact(k, known) if isinstance(k, str) else k: _redact(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, known) for v in value]
    return value

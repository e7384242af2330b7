"""Host names and origins the web app answers to: FLOWLOOM_ALLOWED_HOSTS, loopback, and what follows.

Used by the Host check (app/api/trusted_hosts.py), the security headers, rxconfig (the origins Reflex's
socket and CORS accept) and `flowloom up` (which refuses a wide bind without an allow-list).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from engine.errors import ConfigError
from engine.settings import Settings

LOOPBACK_ORIGIN_NAMES = ("localhost", "127.0.0.1", "[::1]")


def split_host(value: str) -> tuple[str, int | None]:
    """('name', port) of a Host header value: lower-case, brackets and trailing dot removed."""
    value = value.strip().lower()
    port: str = ""
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        name = value
    return name.rstrip("."), int(port) if port.isdigit() else None


def is_loopback_name(name: str) -> bool:
    """localhost, *.localhost (RFC 6761) or a loopback address."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback_bind(host: str) -> bool:
    """Whether FLOWLOOM_HOST keeps the app on this machine (0.0.0.0, :: and names other than localhost do not)."""
    return is_loopback_name(split_host(host)[0])


@lru_cache(maxsize=16)
def _entries(allowed: tuple[str, ...]) -> frozenset[tuple[str, int | None]]:
    return frozenset(split_host(entry) for entry in allowed if entry.strip())


def host_allowed(value: str, settings: Settings, server: tuple[str, int] | None = None) -> bool:
    """Whether a Host header value may be served: empty, a loopback name, the literal address the
    connection reached (`server`, so no DNS name that could be rebound), or in FLOWLOOM_ALLOWED_HOSTS
    (an entry without a port matches every port)."""
    name, port = split_host(value)
    if not name or is_loopback_name(name):
        return True
    if server is not None and name == split_host(str(server[0]))[0]:
        return True
    entries = _entries(tuple(settings.allowed_hosts))
    return (name, None) in entries or (name, port) in entries


def check_web_settings(settings: Settings) -> None:
    """Refuse settings that would open the app to other hosts or origins, naming the setting to fix."""
    for field, values in (("ALLOWED_HOSTS", settings.allowed_hosts), ("CORS_ORIGINS", settings.cors_origins)):
        if any("*" in value for value in values):
            raise ConfigError(
                f"FLOWLOOM_{field} contains a wildcard; list each name (for example "
                f'["https://flowloom.example.com"] or ["flowloom.example.com"])'
            )
    if not is_loopback_bind(settings.host) and not settings.allowed_hosts:
        raise ConfigError(
            f"FLOWLOOM_HOST={settings.host} serves beyond this machine, so set FLOWLOOM_ALLOWED_HOSTS to the "
            "names browsers use for Flowloom, for example FLOWLOOM_ALLOWED_HOSTS='[\"flowloom.example.com\"]'"
        )


def app_origins(settings: Settings) -> list[str]:
    """The app's own origins (loopback names, the bind address, FLOWLOOM_ALLOWED_HOSTS) plus CORS_ORIGINS.

    Reflex's socket server and CORS middleware get this list instead of their default "*".
    """
    check_web_settings(settings)
    port = settings.port
    origins = [f"http://{name}:{port}" for name in LOOPBACK_ORIGIN_NAMES]
    if not is_loopback_bind(settings.host) and settings.host not in ("0.0.0.0", "::", ""):
        origins.append(f"http://{_bracketed(settings.host)}:{port}")
    for entry in settings.allowed_hosts:
        name, entry_port = split_host(entry)
        netlocs = (
            [f"{_bracketed(name)}:{entry_port}"]
            if entry_port
            else [_bracketed(name), f"{_bracketed(name)}:{port}"]
        )
        origins.extend(f"{scheme}://{netloc}" for netloc in netlocs for scheme in ("https", "http"))
    origins.extend(origin.rstrip("/") for origin in settings.cors_origins)
    return list(dict.fromkeys(origins))


def _bracketed(name: str) -> str:
    return f"[{name}]" if ":" in name else name

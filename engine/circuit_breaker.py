"""A circuit breaker per HTTP destination (scheme://host:port), shared by every worker through Redis.

Closed: requests pass; each failure (no connection, a timeout, HTTP 5xx or 429) counts, a success
clears the count. After `breaker_failures` failures in a row the circuit opens: for `breaker_open_s`
requests to that destination are refused at once, before any connection, with a retryable step
error whose retry waits until the circuit may close. Then it is half-open: one request at a time
is let through as a probe; its success closes the circuit, its failure opens it again.

The state is one Redis hash per destination, changed by Lua scripts that read Redis's own clock, so
all workers on all machines see one circuit. Without a Redis URL the state is kept in this process.
If Redis does not answer, requests pass (and a warning is logged): the breaker protects
destinations, it must not become the outage. Used by the egress-checked HTTP client
(engine/egress.py), so tool.http, webhook.send and the LLM providers all go through it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import redis

from engine.settings import get_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "flowloom:breaker:"
IDLE_MS = 10 * 60 * 1000  # a destination's state is forgotten after 10 minutes without requests

# KEYS[1] circuit; ARGV[1] probe slot ms. Returns {admitted (0/1), ms to wait or 1 when a probe}.
_ALLOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until == 0 then return {1, 0} end
if now < open_until then return {0, open_until - now} end
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if now < probe_until then return {0, probe_until - now} end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[1]))
return {1, 1}
"""

# KEYS[1] circuit; ARGV[1] 1 = success; ARGV[2] failures to open; ARGV[3] open ms; ARGV[4] idle ms.
# Returns the state after: 'closed', 'counting' or 'open'.
_RECORD = """
if ARGV[1] == '1' then redis.call('DEL', KEYS[1]) return 'closed' end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
local was_open = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') > 0
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
if was_open or fails >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[3]))
  redis.call('HDEL', KEYS[1], 'probe_until')
  return 'open'
end
return 'counting'
"""


@dataclass(frozen=True)
class Admission:
    """Whether a request may go: `wait_s` until the circuit may let one through when it may not."""

    admitted: bool
    wait_s: float = 0.0
    probe: bool = False


@dataclass(frozen=True)
class Circuit:
    """One destination's circuit as the dashboard and the health check show it."""

    destination: str
    state: str  # closed | open | half-open
    failures: int
    opens_for_s: float  # while open: how long it stays open


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


@lru_cache(maxsize=4)
def _scripts(url: str):
    client = _client(url)
    return client.register_script(_ALLOW), client.register_script(_RECORD)


class _LocalBreaker:
    """The same rules in this process, for a deployment (or a test) without Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, dict[str, float]] = {}

    def allow(self, key: str, probe_ms: int) -> Admission:
        now = time.monotonic() * 1000
        with self._lock:
            state = self._state.get(key, {})
            open_until = state.get("open_until", 0.0)
            if not open_until:
                return Admission(True)
            if now < open_until:
                return Admission(False, (open_until - now) / 1000)
            if now < state.get("probe_until", 0.0):
                return Admission(False, (state["probe_until"] - now) / 1000)
            state["probe_until"] = now + probe_ms
            return Admission(True, probe=True)

    def record(self, key: str, ok: bool, failures: int, open_ms: int) -> str:
        now = time.monotonic() * 1000
        with self._lock:
            if ok:
                self._state.pop(key, None)
                return "closed"
            state = self._state.setdefault(key, {})
            state["fails"] = state.get("fails", 0) + 1
            if state.get("open_until") or state["fails"] >= failures:
                state["open_until"] = now + open_ms
                state.pop("probe_until", None)
                return "open"
            return "counting"

    def circuits(self) -> list[Circuit]:
        now = time.monotonic() * 1000
        with self._lock:
            return [_circuit(k, s, now) for k, s in self._state.items()]

    def clear(self) -> None:
        with self._lock:
            self._state.clear()


_local = _LocalBreaker()


def _circuit(destination: str, state: dict[str, float], now_ms: float) -> Circuit:
    open_until = state.get("open_until", 0.0)
    if not open_until:
        name, left = "closed", 0.0
    elif now_ms < open_until:
        name, left = "open", (open_until - now_ms) / 1000
    else:
        name, left = "half-open", 0.0
    return Circuit(destination, name, int(state.get("fails", 0)), round(left, 3))


def _enabled() -> bool:
    return get_settings().breaker_failures > 0


def allow(destination: str) -> Admission:
    """May a request go to `destination` now? Counts a half-open circuit's probe."""
    if not _enabled():
        return Admission(True)
    settings = get_settings()
    probe_ms = int(settings.breaker_open_s * 1000)
    if not settings.redis_url:
        return _local.allow(destination, probe_ms)
    allow_script, _ = _scripts(settings.redis_url)
    try:
        admitted, wait_ms = allow_script(keys=[KEY_PREFIX + destination], args=[probe_ms])
    except (redis.RedisError, OSError) as exc:
        log.warning(
            "circuit breaker: Redis did not answer (%s); letting %s through", type(exc).__name__, destination
        )
        return Admission(True)
    if int(admitted):
        return Admission(True, probe=int(wait_ms) == 1)
    return Admission(False, int(wait_ms) / 1000)


def record(destination: str, ok: bool) -> str:
    """Count a request's outcome; the circuit's state after it (closed, counting, open)."""
    if not _enabled():
        return "closed"
    settings = get_settings()
    open_ms = int(settings.breaker_open_s * 1000)
    if not settings.redis_url:
        return _local.record(destination, ok, settings.breaker_failures, open_ms)
    _, record_script = _scripts(settings.redis_url)
    try:
        state = record_script(
            keys=[KEY_PREFIX + destination],
            args=["1" if ok else "0", settings.breaker_failures, open_ms, IDLE_MS],
        )
    except (redis.RedisError, OSError) as exc:
        log.warning(
            "circuit breaker: Redis did not answer (%s) recording %s", type(exc).__name__, destination
        )
        return "closed"
    state = state.decode() if isinstance(state, bytes) else str(state)
    if state == "open":
        log.warning(
            "circuit breaker: %s is open for %g s after failures", destination, settings.breaker_open_s
        )
    return state


def circuits() -> list[Circuit]:
    """Every destination with failures or an open circuit, open ones first."""
    settings = get_settings()
    if not settings.redis_url:
        found = _local.circuits()
    else:
        client = _client(settings.redis_url)
        try:
            now_s, now_us = cast(tuple[int, int], client.time())
            now_ms = now_s * 1000 + now_us // 1000
            found = []
            for key in client.scan_iter(match=KEY_PREFIX + "*", count=500):
                raw = cast(dict[bytes, bytes], client.hgetall(key))
                state = {k.decode(): float(v) for k, v in raw.items()}
                found.append(_circuit(key.decode()[len(KEY_PREFIX) :], state, now_ms))
        except (redis.RedisError, OSError) as exc:
            log.warning("circuit breaker: Redis did not answer (%s) listing circuits", type(exc).__name__)
            return []
    order = {"open": 0, "half-open": 1, "closed": 2}
    return sorted(found, key=lambda c: (order[c.state], c.destination))


def reset(destination: str | None = None) -> None:
    """Close one circuit (or, in this process's fallback, all): an operator's "try again now"."""
    settings = get_settings()
    if not settings.redis_url:
        _local.clear() if destination is None else _local.record(destination, True, 1, 0)
        return
    client = _client(settings.redis_url)
    if destination is None:
        for key in client.scan_iter(match=KEY_PREFIX + "*", count=500):
            client.delete(key)
    else:
        client.delete(KEY_PREFIX + destination)

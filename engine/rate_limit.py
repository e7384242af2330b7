"""A per-key rate limit every web process shares: a generic cell-rate algorithm (GCRA) in Redis.

`take(key, per_minute)` admits up to `per_minute` requests in a burst and then one every
60/per_minute seconds; it answers how long to wait (0 = admitted). The state is one Redis key
per limited thing (its "theoretical arrival time"), updated atomically by a Lua script that reads
Redis's own clock, so several processes on several machines count together and their clocks do not
matter. Without a Redis URL (a bare API process) the count is kept in this process only. If Redis
does not answer, requests are admitted and a warning is logged: a limiter outage must not drop
deliveries that PostgreSQL can still take.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from functools import lru_cache

import redis

from engine.settings import get_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "flowloom:rate:"
PERIOD_US = 60_000_000

# KEYS[1]: the limited thing; ARGV[1]: microseconds per request; ARGV[2]: the burst window (µs).
# Returns the microseconds to wait (0 = admitted and counted).
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > window then return string.format('%.0f', ahead - window) end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(ahead / 1000) + 1)
return 0
"""


def _interval_us(per_minute: int) -> int:
    return max(1, PERIOD_US // max(1, per_minute))


@lru_cache(maxsize=4)
def _script(url: str):
    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    return client.register_script(_GCRA)


class _LocalLimiter:
    """The same algorithm in this process, for a deployment without Redis."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}

    def take(
        self, key: str, per_minute: int, *, interval_us: int | None = None, window_us: int = PERIOD_US
    ) -> float:
        now = time.monotonic() * 1_000_000
        step = _interval_us(per_minute) if interval_us is None else interval_us
        with self._lock:
            tat = max(self._tat.get(key, now), now)
            ahead = tat + step - now
            if ahead > window_us:
                return (ahead - window_us) / 1_000_000
            self._tat[key] = tat + step
            if len(self._tat) > 10_000:  # forget keys whose bursts are fully recovered
                self._tat = {k: v for k, v in self._tat.items() if v > now}
            return 0.0


_local = _LocalLimiter()


def take(key: str, per_minute: int, *, redis_url: str | None = None) -> float:
    """Count one request against `key`'s limit; seconds to wait before retrying (0.0 = admitted)."""
    url = get_settings().redis_url if redis_url is None else redis_url
    if not url:
        return _local.take(key, per_minute)
    try:
        waited = _script(url)(keys=[KEY_PREFIX + key], args=[_interval_us(per_minute), PERIOD_US])
    except (redis.RedisError, OSError) as exc:
        log.warning(
            "rate limit %s: Redis did not answer (%s); admitting the request", key, type(exc).__name__
        )
        return 0.0
    return int(waited) / 1_000_000


def take_within(key: str, limit: int, period_s: float, *, redis_url: str | None = None) -> float:
    """Like `take`, for `limit` requests per `period_s` seconds (a burst of `limit`, then one every period/limit)."""
    url = get_settings().redis_url if redis_url is None else redis_url
    period_us = int(period_s * 1_000_000)
    interval_us = max(1, period_us // max(1, limit))
    if not url:
        return _local.take(key, limit, interval_us=interval_us, window_us=period_us)
    try:
        waited = _script(url)(keys=[KEY_PREFIX + key], args=[interval_us, period_us])
    except (redis.RedisError, OSError) as exc:
        log.warning(
            "rate limit %s: Redis did not answer (%s); admitting the request", key, type(exc).__name__
        )
        return 0.0
    return int(waited) / 1_000_000


def retry_after(wait_s: float) -> str:
    """A Retry-After header value (whole seconds, at least 1) for a wait."""
    return str(max(1, math.ceil(wait_s)))

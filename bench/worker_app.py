"""The engine's Celery app plus the raw-Celery baseline tasks the benchmark compares against."""

from __future__ import annotations

import redis

import engine.tasks  # noqa: F401  (registers the engine's tasks on the app)
from engine.celery_app import celery_app
from engine.settings import get_settings


@celery_app.task(name="bench.noop", ignore_result=True)
def noop(key: str) -> None:
    """A no-op that counts itself, for the raw tasks/s baseline."""
    redis.Redis.from_url(get_settings().redis_url).incr(key)


@celery_app.task(name="bench.hop", ignore_result=True)
def hop(remaining: int, key: str) -> None:
    """One link of a raw Celery chain: each task sends the next, the last records the time."""
    r = redis.Redis.from_url(get_settings().redis_url)
    r.rpush(key, repr(__import__("time").time()))
    if remaining > 0:
        celery_app.send_task("bench.hop", args=[remaining - 1, key])

"""The engine's worker app plus the raw-Celery baseline tasks the benchmark compares against.

Run: `python -m bench.worker_app worker ARGS...` (Celery's `worker` command with this app).
"""

from __future__ import annotations

import sys
import time

import redis
from celery import Celery

from engine.settings import get_settings
from engine.tasks import create_worker_app


def register_bench_tasks(app: Celery) -> Celery:
    """Register the raw baseline tasks (bench.noop, bench.hop) on `app`."""

    @app.task(name="bench.noop", ignore_result=True, shared=False)
    def noop(key: str) -> None:
        """A no-op that counts itself, for the raw tasks/s baseline."""
        redis.Redis.from_url(get_settings().redis_url).incr(key)

    @app.task(name="bench.hop", ignore_result=True, shared=False)
    def hop(remaining: int, key: str, work_s: float = 0.0) -> None:
        """One link of a raw Celery chain: each task records its time, works `work_s` (a sleep,
        as the engine's `sleep` tool) and sends the next; the last one records when it is done."""
        r = redis.Redis.from_url(get_settings().redis_url)
        r.rpush(key, repr(time.time()))
        if work_s:
            time.sleep(work_s)
            if remaining == 0:
                r.rpush(key, repr(time.time()))
        if remaining > 0:
            app.send_task("bench.hop", args=[remaining - 1, key, work_s])

    return app


def create_bench_app() -> Celery:
    """The engine's worker app with the baseline tasks beside the engine's."""
    return register_bench_tasks(create_worker_app())


if __name__ == "__main__":
    sys.exit(create_bench_app().start(sys.argv[1:]) or 0)

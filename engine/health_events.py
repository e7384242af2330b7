"""`system.health_check` events: each web and worker process writes its health to the outbox now and then.

The relay publishes them on <prefix>.system like any other event. One sample costs a COUNT of the
active runs, one pipelined round of LLEN on the Celery queue and a few psutil reads, every
FLOWLOOM_HEALTH_INTERVAL_S (default 60 s; 0 = none). They are written only when Kafka is set
(FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS): without a relay nothing would read them.

A worker reports from its main process (started on `worker_ready`, like the sweeper), the web app
from a thread started with the app (`health_reporting`, a lifespan task of the Reflex app).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import psutil
import redis
from kombu.transport.redis import PRIORITY_STEPS
from sqlalchemy import func, select
from sqlmodel import col

from engine import events
from engine.settings import get_settings
from models.db import get_engine
from models.tables import Run

log = logging.getLogger(__name__)

ACTIVE_RUN_STATUSES = ("queued", "running")
CPU_ALERT = 90.0  # % of the host
MEMORY_ALERT = 90.0  # % of the host
QUEUE_ALERT = 1000  # step messages waiting
_PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport keeps priority levels in lists "<queue>\x06\x16<n>"


def queue_keys(queue: str) -> list[str]:
    """The Redis lists that hold the Celery queue's waiting messages (one per priority level)."""
    return [queue if p == 0 else f"{queue}{_PRIORITY_SEP}{p}" for p in PRIORITY_STEPS]


class HealthSampler:
    """Reads one process's metrics; keeps its Redis connection and psutil's CPU baselines between samples."""

    def __init__(self, service: str, *, database_url: str, redis_url: str, queue: str) -> None:
        self.service = service
        self.database_url = database_url
        self.queue = queue
        self._redis = (
            redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) if redis_url else None
        )
        self._process = psutil.Process()
        psutil.cpu_percent(interval=None)  # the first reading only sets the baseline
        self._process.cpu_percent(interval=None)

    def sample(self) -> dict[str, Any]:
        """The event's data: service, status, metrics, alerts, host and pid."""
        alerts: list[str] = []
        metrics: dict[str, float] = {
            "cpu_usage": psutil.cpu_percent(interval=None),
            "memory_usage": psutil.virtual_memory().percent,
            "process_cpu_usage": self._process.cpu_percent(interval=None),
            "process_memory_mb": round(self._memory_bytes() / 1_048_576, 1),
        }
        with get_engine(self.database_url).connect() as conn:
            metrics["active_runs"] = conn.execute(
                select(func.count()).select_from(Run).where(col(Run.status).in_(ACTIVE_RUN_STATUSES))
            ).scalar_one()
        queued = self._queue_size()
        if queued is None:
            alerts.append(f"the Celery broker does not answer (queue {self.queue})")
        else:
            metrics["queue_size"] = queued
            if queued >= QUEUE_ALERT:
                alerts.append(f"{queued} step messages wait in queue {self.queue}")
        if metrics["cpu_usage"] >= CPU_ALERT:
            alerts.append(f"host CPU at {metrics['cpu_usage']:.0f}%")
        if metrics["memory_usage"] >= MEMORY_ALERT:
            alerts.append(f"host memory at {metrics['memory_usage']:.0f}%")
        return {
            "service": self.service, "status": "degraded" if alerts else "healthy", "metrics": metrics,
            "alerts": alerts, "host": socket.gethostname(), "pid": os.getpid(),
        }  # fmt: skip

    def _memory_bytes(self) -> int:
        """This process and its children (a worker's pool processes)."""
        total = self._process.memory_info().rss
        for child in self._process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def _queue_size(self) -> int | None:
        if self._redis is None:
            return None
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key in queue_keys(self.queue):
                pipe.llen(key)
            return int(sum(pipe.execute()))
        except redis.RedisError:
            return None

    def emit(self) -> dict[str, Any]:
        """Sample and write the event to the outbox (run_id NULL); returns its data."""
        data = self.sample()
        with get_engine(self.database_url).begin() as conn:
            events.emit(conn, events.SYSTEM_HEALTH_CHECK, None, **data)
        return data

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


class HealthReporter(threading.Thread):
    """Emits a health event every `interval_s` until stopped (the first one an interval after start)."""

    def __init__(self, sampler: HealthSampler, interval_s: float) -> None:
        super().__init__(name=f"flowloom-health-{sampler.service}", daemon=True)
        self.sampler = sampler
        self.interval_s = interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            try:
                self.sampler.emit()
            except Exception as exc:  # noqa: BLE001 - the database is away: the next interval tries again
                log.warning("health event of %s not written: %s", self.sampler.service, exc)
        self.sampler.close()

    def stop(self) -> None:
        self.stopping.set()


def start_reporter(service: str) -> HealthReporter | None:
    """Start reporting this process's health as `service` (web, worker); None when it is off."""
    settings = get_settings()
    if settings.health_interval_s <= 0 or not settings.kafka_bootstrap_servers or not settings.database_url:
        return None
    # The queue's length is read from Redis lists: not known when the steps go through another broker.
    queue_redis = "" if settings.broker_url else settings.redis_url
    sampler = HealthSampler(service, database_url=settings.database_url, redis_url=queue_redis,
                            queue=settings.queue)  # fmt: skip
    reporter = HealthReporter(sampler, settings.health_interval_s)
    reporter.start()
    log.info("health events of %s every %.0f s", service, settings.health_interval_s)
    return reporter


@contextlib.asynccontextmanager
async def health_reporting() -> AsyncIterator[None]:
    """The web app's lifespan task: report as "web" while the app runs."""
    reporter = start_reporter("web")
    try:
        yield
    finally:
        if reporter is not None:
            reporter.stop()


_worker_reporter: HealthReporter | None = None


def start_worker_reporter(**_: object) -> None:
    """`worker_ready` receiver: report as "worker" from the worker's main process."""
    global _worker_reporter
    _worker_reporter = start_reporter("worker")


def stop_worker_reporter(**_: object) -> None:
    """`worker_shutdown` receiver."""
    if _worker_reporter is not None:
        _worker_reporter.stop()

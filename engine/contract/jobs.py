"""Background jobs declared by node families: named functions a worker runs, reporting progress.

A family registers a job when it loads (`register_job("openvino.convert", convert)`); the engine's
`flowloom.job` task runs it by name in a worker (engine/jobs.py), so heavy work such as converting a
model never runs in the web process. A job is called as `fn(progress, **params)` with JSON params,
calls `progress(fraction, message)` as it goes, and returns a JSON-able dict.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from engine.contract.registry import ensure_plugins_loaded


class Progress(Protocol):
    """How a job reports how far it got: a fraction from 0 to 1 and a line for people."""

    def __call__(self, fraction: float, message: str = "") -> None: ...


JobFunction = Callable[..., dict[str, Any]]


def _always() -> bool:
    return True


@dataclass(frozen=True)
class JobType:
    """A job a node family offers: its name, its function and whether this machine can run it."""

    name: str
    run: JobFunction
    description: str = ""
    available: Callable[[], bool] = _always  # e.g. the optional libraries it needs are installed


_JOBS: dict[str, JobType] = {}
_lock = threading.Lock()


def register_job(
    name: str,
    fn: JobFunction,
    *,
    description: str = "",
    available: Callable[[], bool] = _always,
) -> JobFunction:
    """Offer `fn` as the job `name` (called by a node family when it loads); returns `fn`."""
    with _lock:
        known = _JOBS.get(name)
        if known is not None and known.run is not fn:
            raise ValueError(f"job {name!r} is already registered")
        _JOBS[name] = JobType(name=name, run=fn, description=description, available=available)
    return fn


def get_job(name: str) -> JobType | None:
    """The registered job called `name`, or None."""
    ensure_plugins_loaded()
    return _JOBS.get(name)


def job_available(name: str) -> bool:
    """Whether the job `name` is registered and says it can run here."""
    job = get_job(name)
    return job is not None and job.available()

"""The door for background jobs: submit one by name, read its progress, and (in a worker) run it.

Jobs are declared by node families (engine.contract.jobs) and run by the one Celery task
`flowloom.job` (registered in engine/tasks.py). Progress and the outcome live in Celery's Redis
result backend: the task writes `PROGRESS` states with {progress, message} as it goes, and its
return value or error at the end; `status()` reads them back for the page that polls.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from celery import Task

from engine.celery_app import current_celery
from engine.contract.jobs import Progress, get_job
from engine.errors import user_message

log = logging.getLogger("flowloom.jobs")

JOB_TASK = "flowloom.job"
PROGRESS_STATE = "PROGRESS"
STATES = ("queued", "running", "succeeded", "failed")


class JobFailed(Exception):
    """A job raised: carries only its message, so any process can read it back from the backend."""


@dataclass(frozen=True)
class JobStatus:
    """Where a job is: queued, running (with progress), succeeded (with its result) or failed."""

    id: str
    state: str  # one of STATES
    progress: float = 0.0  # 0..1
    message: str = ""
    result: dict[str, Any] | None = None
    error: str = ""

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def submit(name: str, params: dict[str, Any] | None = None) -> str:
    """Queue the job `name` with JSON `params` for a worker; returns the job's id."""
    if get_job(name) is None:
        raise LookupError(f"no installed node family offers the job {name!r}")
    job_id = str(uuid.uuid4())
    current_celery().send_task(JOB_TASK, args=[name, dict(params or {})], task_id=job_id)
    return job_id


def status(job_id: str) -> JobStatus:
    """What the result backend knows of job `job_id` (an id it never saw reads as queued)."""
    meta = current_celery().backend.get_task_meta(job_id)
    state, info = meta.get("status"), meta.get("result")
    if state == PROGRESS_STATE and isinstance(info, dict):
        return JobStatus(job_id, "running", _fraction(info.get("progress")), str(info.get("message") or ""))
    if state == "STARTED":
        return JobStatus(job_id, "running", message="started")
    if state == "SUCCESS":
        result = info if isinstance(info, dict) else {"value": info}
        return JobStatus(job_id, "succeeded", 1.0, str(result.get("message") or "done"), result=result)
    if state in ("FAILURE", "REVOKED"):
        return JobStatus(job_id, "failed", error=str(info or state.lower()))
    return JobStatus(job_id, "queued", message="waiting for a worker")


def _fraction(value: Any) -> float:
    try:
        return min(max(float(value), 0.0), 1.0)
    except (TypeError, ValueError):
        return 0.0


def run(task: Task, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run job `name` in this worker, writing its progress to the result backend (the task's body)."""
    job = get_job(name)
    if job is None:
        raise JobFailed(f"no installed node family offers the job {name!r} on this worker")

    def progress(fraction: float, message: str = "") -> None:
        task.update_state(state=PROGRESS_STATE, meta={"progress": _fraction(fraction), "message": message})

    reporter: Progress = progress
    reporter(0.0, "started")
    try:
        result = job.run(reporter, **params)
    except Exception as exc:  # the job's own code: report its message, keep the worker going
        log.warning("job %s (%s) failed: %s", name, task.request.id, exc, exc_info=True)
        raise JobFailed(user_message(exc)) from None
    return dict(result or {})

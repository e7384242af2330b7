"""The Celery app is built by a function: none at import, the tasks only on the worker's app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from celery import _state

from engine import dispatch, jobs
from engine.celery_app import celery_for, create_celery
from engine.tasks import PING_TASK, create_worker_app, register_tasks

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_engine_tasks_builds_no_celery_app() -> None:
    code = (
        "import engine.tasks, engine.dispatch, engine.celery_app\n"
        "from celery import _state\n"
        "print(len(list(_state._get_active_apps())), _state.default_app is None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["0", "True"]


def test_the_worker_app_carries_the_engine_tasks_under_their_message_names() -> None:
    app = create_worker_app("redis://127.0.0.1:1/0")
    try:
        tasks = app.tasks
        assert PING_TASK == "flowloom.ping"  # the names messages carry stay as they were
        assert tasks[PING_TASK]() == "pong"
        step = tasks[dispatch.STEP_TASK]
        assert step.acks_late and step.reject_on_worker_lost and step.ignore_result
        assert not tasks[PING_TASK].ignore_result
        assert app.conf.task_acks_late and app.conf.worker_prefetch_multiplier == 1
    finally:
        app.close()


def test_background_jobs_keep_their_progress_and_are_not_redelivered_after_a_worker_dies() -> None:
    app = create_worker_app("redis://127.0.0.1:1/0")
    try:
        job = app.tasks[jobs.JOB_TASK]
        assert jobs.JOB_TASK == "flowloom.job"
        assert not job.ignore_result and job.track_started
        assert job.acks_late and not job.reject_on_worker_lost
    finally:
        app.close()


def test_tasks_are_registered_only_on_the_app_they_were_given() -> None:
    worker = register_tasks(create_celery("redis://127.0.0.1:1/0", set_as_current=False))
    other = create_celery("redis://127.0.0.1:1/1", set_as_current=False)
    try:
        assert dispatch.STEP_TASK in worker.tasks
        assert dispatch.STEP_TASK not in other.tasks and PING_TASK not in other.tasks
    finally:
        worker.close()
        other.close()


def test_a_sender_app_does_not_replace_the_current_app() -> None:
    previous = _state.get_current_app()
    current = create_worker_app("redis://127.0.0.1:1/2")
    try:
        assert _state.get_current_app() is current
        sender = celery_for("redis://127.0.0.1:1/3")
        assert sender is celery_for("redis://127.0.0.1:1/3")
        assert _state.get_current_app() is current
        assert dispatch.STEP_TASK not in sender.tasks
    finally:
        current.close()
        previous.set_current()

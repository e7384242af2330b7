"""RabbitMQ as the Celery broker (FLOWLOOM_BROKER_URL=amqp://...), Redis kept for everything else.

Each test gets a RabbitMQ virtual host of its own (created and deleted with rabbitmqctl), so other
sessions on this machine's RabbitMQ are not disturbed. There is no skip: without RabbitMQ these fail.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.celery_app import celery_for, create_celery, current_celery
from engine.runs import start_run
from engine.settings import get_settings
from tests.conftest import REPO_ROOT, WorkerHandle
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow
from tests.integration.test_foundation import error_line, run_cli

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672"


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def rabbit_vhost() -> Iterator[str]:
    """amqp://.../<vhost> of a fresh virtual host that guest may use; deleted after the test."""
    vhost = f"flowloom-test-{os.getpid()}-{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield vhost
    finally:
        rabbitmqctl("delete_vhost", vhost)


def queues(vhost: str) -> dict[str, tuple[int, int]]:
    """name -> (messages, consumers) of each queue in `vhost`."""
    out = rabbitmqctl(
        "list_queues", "-p", vhost, "--no-table-headers", "--quiet", "name", "messages", "consumers"
    )
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    return {name: (int(messages), int(consumers)) for name, messages, consumers in rows}


def test_a_run_goes_through_rabbitmq_while_redis_keeps_the_rest(
    engine_env: None,
    rabbit_vhost: str,
    redis_url: str,
    worker_factory: Callable[..., WorkerHandle],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = f"{RABBITMQ}/{rabbit_vhost}"
    monkeypatch.setenv("FLOWLOOM_BROKER_URL", broker)
    monkeypatch.setenv("FLOWLOOM_QUEUE", f"{os.environ['FLOWLOOM_QUEUE']}-amqp")
    get_settings.cache_clear()
    app = create_celery(redis_url, set_as_current=False)
    assert app.conf.broker_url == broker and app.conf.result_backend == redis_url
    assert current_celery().conf.broker_url == broker  # the sending app follows the setting
    worker = worker_factory(concurrency=1, env={"FLOWLOOM_BROKER_URL": broker})
    try:
        queue = get_settings().queue
        assert queues(rabbit_vhost)[queue][1] == 1  # the worker consumes the queue on RabbitMQ
        defn = workflow(
            [
                node("start", "start"),
                node("a", "tool.python", tool="add", args={"a": 40, "b": 2}),
                node("end", "end"),
            ],
            [("start", "a"), ("a", "end")],
        )
        view = wait_for_run(start_run(defn, {}), timeout=90)
        assert view.status == "succeeded", view.error
        assert steps_by_node(view)["a"]["outputs"] == {"out": 42}
    finally:
        worker.stop()
        celery_for.cache_clear()


def test_the_durability_tests_pass_with_rabbitmq_as_the_broker(rabbit_vhost: str) -> None:
    # The whole file, in a pytest of its own with FLOWLOOM_BROKER_URL set: its workers and its own
    # process send and take every step through RabbitMQ (tests/integration/conftest.py's
    # isolated_broker gives the kill tests a queue of their own there).
    env = {**os.environ, "FLOWLOOM_BROKER_URL": f"{RABBITMQ}/{rabbit_vhost}"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/integration/test_durability.py", "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert re.search(r"\b[5-9] passed", summary) and "failed" not in summary and "skipped" not in summary, (
        summary
    )
    assert queues(rabbit_vhost), "nothing went through RabbitMQ"


def test_a_broker_that_refuses_is_one_line_naming_the_setting(
    pg_url: str, redis_url: str, tmp_path: Path, rabbit_vhost: str
) -> None:
    from engine.ops.services import find_free_port

    settings = {"database_url": pg_url, "redis_url": redis_url}
    unreachable = f"amqp://guest:guest@127.0.0.1:{find_free_port()}/{rabbit_vhost}"
    worker = run_cli(["worker"], tmp_path, **settings, broker_url=unreachable)
    assert worker.returncode == 3, worker.stdout + worker.stderr
    assert "FLOWLOOM_BROKER_URL" in error_line(worker) and "guest:***@" in error_line(worker)
    wrong_password = f"amqp://guest:not-the-password@127.0.0.1:5672/{rabbit_vhost}"
    doctor = run_cli(["doctor"], tmp_path, **settings, broker_url=wrong_password)
    broker_line = next(line for line in doctor.stdout.splitlines() if " broker " in line)
    assert broker_line.startswith("FAIL") and "not-the-password" not in doctor.stdout + doctor.stderr
    doctor = run_cli(["doctor"], tmp_path, **settings, broker_url=f"{RABBITMQ}/{rabbit_vhost}")
    assert any(line.startswith("ok   broker") for line in doctor.stdout.splitlines()), doctor.stdout

"""What bench/events.py sets up: the benchmark's workflow, topics and the processes it starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from engine import triggers, workflows
from engine.ops.services import find_free_port
from models.db import get_engine, session_scope

ROOT = Path(__file__).resolve().parents[1]


def echo_workflow(triggers_: list[dict] | None = None) -> dict:
    """start -> tool.python echo -> end, inputs {n: integer}, with the given triggers."""
    return {
        "id": "bench-events", "name": "bench events",
        "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "nodes": [{"id": "start", "type": "start"},
                  {"id": "echo", "type": "tool.python", "config": {"tool": "echo", "args": {"value": 1}}},
                  {"id": "end", "type": "end"}],
        "edges": [{"id": "e0", "source": "start", "target": "echo"},
                  {"id": "e1", "source": "echo", "target": "end"}],
        "triggers": triggers_ or [],
    }  # fmt: skip


def save_workflow(pg_url: str, defn: dict) -> tuple[str, dict[str, str]]:
    """Save `defn` as a new workflow's first version; its id and {trigger key: trigger id}."""
    with session_scope(pg_url) as session:
        wid = str(workflows.create_workflow(session, f"bench {uuid.uuid4().hex[:6]}").id)
        workflows.save_version(session, wid, defn)
    with get_engine(pg_url).connect() as conn:
        return wid, {t.key: t.id for t in triggers.list_for_workflow(conn, wid)}


def operator_key(pg_url: str) -> str:
    """A new operator user's API key (6000 calls a minute), for the benchmarks' API calls."""
    from app.auth import api_keys
    from models.auth import User

    with session_scope(pg_url) as session:
        user = User(issuer="https://bench.invalid", subject=f"bench-{uuid.uuid4().hex[:6]}", name="bench",
                    email="bench@example.test", role="operator", email_verified=True)  # fmt: skip
        session.add(user)
        session.flush()
        _, key = api_keys.create(session, user, name="bench", role="operator", rate_limit_per_min=6000)
    return key


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """A new topic with one replica."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM to the process group it leads (started with start_new_session), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def start_worker(env: dict[str, str], concurrency: int, log_path: Path) -> subprocess.Popen:
    """The engine's Celery worker (bench/worker_app.py), prefork, in a process group of its own."""
    command = [sys.executable, "-m", "bench.worker_app", "worker", "--loglevel", "WARNING",
               "--concurrency", str(concurrency), "--pool", "prefork", "-Q", env.get("FLOWLOOM_QUEUE", "flowloom"),
               "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def serve_api(env: dict[str, str], log_path: Path, workers: int = 1) -> tuple[subprocess.Popen, str]:
    """The API app served by granian on a loopback port, once it answers; the process and its base URL."""
    port = find_free_port()
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port",
               str(port), "--workers", str(workers), "--no-ws", "app.api.main:api"]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
    while True:
        try:
            httpx.get(f"{base}/api/health", timeout=2)
            return process, base
        except httpx.HTTPError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                raise RuntimeError(
                    f"granian did not come up:\n{log_path.read_text(errors='replace')[-3000:]}"
                ) from exc
            time.sleep(0.3)


def start_kafka_triggers(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`flowloom kafka-triggers` reading the list of live triggers every half second."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "engine.ops.cli", "kafka-triggers", "--refresh-s", "0.5"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

"""Session fixtures on real services: embedded PostgreSQL, Redis, Celery worker processes, `flowloom up`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

import models  # noqa: F401 - registers every table on SQLModel.metadata
from engine.ops.embedded_postgres import EmbeddedPostgres
from engine.ops.embedded_redis import EmbeddedRedis
from engine.ops.health import ping_workers
from engine.ops.launcher import stop_process_group
from engine.ops.migrate import upgrade_to_head
from engine.ops.services import find_free_port, redis_reachable
from engine.settings import get_settings
from models.db import get_engine
from models.workspace_column import DEFAULT_WORKSPACE_ID

REPO_ROOT = Path(__file__).resolve().parent.parent
# A database of its own on the machine's Redis; FLOWLOOM_TEST_REDIS_URL gives concurrent sessions their own.
MACHINE_REDIS_URL = os.environ.get("FLOWLOOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
# A queue of this session's own: test sessions running side by side on one Redis must not take
# each other's step messages (set before any engine module reads the settings).
os.environ["FLOWLOOM_QUEUE"] = f"flowloom-test-{os.getpid()}"
# The name tool.sql nodes of the tests use for the suite's own database (FLOWLOOM_SQL_CONNECTIONS).
SUITE_SQL_CONNECTION = "suite"
# The MCP server every test worker knows (FLOWLOOM_MCP_SERVERS): tests/fixtures/mcp_tool_server.py
# over stdio; it appends each call to MCP_CALL_LOG.
SUITE_MCP_SERVER = "testtools"
MCP_CALL_LOG = Path(tempfile.gettempdir()) / f"flowloom-test-mcp-calls-{os.getpid()}.jsonl"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unit, integration, chaos (own services it kills), then browser tests (slowest last; their
    app's workers share the Redis)."""
    rank = {"unit": 0, "integration": 1, "chaos": 1.5, "e2e": 2}
    items.sort(key=lambda item: rank.get(item.path.parent.name, 1))


@pytest.fixture(scope="session")
def service_dir() -> Iterator[Callable[[str], Path]]:
    """service_dir(name) -> a new folder for an embedded service's data, removed after the session.

    Not under pytest's basetemp: as root PostgreSQL runs as another user that must walk down to its
    data, and every pytest session that starts (other checkouts too) resets /tmp/pytest-of-<user> to 0700.
    """
    root = Path(tempfile.mkdtemp(prefix="flowloom-test-"))
    counter = iter(range(1_000_000))

    def make(name: str) -> Path:
        path = root / f"{name}-{next(counter)}"
        path.mkdir()
        return path

    yield make
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url(service_dir: Callable[[str], Path]) -> Iterator[str]:
    """An embedded PostgreSQL with pgvector on a free port, migrated to head."""
    server = EmbeddedPostgres(service_dir("pg") / "postgres", find_free_port())
    server.start()
    try:
        upgrade_to_head(server.url)
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def clean_db(pg_url: str) -> str:
    """Empty every table (TRUNCATE ... CASCADE) before the test; returns the database URL."""
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    for attempt in range(5):
        try:
            with get_engine(pg_url).begin() as conn:
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
                # Migration 0009's default workspace, which every user joins and every row defaults to.
                conn.execute(
                    text(
                        "INSERT INTO workspaces (id, slug, name, description, auto_join, created_at) "
                        "VALUES (:id, 'default', 'Default', 'Everyone who signs in joins it.', true, now())"
                    ),
                    {"id": DEFAULT_WORKSPACE_ID},
                )
            break
        except OperationalError as exc:
            # TRUNCATE locks table after table; a worker still finishing an earlier test's step may hold
            # one of them while it waits for another: PostgreSQL breaks the deadlock, we try again.
            if "deadlock" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.2)
    return pg_url


@pytest.fixture(scope="session")
def redis_url(service_dir: Callable[[str], Path]) -> Iterator[str]:
    """The machine's Redis (database 5, flushed) if it answers, else an embedded redis-server."""
    if redis_reachable(MACHINE_REDIS_URL):
        client = redis.Redis.from_url(MACHINE_REDIS_URL)
        client.flushdb()
        client.close()
        yield MACHINE_REDIS_URL
        return
    server = EmbeddedRedis(service_dir("redis"), find_free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


class WorkerHandle:
    """A `flowloom worker` process (Celery prefork master + pool) in its own process group."""

    def __init__(self, process: subprocess.Popen, log_path: Path, broker_url: str) -> None:
        self.process = process
        self.log_path = log_path
        self.broker_url = broker_url

    @property
    def pid(self) -> int:
        """The Celery master's pid (`flowloom worker` runs Celery in its own process, so the pid stays)."""
        return self.process.pid

    @property
    def name(self) -> str:
        """The Celery node name `flowloom worker` gives itself."""
        return f"flowloom{self.pid}@{socket.gethostname()}"

    def alive(self) -> bool:
        """True while the master process runs."""
        return self.process.poll() is None

    def child_pids(self) -> list[int]:
        """Pids of the pool processes (all descendants of the master)."""
        try:
            return [p.pid for p in psutil.Process(self.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the whole worker (its process group), as a crash or an operator would."""
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            self.process.wait(30)

    def stop(self, grace: float = 20.0) -> None:
        """Warm shutdown (SIGTERM to the group), SIGKILL after `grace` seconds."""
        if self.process.returncode is None:
            stop_process_group(self.process, signal.SIGTERM, grace)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the worker's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float) -> None:
        """Wait until this worker answers a ping; raise with its log if it dies or stays silent."""
        deadline = time.monotonic() + timeout
        while self.name not in ping_workers(self.broker_url, timeout=0.5):
            if not self.alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"worker {self.name} did not answer a ping:\n{self.log_tail()}")


@pytest.fixture(scope="session")
def worker_factory(
    pg_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., WorkerHandle]]:
    """Start real worker processes: factory(concurrency=1, env=None, timeout=60) -> WorkerHandle.

    Every worker knows the tool.sql connection `suite` (the session's database): the session's
    workers share one queue, so a step may land on any of them."""
    started: list[WorkerHandle] = []
    log_dir = tmp_path_factory.mktemp("workers")

    def start(concurrency: int = 1, env: dict[str, str] | None = None, timeout: float = 60.0) -> WorkerHandle:
        child_env = {
            **os.environ,
            "FLOWLOOM_DATABASE_URL": pg_url,
            "FLOWLOOM_REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
            "FLOWLOOM_SQL_CONNECTIONS": json.dumps({SUITE_SQL_CONNECTION: pg_url}),
            "FLOWLOOM_MCP_SERVERS": json.dumps(
                {
                    SUITE_MCP_SERVER: {
                        "command": [
                            sys.executable,
                            str(REPO_ROOT / "tests" / "fixtures" / "mcp_tool_server.py"),
                            "stdio",
                        ],
                        "env": {"MCP_CALL_LOG": str(MCP_CALL_LOG)},
                    }
                }
            ),  # fmt: skip
            **(env or {}),
        }
        log_path = log_dir / f"worker-{len(started)}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "engine.ops.cli", "worker", "--concurrency", str(concurrency)],
                cwd=REPO_ROOT,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        handle = WorkerHandle(process, log_path, child_env["FLOWLOOM_REDIS_URL"])
        started.append(handle)
        handle.wait_ready(timeout)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture(scope="session")
def worker(worker_factory: Callable[..., WorkerHandle]) -> WorkerHandle:
    """One worker (concurrency 2) for the session."""
    return worker_factory(concurrency=2)


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """settings_env(database_url=..., redis_url=...) sets FLOWLOOM_* for in-process code, undone after."""

    def set_env(**values: object) -> None:
        for key, value in values.items():
            monkeypatch.setenv(f"FLOWLOOM_{key.upper()}", str(value))
        get_settings.cache_clear()

    get_settings.cache_clear()
    yield set_env
    monkeypatch.undo()
    get_settings.cache_clear()


class LaunchedFlowloom:
    """A `flowloom up` process started for a test, its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine.ops.cli", "up"],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        """Everything the launcher and its children printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 300.0) -> str:
        """Wait for the `Flowloom is running at URL` line; return the URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if line.startswith("Flowloom is running at "):
                    return line.removeprefix("Flowloom is running at ").strip()
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"flowloom up did not come up:\n{self.output()[-4000:]}")

    def descendants(self) -> list[psutil.Process]:
        """Every process started under the launcher (web app, workers and their children)."""
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 90.0) -> int:
        """SIGTERM the launcher and wait for it; SIGKILL its group if it hangs. Returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode


@pytest.fixture(scope="session")
def launch_flowloom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LaunchedFlowloom]]:
    """Start `flowloom up` with FLOWLOOM_* overrides: launch(**settings) -> LaunchedFlowloom."""
    launched: list[LaunchedFlowloom] = []
    log_dir = tmp_path_factory.mktemp("launcher")

    def launch(**settings: object) -> LaunchedFlowloom:
        env = {**os.environ, **{f"FLOWLOOM_{k.upper()}": str(v) for k, v in settings.items()}}
        flowloom = LaunchedFlowloom(env, log_dir / f"up-{len(launched)}.log")
        launched.append(flowloom)
        return flowloom

    yield launch
    for flowloom in launched:
        flowloom.stop()

"""The chaos benchmark's own services (bench/chaos.py, tests/chaos/): a redis-server without persistence
it may kill, freeze and restart, an embedded PostgreSQL with the chaos tables, a Kafka-protocol broker,
and `flowloom worker` processes under the supervisor `flowloom up` runs, never the machine's."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
from sqlalchemy import text

from engine.ops.embedded_kafka import TansuBroker, tansu_path
from engine.ops.embedded_postgres import EmbeddedPostgres
from engine.ops.health import ping_workers
from engine.ops.launcher import RELAY_GRACE_S, WORKER_GRACE_S, Child, Supervisor
from engine.ops.migrate import upgrade_to_head
from engine.ops.services import find_free_port, redis_reachable
from engine.settings import get_settings
from models.db import get_engine

SQL_CONNECTION = "chaos"
# Fast loss detection: a dead worker's step is resent after 2 s, looked for every 0.5 s.
WORKER_ENV = {"FLOWLOOM_STEP_LEASE_S": "2", "FLOWLOOM_SWEEP_INTERVAL_S": "0.5", "FLOWLOOM_LOG_LEVEL": "INFO"}


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll `predicate` until it holds; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the awaited state never came")
        time.sleep(0.05)


class OwnRedis:
    """A redis-server without persistence on a free port: kill() loses everything queued."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or find_free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", ""],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not redis_reachable(self.url, timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the server and its whole dataset (queued messages, unacked ones) are gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its port (connections open, the kernel's backlog accepts new
        ones) and answers nothing, as a hung server or a dead network path does."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: the server answers again, the commands that waited in its sockets first."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


class OwnPostgres:
    """An embedded PostgreSQL (pgvector) on a free port, migrated, with the chaos tables."""

    def __init__(self, data_dir: Path) -> None:
        self.server = EmbeddedPostgres(data_dir, find_free_port())
        self.url = ""

    def start(self) -> None:
        self.url = self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def prepare(self) -> None:
        upgrade_to_head(self.url)
        with get_engine(self.url).begin() as conn:
            conn.execute(
                text("CREATE TABLE IF NOT EXISTS chaos_deliveries (id bigserial PRIMARY KEY, key text)")
            )
            conn.execute(text("CREATE TABLE IF NOT EXISTS chaos_effects (key text PRIMARY KEY)"))


class Workers:
    """`flowloom worker` processes (each in its own process group) on our services, run by the
    supervisor of `flowloom up` (engine.ops.launcher.Supervisor) in a thread of this process: a
    worker that dies is started again by it, after its backoff, its process group cleared first."""

    def __init__(self, pg_url: str, redis_url: str, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.env = {
            **os.environ, **WORKER_ENV, "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": redis_url,
            "FLOWLOOM_SQL_CONNECTIONS": json.dumps({SQL_CONNECTION: pg_url}), "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }  # fmt: skip
        self.redis_url = redis_url
        self.log_dir = log_dir
        self.supervisor = Supervisor()
        self.groups: set[int] = set()  # every process group started, killed at the end
        self._stopping = threading.Event()
        self._loop: threading.Thread | None = None

    def worker(self, index: int) -> Child:
        """Worker `index` as the supervisor knows it (its process, restarts)."""
        return [c for c in self.supervisor.children if c.name.startswith("worker-")][index]

    @property
    def processes(self) -> list[subprocess.Popen]:
        """The current process of each worker (a restarted worker's new one)."""
        return [c.process for c in self.supervisor.children if c.name.startswith("worker-")]

    def start_relay(self, bootstrap: str, prefix: str = "chaos", timeout: float = 60.0) -> Child:
        """`flowloom relay` under the same supervisor, publishing the outbox to the Kafka-protocol
        broker at `bootstrap`; returns once it says it is connected."""
        env = {
            **self.env,
            "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "FLOWLOOM_KAFKA_TOPIC_PREFIX": prefix,
        }
        output = self.log_dir / "relay.log"
        relay = self.supervisor.spawn("relay", [sys.executable, "-m", "engine.ops.cli", "relay"], env,
                                      signal.SIGTERM, RELAY_GRACE_S, output=output)  # fmt: skip
        self.groups.add(relay.process.pid)
        wait_for(lambda: "relay: connected to" in output.read_text(errors="replace"), timeout)
        return relay

    def start(self, count: int, concurrency: int = 1) -> None:
        for _ in range(count):
            index = len(self.processes)
            command = [sys.executable, "-m", "engine.ops.cli", "worker", "--concurrency", str(concurrency)]
            self.supervisor.spawn(f"worker-{index}", command, self.env, signal.SIGTERM, WORKER_GRACE_S,
                                  output=self.log_dir / f"worker-{index}.log")  # fmt: skip
        if self._loop is None:
            self._loop = threading.Thread(target=self._supervise, name="chaos-supervisor", daemon=True)
            self._loop.start()
        self.wait_ready(self.processes)

    def _supervise(self) -> None:
        while not self._stopping.wait(0.2):
            self.groups.update(p.pid for p in self.processes)
            self.supervisor.look_after_all()

    def _output(self, process: subprocess.Popen) -> str:
        for child in self.supervisor.children:
            if child.process is process and child.output is not None:
                return child.output.read_text(errors="replace")
        return ""

    def wait_ready(self, processes: list[subprocess.Popen], timeout: float = 120.0) -> None:
        import socket

        names = {f"flowloom{p.pid}@{socket.gethostname()}" for p in processes}
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                if names <= set(ping_workers(self.redis_url, timeout=1.0)):
                    return
            dead = [p for p in processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                tail = self._output(dead[0] if dead else processes[0])
                raise RuntimeError(f"worker did not answer a ping:\n{tail[-3000:]}")

    def kill_main(self, index: int) -> int:
        """SIGKILL worker `index`'s main (Celery master) process only, as a crash would; returns its pid.
        Its pool processes are orphaned until the supervisor clears the dead worker's group."""
        victim = self.processes[index]
        victim.kill()
        victim.wait(30)
        return victim.pid

    def kill_group(self, index: int) -> None:
        """SIGKILL worker `index`'s main process and its pool processes at once."""
        victim = self.processes[index]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(30)

    def pool_pids(self, index: int) -> set[int]:
        """Pids of worker `index`'s pool processes."""
        with contextlib.suppress(psutil.Error):
            return {p.pid for p in psutil.Process(self.processes[index].pid).children(recursive=True)}
        return set()

    def restarts(self) -> int:
        """How many times the supervisor started a worker again."""
        return sum(c.restarts for c in self.supervisor.children if c.name.startswith("worker-"))

    def stop(self) -> None:
        self._stopping.set()
        if self._loop is not None:
            self._loop.join(30)
        self.groups.update(p.pid for p in self.processes)
        self.supervisor.stop_all()
        for group in self.groups:  # orphaned pool processes of killed workers too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)


def own_kafka(log_dir: Path) -> TansuBroker | None:
    """A Kafka-protocol broker of our own (Tansu, memory storage) for the relay, if installed."""
    if not tansu_path():
        return None
    broker = TansuBroker(log_dir / "tansu.log")
    broker.start()
    return broker


@contextlib.contextmanager
def services(tmp: Path) -> Iterator[tuple[OwnPostgres, OwnRedis, TansuBroker | None]]:
    """Our own PostgreSQL, Redis and (when installed) Kafka-protocol broker, and the settings of
    this process pointing at them."""
    tmp.chmod(0o755)  # the embedded PostgreSQL runs as its own user when we are root
    own_pg, own_redis = OwnPostgres(tmp / "pg"), OwnRedis()
    own_pg.start()
    own_redis.start()
    kafka = own_kafka(tmp)
    try:
        own_pg.prepare()
        os.environ.update(FLOWLOOM_DATABASE_URL=own_pg.url, FLOWLOOM_REDIS_URL=own_redis.url,
                          FLOWLOOM_STEP_LEASE_S=WORKER_ENV["FLOWLOOM_STEP_LEASE_S"],
                          FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap if kafka else "")  # fmt: skip
        get_settings.cache_clear()
        yield own_pg, own_redis, kafka
    finally:
        if kafka is not None:
            kafka.stop()
        own_redis.kill()
        own_pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)

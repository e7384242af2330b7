"""`flowloom up`: start the services, migrate, run the workers and the web app, supervise, stop it all."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import psutil

from engine.errors import ConfigError
from engine.key_files import check_key_files
from engine.ops import metrics_dir
from engine.ops.embedded_kafka import EMBEDDED, TansuBroker
from engine.ops.embedded_postgres import EmbeddedPostgres
from engine.ops.embedded_redis import EmbeddedRedis
from engine.ops.health import check_broker, check_database, check_pgvector, check_redis, mask_url, require
from engine.ops.migrate import upgrade_to_head
from engine.ops.services import port_in_use, tool_path
from engine.settings import Settings
from engine.web_hosts import check_web_settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
HEALTH_PATH = "/api/health"
WEB_START_TIMEOUT_S = 180.0  # the first production build downloads npm packages
WEB_GRACE_S = 10.0
WORKER_GRACE_S = 20.0
RELAY_GRACE_S = 20.0  # a batch waits up to 15 s for the broker's acks
SCHEDULER_GRACE_S = 10.0  # a pass ends within a transaction or two
# A child that dies after the app is ready is started again: the first time after RESTART_INITIAL_S,
# each further crash in a row doubles the wait (plus up to a quarter of it as jitter) up to
# RESTART_MAX_S; a child that ran RESTART_STABLE_S without dying starts again from the shortest wait.
RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 30.0
RESTART_STABLE_S = 60.0
# What a child of ours runs; the older module names stay so leftovers of an earlier version are found too.
_CHILD_MARKS = ("engine.ops.cli", "engine.cli", "engine.celery_app", "reflex")


def process_group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    members = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
    return members


def stop_process_group(process: subprocess.Popen, first_signal: int, grace: float) -> None:
    """Send `first_signal` to the group `process` leads, SIGKILL the group after `grace` s, then reap."""
    pgid = process.pid  # started with start_new_session=True, so it leads its own group
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, first_signal)
    deadline = time.monotonic() + grace
    while process_group_members(pgid):
        process.poll()
        if time.monotonic() > deadline:
            log.warning(
                "process group %s outlived %.0f s after signal %s; killing it", pgid, grace, first_signal
            )
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            break
        time.sleep(0.1)
    for proc in descendants:  # anything that left the group (setsid) but descends from it goes too
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)


def npm_registry(path: str) -> str:
    """What `npm config get registry` prints ('' without npm): Reflex otherwise probes a second registry."""
    npm = shutil.which("npm", path=path)
    if npm is None:
        return ""
    try:
        out = subprocess.run(
            [npm, "config", "get", "registry"], capture_output=True, text=True, timeout=30,
            env={**os.environ, "PATH": path},
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = out.stdout.strip().splitlines()
    return lines[-1].strip() if out.returncode == 0 and lines else ""


def child_env(settings: Settings, database_url: str, redis_url: str) -> dict[str, str]:
    """Environment of the worker and web processes: the venv's bin first, resolved URLs, no telemetry."""
    env = dict(os.environ)
    path = tool_path()
    env.update(
        PATH=path,
        REFLEX_TELEMETRY_ENABLED="false",
        PYTHONUNBUFFERED="1",
        FLOWLOOM_DATABASE_URL=database_url,
        FLOWLOOM_REDIS_URL=redis_url,
        FLOWLOOM_DATA_DIR=str(settings.resolved_data_dir),
        FLOWLOOM_HOST=settings.host,
        FLOWLOOM_PORT=str(settings.port),
    )
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    if settings.log_format == "json":
        env["REFLEX_LOG_JSON"] = "true"  # Reflex's and Granian's own lines as JSON too
    if not env.get("NPM_CONFIG_REGISTRY"):
        registry = npm_registry(path)
        if registry:
            env["NPM_CONFIG_REGISTRY"] = registry
    return env


def worker_command(settings: Settings) -> list[str]:
    """`flowloom worker` with the configured concurrency, run by this interpreter."""
    return [sys.executable, "-m", "engine.ops.cli", "worker", "--concurrency", str(settings.workers)]


def relay_command(settings: Settings) -> list[str]:
    """`flowloom relay` (the outbox to Kafka), run by this interpreter."""
    return [sys.executable, "-m", "engine.ops.cli", "relay"]


def kafka_triggers_command(settings: Settings) -> list[str]:
    """`flowloom kafka-triggers` (a run per message of each Kafka trigger), run by this interpreter."""
    return [sys.executable, "-m", "engine.ops.cli", "kafka-triggers"]


def scheduler_command(settings: Settings) -> list[str]:
    """`flowloom scheduler` (schedule triggers), run by this interpreter."""
    return [sys.executable, "-m", "engine.ops.cli", "scheduler"]


def web_command(settings: Settings) -> list[str]:
    """`reflex run` in production mode, frontend and backend on one port."""
    reflex = shutil.which("reflex", path=tool_path())
    if reflex is None:
        raise ConfigError(
            "reflex is not installed in this environment; run `python3 dev.py up` or `pip install -e .`"
        )
    port = str(settings.port)
    return [
        reflex, "run", "--env", "prod", "--single-port", "--backend-host", settings.host,
        "--frontend-port", port, "--backend-port", port,
    ]  # fmt: skip


def app_url(settings: Settings, path: str = "") -> str:
    """http://HOST:PORT + path, with a wildcard bind address replaced by loopback."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}{path}"


def start_services(
    settings: Settings, stack: ExitStack, *, stop_running: bool, redis: bool = True
) -> tuple[str, str]:
    """Resolve the database and Redis URLs, starting the embedded servers for empty settings.

    Servers started here are stopped when `stack` closes; already running ones only if `stop_running`.
    """
    data_dir = settings.resolved_data_dir
    database_url, redis_url = settings.database_url, settings.redis_url
    if not database_url:
        postgres = EmbeddedPostgres(data_dir / "postgres", settings.postgres_port)
        stack.callback(_stop_service, postgres, stop_running)
        database_url = postgres.start()
    if redis and not redis_url:
        embedded_redis = EmbeddedRedis(data_dir / "redis", settings.redis_port)
        stack.callback(_stop_service, embedded_redis, stop_running)
        redis_url = embedded_redis.start()
    return database_url, redis_url


def start_kafka(settings: Settings, stack: ExitStack) -> str:
    """Start the embedded Kafka-protocol broker (stopped when `stack` closes); its host:port."""
    broker = TansuBroker(settings.resolved_data_dir / "kafka.log", settings.kafka_port)
    stack.callback(broker.stop)
    bootstrap = broker.start()
    log.info("kafka: embedded broker at %s (memory storage)", bootstrap)
    return bootstrap


def _stop_service(service: EmbeddedPostgres | EmbeddedRedis, stop_running: bool) -> None:
    if service.started or stop_running:
        service.stop()


@contextmanager
def resolved_services(settings: Settings, redis: bool = True) -> Iterator[Settings]:
    """Settings whose URLs point at running services; embedded ones started here are stopped after."""
    with ExitStack() as stack:
        database_url, redis_url = start_services(settings, stack, stop_running=False, redis=redis)
        yield settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})


def restart_delay(crashes_in_a_row: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before starting a child again after its `crashes_in_a_row`-th crash in a row."""
    base = min(RESTART_MAX_S, RESTART_INITIAL_S * 2 ** max(0, crashes_in_a_row - 1))
    return min(RESTART_MAX_S, base + base * 0.25 * rng())


def describe_exit(returncode: int | None) -> str:
    """`exited with code 3` or `was killed by SIGKILL` (Popen reports a signal as a negative code)."""
    if returncode is not None and returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


@dataclass
class Child:
    """A supervised child process, how to start it again and how to stop it."""

    name: str
    process: subprocess.Popen
    stop_signal: int
    grace: float
    command: list[str]
    env: dict[str, str]
    started_at: float = 0.0  # time.monotonic() of the last start
    crashes_in_a_row: int = 0
    restarts: int = 0
    restart_at: float | None = None  # when a dead child is due to start again
    output: Path | None = None  # the file its output is appended to (None: ours)


class Supervisor:
    """Children that are started again when they die, after a growing wait (`restart_delay`), their
    process group cleared first (a Celery pool orphaned by its killed master goes with it).

    The loop of `flowloom up` (`Launcher`); the chaos suite runs its workers under it too, so its
    worker kills are survived the way a deployment survives them. `on_change` is called after a
    child was started or stopped (the launcher records the pids).
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self.children: list[Child] = []
        self._on_change = on_change or (lambda: None)

    def spawn(
        self, name: str, command: list[str], env: dict[str, str], stop_signal: int, grace: float,
        output: Path | None = None,
    ) -> Child:  # fmt: skip
        """Start `command` as the child `name`; `output`: a file its stdout and stderr go to."""
        log.info("starting %s: %s", name, " ".join(command))
        process = _popen(command, env, output)
        child = Child(name, process, stop_signal, grace, command, env, time.monotonic(), output=output)
        self.children.append(child)
        self._on_change()
        return child

    def look_after_all(self) -> None:
        """One round of the loop: every child that died is cleared, then started again when due."""
        for child in list(self.children):
            self.look_after(child)

    def look_after(self, child: Child) -> None:
        now = time.monotonic()
        if child.process.poll() is None:
            if child.crashes_in_a_row and now - child.started_at >= RESTART_STABLE_S:
                child.crashes_in_a_row = 0
            return
        if child.restart_at is None:
            child.crashes_in_a_row += 1
            delay = restart_delay(child.crashes_in_a_row)
            log.error(
                "%s (pid %s) %s after %.0f s; starting it again in %.1f s (crash %d in a row)",
                child.name, child.process.pid, describe_exit(child.process.returncode),
                now - child.started_at, delay, child.crashes_in_a_row,
            )  # fmt: skip
            # Its pool processes or other leftovers in its group go first, so they free ports and queues.
            stop_process_group(child.process, signal.SIGTERM, child.grace)
            child.restart_at = time.monotonic() + delay
            return
        if now < child.restart_at:
            return
        child.process = _popen(child.command, child.env, child.output)
        child.started_at, child.restart_at = time.monotonic(), None
        child.restarts += 1
        log.warning("restarted %s as pid %s (restart %d)", child.name, child.process.pid, child.restarts)
        self._on_change()

    def stop_all(self) -> None:
        """The children in reverse order of their start, each its stop signal, escalating to SIGKILL."""
        for child in reversed(self.children):
            log.info("stopping %s", child.name)
            stop_process_group(child.process, child.stop_signal, child.grace)
        self.children.clear()
        self._on_change()


class Launcher:
    """Runs Flowloom in the foreground until a signal arrives; a child that dies is started again.

    A child that dies before the web app answered is a start-up failure (a bad setting, a port in
    use): then everything stops with exit code 1 instead of starting it again and again.
    """

    def __init__(self, settings: Settings, announce: Callable[[str], None] = log.info) -> None:
        self.settings = settings
        self.announce = announce
        self.supervisor = Supervisor(on_change=self._record)
        self._stop = threading.Event()
        self._lock_file: IO[str] | None = None

    @property
    def children(self) -> list[Child]:
        return self.supervisor.children

    def request_stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        """Ask the supervisor loop to stop everything (the SIGINT/SIGTERM handler)."""
        log.info("received signal %s; stopping Flowloom", signum)
        self._stop.set()

    def run(self) -> int:
        """Start everything, supervise, stop everything; 0 after a signal, 1 if a child died while starting."""
        previous = {sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with ExitStack() as stack:
                check_web_settings(self.settings)  # a wide bind needs FLOWLOOM_ALLOWED_HOSTS; no "*" origins
                self._acquire_lock(stack)
                check_key_files(self.settings.resolved_data_dir)  # before anything reads a key
                database_url, redis_url = start_services(self.settings, stack, stop_running=True)
                log.info("database: %s", mask_url(database_url))
                log.info("redis: %s", mask_url(redis_url))
                if self.settings.broker_url:
                    log.info("celery broker: %s", mask_url(self.settings.broker_url))
                if self._stop.is_set():
                    return 0
                self._prepare(database_url, redis_url)
                if self._stop.is_set():
                    return 0
                # One fresh directory for every child's metrics, removed after they stopped (below).
                metrics_path = metrics_dir.fresh(metrics_dir.launcher_dir(self.settings))
                stack.callback(shutil.rmtree, metrics_path, True)
                stack.callback(self._stop_children)
                env = child_env(self.settings, database_url, redis_url)
                env[metrics_dir.MULTIPROC_ENV] = str(metrics_path)
                if self.settings.kafka_bootstrap_servers == EMBEDDED:
                    env["FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS"] = start_kafka(self.settings, stack)
                self._spawn("worker", worker_command(self.settings), env, signal.SIGTERM, WORKER_GRACE_S)
                if self.settings.kafka_bootstrap_servers:
                    self._spawn("relay", relay_command(self.settings), env, signal.SIGTERM, RELAY_GRACE_S)
                    self._spawn("kafka-triggers", kafka_triggers_command(self.settings), env, signal.SIGTERM,
                                RELAY_GRACE_S)  # fmt: skip
                self._spawn(
                    "scheduler", scheduler_command(self.settings), env, signal.SIGTERM, SCHEDULER_GRACE_S
                )
                self._spawn("web", web_command(self.settings), env, signal.SIGINT, WEB_GRACE_S)
                if not self._wait_for_web():
                    return 0 if self._stop.is_set() else 1
                self.announce(f"Flowloom is running at {app_url(self.settings, '/workflows')}")
                return self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _acquire_lock(self, stack: ExitStack) -> None:
        """One launcher per data directory; also stops children a killed launcher left behind."""
        data_dir = self.settings.resolved_data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = open(data_dir / "launcher.lock", "a+")  # held (and locked) until the stack closes
        stack.callback(lock.close)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(
                f"Flowloom is already running with data in {data_dir} (FLOWLOOM_DATA_DIR); "
                "stop it first or set FLOWLOOM_DATA_DIR to another directory"
            ) from exc
        lock.seek(0)
        _kill_leftovers(lock.read())
        self._lock_file = lock
        self._record()

    def _record(self) -> None:
        """Write our pid and the children's pids into the lock file."""
        if self._lock_file is None:
            return
        record = {"launcher": os.getpid(), "children": {c.name: c.process.pid for c in self.children}}
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(json.dumps(record))
        self._lock_file.flush()

    def _prepare(self, database_url: str, redis_url: str) -> None:
        """Clear errors before anything starts: database, pgvector, Redis, schema, web port."""
        require(check_database(database_url))
        require(check_pgvector(database_url))
        require(check_redis(redis_url))
        if self.settings.broker_url:
            require(check_broker(self.settings.broker_url))
        upgrade_to_head(database_url)
        if port_in_use(self.settings.port, httpx.URL(app_url(self.settings)).host):
            raise ConfigError(
                f"port {self.settings.port} is in use (FLOWLOOM_PORT); stop what listens there or choose another port"
            )

    def _spawn(
        self, name: str, command: list[str], env: dict[str, str], stop_signal: int, grace: float
    ) -> None:
        self.supervisor.spawn(name, command, env, stop_signal, grace)

    def _dead_child(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def _wait_for_web(self) -> bool:
        """Poll the health endpoint until it answers 200; False if stopped, a child died or it timed out."""
        url = app_url(self.settings, HEALTH_PATH)
        deadline = time.monotonic() + WEB_START_TIMEOUT_S
        last = "no answer"
        # The endpoint pings the workers, which takes a moment: allow it more than a bare request.
        with httpx.Client(trust_env=False, timeout=15.0) as client:
            while not self._stop.is_set():
                dead = self._dead_child()
                if dead is not None:
                    log.error(
                        "%s exited with code %s before the app was ready", dead.name, dead.process.returncode
                    )
                    return False
                try:
                    response = client.get(url)
                    if response.status_code == 200:
                        return True
                    last = f"HTTP {response.status_code}: {response.text[:300]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                if time.monotonic() > deadline:
                    log.error("%s did not answer 200 within %.0f s; last: %s", url, WEB_START_TIMEOUT_S, last)
                    return False
                self._stop.wait(0.5)
        return False

    def _supervise(self) -> int:
        """Until a signal: start each child that died again, after a growing wait (restart_delay)."""
        while not self._stop.wait(0.5):
            self.supervisor.look_after_all()
        return 0

    def _look_after(self, child: Child) -> None:
        self.supervisor.look_after(child)

    def _stop_children(self) -> None:
        """The web app first (SIGINT to its group), then the workers (SIGTERM), each escalating to SIGKILL."""
        self.supervisor.stop_all()


def _popen(command: list[str], env: dict[str, str], output: Path | None = None) -> subprocess.Popen:
    """Start a child in its own session (so its whole group can be stopped), stdin closed; its
    output goes to ours, or appended to the file `output`."""
    if output is None:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True
        )
    with open(output, "ab") as out:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _kill_leftovers(record_text: str) -> None:
    """Kill the process groups of children recorded by a launcher that died without stopping them."""
    try:
        children = json.loads(record_text).get("children", {})
    except (ValueError, AttributeError):
        return
    killed = []
    for name, pid in children.items():
        with contextlib.suppress(psutil.Error, OSError, ValueError):
            proc = psutil.Process(int(pid))
            cmdline = " ".join(proc.cmdline())
            ours = any(mark in cmdline for mark in _CHILD_MARKS)
            if ours and os.getpgid(proc.pid) == proc.pid:
                log.warning("stopping %s (pid %s) left behind by a previous launcher", name, pid)
                killed.extend([proc, *proc.children(recursive=True)])
                os.killpg(proc.pid, signal.SIGKILL)
    psutil.wait_procs(killed, timeout=10)  # so their ports are free before we check them

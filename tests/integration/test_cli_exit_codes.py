"""One `flowloom` command: --version, set-password, and exit codes that tell usage, configuration and
failure apart (engine/ops/exit_codes.py), run as a user runs them: subprocesses against real services."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import psycopg
import pytest
from sqlmodel import select

from engine.ops.exit_codes import ExitCode
from models.auth import User
from models.db import session_scope

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hello.yaml"
PASSWORD = "correct horse battery staple"


def flowloom(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """`flowloom ARGS` through the console script's entry point (app.cli), in a clean FLOWLOOM_ environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLOWLOOM_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
        input=stdin, env={**base, **(env or {})},
    )  # fmt: skip


def test_version_and_help_name_the_package_version_and_the_exit_codes() -> None:
    shown = flowloom("--version")
    assert shown.returncode == ExitCode.OK
    assert shown.stdout.strip() == f"flowloom {version('flowloom')}"
    helped = flowloom("--help")
    assert helped.returncode == ExitCode.OK
    assert "set-password" in helped.stdout
    assert "exit codes:" in helped.stdout and "3    configuration error" in helped.stdout


def test_a_wrong_command_line_is_a_usage_error_2() -> None:
    for args in (["no-such-command"], ["run", str(EXAMPLE), "--input", "x"], ["set-password"], ["--bogus"]):
        result = flowloom(*args)
        assert result.returncode == ExitCode.USAGE, (args, result.stderr)
        assert "usage: flowloom" in result.stderr and "Traceback" not in result.stderr
    assert "'x': expected KEY=VALUE" in flowloom("run", str(EXAMPLE), "--input", "x").stderr


def test_a_bad_setting_or_an_unreachable_service_is_a_configuration_error_3() -> None:
    bad_setting = flowloom("migrate", env={"FLOWLOOM_WORKERS": "0"})
    assert bad_setting.returncode == ExitCode.CONFIG
    assert "invalid setting: FLOWLOOM_WORKERS" in bad_setting.stderr

    unreachable = flowloom(
        "migrate", env={"FLOWLOOM_DATABASE_URL": "postgresql://flowloom:secret@127.0.0.1:1/x"}
    )
    assert unreachable.returncode == ExitCode.CONFIG
    assert "FLOWLOOM_DATABASE_URL" in unreachable.stderr and "secret" not in unreachable.stderr


def test_a_command_that_fails_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("nodes: [\n  {id: a\n")
    result = flowloom("validate", str(broken))
    assert result.returncode == ExitCode.FAILED
    assert "line 3" in result.stderr and "Traceback" not in result.stderr


def test_set_password_creates_the_local_admin_then_resets_it(clean_db: str) -> None:
    env = {"FLOWLOOM_DATABASE_URL": clean_db}

    created = flowloom("set-password", "Ops@Example.test", "--password-stdin", env=env, stdin=PASSWORD + "\n")
    assert created.returncode == ExitCode.OK, created.stderr
    assert created.stdout == "ops@example.test can now sign in with that password (role admin)\n"
    assert PASSWORD not in created.stdout + created.stderr
    with session_scope(clean_db) as session:
        first_hash = session.exec(select(User.password_hash).where(User.email == "ops@example.test")).one()

    again = flowloom("set-password", "ops@example.test", "--password-stdin", env=env, stdin=PASSWORD + "!\n")
    assert again.returncode == ExitCode.OK, again.stderr
    with session_scope(clean_db) as session:
        users = session.exec(select(User).where(User.email == "ops@example.test")).all()
    assert len(users) == 1 and users[0].password_hash not in (None, first_hash)


def test_set_password_refuses_a_short_password_1_and_an_unmigrated_database_3(pg_url: str) -> None:
    short = flowloom("set-password", "ops@example.test", "--password-stdin",
                     env={"FLOWLOOM_DATABASE_URL": pg_url}, stdin="short\n")  # fmt: skip
    assert short.returncode == ExitCode.FAILED
    assert "password: use at least 12 characters" in short.stderr

    admin_url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS cli_blank")
        conn.execute("CREATE DATABASE cli_blank")
    blank_url = pg_url.rsplit("/", 1)[0] + "/cli_blank"
    blank = flowloom("set-password", "ops@example.test", "--password-stdin",
                     env={"FLOWLOOM_DATABASE_URL": blank_url}, stdin=PASSWORD + "\n")  # fmt: skip
    assert blank.returncode == ExitCode.CONFIG
    assert "flowloom migrate" in blank.stderr


@pytest.mark.parametrize("typed", [("one password", "another one!!")])
def test_set_password_at_the_prompt_refuses_two_different_passwords(typed: tuple[str, str]) -> None:
    # getpass reads the terminal; without one it falls back to stdin (and warns), which is what runs here.
    result = flowloom("set-password", "ops@example.test", stdin="\n".join(typed) + "\n")
    assert result.returncode == ExitCode.FAILED
    assert "the passwords differ" in result.stderr

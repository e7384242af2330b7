"""Settings, the error hierarchy, and how configuration problems read (no services needed)."""

from __future__ import annotations

import argparse

import psycopg
import pytest

from engine.db_errors import db_error_reason
from engine.errors import ConfigError, DefinitionError, FlowloomError, Issue, StepError, ValidationError
from engine.ops import cli
from engine.ops.embedded_postgres import embedded_database_url
from engine.ops.embedded_redis import embedded_redis_url
from engine.ops.health import (
    CheckResult,
    check_database,
    check_kafka,
    check_redis,
    describe_redis_error,
    mask_url,
    require,
)
from engine.ops.services import find_free_port
from engine.settings import Settings, get_settings


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://bob:s3cret@db.example:5432/flow", "postgresql://bob:***@db.example:5432/flow"),
        (
            "postgresql+psycopg://bob:s3cret@db/flow?sslmode=require",
            "postgresql+psycopg://bob:***@db/flow?sslmode=require",
        ),
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://postgres@127.0.0.1:55432/flowloom", "postgresql://postgres@127.0.0.1:55432/flowloom"),
    ],
)
def test_mask_url_hides_only_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
            "\tIs the server running on that host and accepting TCP/IP connections?",
            "connection refused",
        ),
        (
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "nope" does not exist',
            'database "nope" does not exist',
        ),
        (
            "failed to resolve host 'db.invalid': [Errno -2] Name or service not known",
            "failed to resolve host 'db.invalid'",
        ),
    ],
)
def test_db_error_reason_keeps_only_the_reason(message: str, reason: str) -> None:
    assert db_error_reason(psycopg.OperationalError(message)) == reason


def test_describe_redis_error_keeps_only_the_reason() -> None:
    assert (
        describe_redis_error(OSError("Error 111 connecting to 127.0.0.1:1. Connection refused."))
        == "connection refused"
    )


def test_unreachable_database_names_the_setting_and_masks_the_password() -> None:
    url = f"postgresql://bob:s3cret@127.0.0.1:{find_free_port()}/flow"
    result = check_database(url)
    assert not result.ok
    assert "FLOWLOOM_DATABASE_URL" in result.detail and "connection refused" in result.detail
    assert "s3cret" not in result.detail and "bob:***@" in result.detail
    assert "FLOWLOOM_DATABASE_URL" in result.fix


@pytest.mark.parametrize("url", ["", "mysql://a:b@host/db", "not a url"])
def test_a_missing_or_non_postgres_database_url_is_refused_before_connecting(url: str) -> None:
    result = check_database(url)
    assert not result.ok and "FLOWLOOM_DATABASE_URL" in result.detail


def test_unreachable_redis_names_the_setting() -> None:
    result = check_redis(f"redis://127.0.0.1:{find_free_port()}/0")
    assert not result.ok and "FLOWLOOM_REDIS_URL" in result.detail and "FLOWLOOM_REDIS_URL" in result.fix


def test_kafka_not_configured_is_ok() -> None:
    assert check_kafka("") == CheckResult("kafka", True, "not configured")


def test_require_turns_a_failed_check_into_one_config_error_line() -> None:
    with pytest.raises(ConfigError) as info:
        require(CheckResult("redis", False, "cannot connect (FLOWLOOM_REDIS_URL)", "start Redis"))
    assert str(info.value) == "cannot connect (FLOWLOOM_REDIS_URL); start Redis"
    assert "\n" not in str(info.value)


def test_doctor_lines_show_status_name_detail_and_fix() -> None:
    assert cli.format_check(CheckResult("redis", True, "Redis 7")) == "ok   redis      Redis 7"
    assert (
        cli.format_check(CheckResult("redis", False, "down", "start it"))
        == "FAIL redis      down -> start it"
    )


def test_settings_read_flowloom_variables(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(tmp_path))  # no embedded passwords generated there yet
    monkeypatch.setenv("FLOWLOOM_WORKERS", "3")
    monkeypatch.setenv("FLOWLOOM_POSTGRES_PORT", "6000")
    monkeypatch.setenv("FLOWLOOM_REDIS_PORT", "6001")
    settings = Settings(_env_file=None)
    assert settings.workers == 3
    assert embedded_database_url(settings) == "postgresql://postgres@127.0.0.1:6000/flowloom"
    assert embedded_redis_url(settings) == "redis://127.0.0.1:6001/0"


def test_a_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOWLOOM_WORKERS", "0")
    get_settings.cache_clear()
    try:
        assert cli.main(["doctor"]) == 3  # a configuration error
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip()
    assert err.startswith("flowloom: invalid setting: FLOWLOOM_WORKERS:")
    assert "\n" not in err and "Traceback" not in err


def test_a_flowloom_error_in_any_command_is_one_line_exit_3_for_configuration_else_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(args: argparse.Namespace) -> int:
        raise ConfigError("cannot reach it (FLOWLOOM_SOMETHING)")

    def refused(args: argparse.Namespace) -> int:
        raise FlowloomError("that workflow does not exist")

    monkeypatch.setitem(cli.COMMANDS, "boom", cli.Command("fails", lambda parser: None, boom))
    monkeypatch.setitem(cli.COMMANDS, "refused", cli.Command("fails", lambda parser: None, refused))
    assert cli.main(["boom"]) == 3
    assert capsys.readouterr().err == "flowloom: cannot reach it (FLOWLOOM_SOMETHING)\n"
    assert cli.main(["refused"]) == 1
    assert capsys.readouterr().err == "flowloom: that workflow does not exist\n"


def test_the_cli_offers_up_worker_migrate_and_doctor() -> None:
    assert {"up", "worker", "migrate", "doctor"} <= set(cli.COMMANDS)
    args = cli.build_parser().parse_args(["worker", "--concurrency", "3"])
    assert args.concurrency == 3 and args.handler is cli.run_worker


def test_definition_error_says_where() -> None:
    error = DefinitionError("unknown key 'x'", path="flow.yaml", line=4, node_id="fetch")
    assert str(error) == "node \"fetch\", flow.yaml, line 4: unknown key 'x'"


def test_validation_error_lists_every_issue() -> None:
    issues = [Issue("missing url", node_id="fetch", field="url"), Issue("unused", severity="warning")]
    assert str(ValidationError(issues)) == 'error: node "fetch": url: missing url; warning: unused'


def test_step_error_carries_retryability_and_node() -> None:
    error = StepError("timeout", retryable=False, node_id="fetch")
    assert not error.retryable and str(error) == 'node "fetch": timeout'

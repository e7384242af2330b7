"""The `flowloom` command: up, worker, relay, scheduler, migrate, doctor, validate, run (a function pair per subcommand)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, NamedTuple

import pydantic

from engine import logs
from engine.errors import ConfigError, FlowloomError, user_message
from engine.ops import metrics_dir
from engine.ops.cli_kafka_triggers import configure_kafka_triggers, run_kafka_triggers
from engine.ops.cli_relay import configure_relay, run_relay
from engine.ops.cli_scheduler import configure_scheduler, run_scheduler
from engine.ops.cli_web import configure_web, run_web
from engine.ops.cli_workflows import configure_run, configure_validate, run_run, run_validate
from engine.ops.exit_codes import HELP as EXIT_CODES_HELP
from engine.ops.exit_codes import ExitCode
from engine.settings import Settings, get_settings

if TYPE_CHECKING:
    from engine.ops.health import CheckResult

# Subcommand handlers import what they use when they run (allowed by tests/unit/test_function_imports.py):
# together those modules load Alembic, Celery, psycopg and every node plug-in, which would make
# `flowloom --help` take 4 s instead of 0.5 s. No engine module reads the settings at import time.


class Command(NamedTuple):
    """A subcommand: its help line, how it adds its arguments, and what it runs (returns the exit code)."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]


def settings_error(exc: pydantic.ValidationError) -> ConfigError:
    """One line naming each bad FLOWLOOM_* variable."""
    problems = "; ".join(
        f"FLOWLOOM_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
    )
    return ConfigError(f"invalid setting: {problems}")


def load_settings() -> Settings:
    """The settings, with a bad FLOWLOOM_* value reported as a ConfigError."""
    try:
        return get_settings()
    except pydantic.ValidationError as exc:
        raise settings_error(exc) from exc


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """For subcommands that take no arguments."""


def positive_int(text: str) -> int:
    """An argument that must be a whole number of at least 1 (else a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def configure_up(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers", type=positive_int, default=None, metavar="N",
        help="worker processes of the Celery worker (default FLOWLOOM_WORKERS)",
    )  # fmt: skip


def run_up(args: argparse.Namespace) -> int:
    """Run everything in the foreground until Ctrl-C; a child that dies is started again."""
    from engine.ops.launcher import Launcher

    settings = load_settings()
    if getattr(args, "workers", None) is not None:
        settings = settings.model_copy(update={"workers": args.workers})
    return Launcher(settings, announce=lambda line: print(line, flush=True)).run()


def configure_worker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency", type=int, default=None, help="worker processes (default FLOWLOOM_WORKERS)"
    )
    parser.add_argument("--loglevel", default="INFO", help="Celery log level")


def run_worker(args: argparse.Namespace) -> int:
    """Build the worker's Celery app and run it in this process, on the engine's queue (FLOWLOOM_QUEUE)."""
    from engine.key_files import check_key_files
    from engine.ops.embedded_urls import use_embedded_services
    from engine.ops.health import check_broker, check_redis, require

    settings = load_settings()
    check_key_files(settings.resolved_data_dir)
    own_metrics_dir = metrics_dir.worker_dir(settings)  # before engine.tasks imports prometheus_client
    from engine.tasks import create_worker_app

    # Empty URLs mean the embedded services (started by `flowloom up`); the pool's processes inherit
    # the environment, and the settings are read again from it.
    use_embedded_services(settings)
    settings = load_settings()
    require(check_redis(settings.redis_url))
    if settings.broker_url:
        require(check_broker(settings.broker_url))  # else Celery would retry connecting in silence
    app = create_worker_app(settings.redis_url)
    # A unique node name per worker, so pings and `celery inspect` tell workers on one host apart.
    argv = [
        "worker", "--loglevel", args.loglevel, "--concurrency", str(args.concurrency or settings.workers),
        "--pool", "prefork", "-Q", settings.queue, "--hostname", f"flowloom{os.getpid()}@{socket.gethostname()}",
    ]  # fmt: skip
    try:
        return app.start(argv) or 0  # Celery's own `worker` command, with this app
    finally:
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


def run_migrate(args: argparse.Namespace) -> int:
    """Migrate the database (the embedded one if FLOWLOOM_DATABASE_URL is empty) to the newest revision."""
    from engine.ops.launcher import resolved_services
    from engine.ops.migrate import upgrade_to_head

    with resolved_services(load_settings(), redis=False) as resolved:
        revision = upgrade_to_head(resolved.database_url)
    print(f"database is at revision {revision}")
    return 0


def format_check(result: CheckResult) -> str:
    """`ok   name  detail` or `FAIL name  detail -> fix`."""
    line = f"{'ok' if result.ok else 'FAIL':<4} {result.name:<10} {result.detail}"
    return line if result.ok or not result.fix else f"{line} -> {result.fix}"


def run_doctor(args: argparse.Namespace) -> int:
    """Check every service and tool; exit 1 if any check failed."""
    from engine.ops.health import run_checks
    from engine.ops.launcher import resolved_services
    from engine.ops.migrate import check_schema

    with resolved_services(load_settings()) as settings:
        results = run_checks(settings)
        if results[0].ok:
            results.insert(2, check_schema(settings.database_url))
    for result in results:
        print(format_check(result))
    return 0 if all(r.ok for r in results) else 1


COMMANDS: dict[str, Command] = {
    "validate": Command(
        "check a workflow definition and print its execution plan", configure_validate, run_validate
    ),
    "run": Command("run a workflow definition and print each step as it finishes", configure_run, run_run),
    "up": Command(
        "start Flowloom (database, Redis, workers, web app) in the foreground", configure_up, run_up
    ),
    "web": Command("run the web app alone (what `up` starts; no migration)", configure_web, run_web),
    "worker": Command("run a Celery worker (what `up` starts)", configure_worker, run_worker),
    "migrate": Command("migrate the database to the newest schema", _no_arguments, run_migrate),
    "relay": Command(
        "publish the event outbox to Kafka (what `up` starts with Kafka set)", configure_relay, run_relay
    ),
    "kafka-triggers": Command(
        "start a run per message of each Kafka trigger (what `up` starts with Kafka set)",
        configure_kafka_triggers,
        run_kafka_triggers,
    ),
    "scheduler": Command(
        "fire schedule triggers' ticks (what `up` starts)", configure_scheduler, run_scheduler
    ),
    "doctor": Command(
        "check the database, pgvector, Redis, workers, JS runtime, OpenVINO, Kafka", _no_arguments, run_doctor
    ),
}


def package_version() -> str:
    """The installed flowloom distribution's version."""
    try:
        return version("flowloom")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser(commands: dict[str, Command] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser with one subparser per entry of `commands`; --help lists the exit codes."""
    parser = argparse.ArgumentParser(
        prog="flowloom",
        description="Flowloom: low-code AI-agent workflows",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"flowloom {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in commands.items():
        sub_parser = sub.add_parser(name, help=command.help, description=command.help)
        command.configure(sub_parser)
        sub_parser.set_defaults(handler=command.handler)
    return parser


def _log_settings() -> tuple[str, str]:
    """FLOWLOOM_LOG_LEVEL and FLOWLOOM_LOG_FORMAT; the defaults when the settings do not parse (the
    command then reports that itself)."""
    try:
        settings = get_settings()
    except pydantic.ValidationError:
        return "INFO", "json"
    return settings.log_level, settings.log_format


def main(argv: list[str] | None = None, commands: dict[str, Command] = COMMANDS) -> int:
    """Run one of `commands` (app.cli adds the app's own); errors become one line on stderr and an
    ExitCode: 2 for a wrong command line (argparse), 3 for a setting or service problem, else 1."""
    args = build_parser(commands).parse_args(argv)
    level, fmt = _log_settings()
    logs.configure(level="DEBUG" if args.verbose else level, fmt=fmt, process_role=args.command)
    if not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return args.handler(args)
    except pydantic.ValidationError as exc:
        if exc.title != "Settings":
            raise
        print(f"flowloom: {settings_error(exc)}", file=sys.stderr)
        return ExitCode.CONFIG
    except ConfigError as exc:
        print(f"flowloom: {user_message(exc)}", file=sys.stderr)
        return ExitCode.CONFIG
    except FlowloomError as exc:
        print(f"flowloom: {user_message(exc)}", file=sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

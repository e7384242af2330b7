"""`flowloom validate FILE` and `flowloom run FILE --input k=v`: workflows from the command line."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, ValidationError
from engine.settings import Settings, get_settings

# Like engine/ops/cli.py, each command imports what it uses when it runs, so the CLI starts fast.
_MARK = {"succeeded": "ok  ", "failed": "FAIL", "skipped": "skip", "cancelled": "stop", "waiting": "wait"}


def configure_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="workflow definition (.json, .yaml or .yml)")


def run_validate(args: argparse.Namespace) -> int:
    """Print every issue and the execution plan; exit 1 if there is an error."""
    from engine.parse import parse_file
    from engine.validate import validate

    report = validate(parse_file(args.file))
    for issue in report.issues:
        print(issue)
    if report.plan is not None:
        print(report.plan)
    print(f"{args.file}: {'valid' if report.ok else 'invalid'} ({len(report.issues)} issue(s))")
    return 0 if report.ok else 1


def configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="workflow definition (.json, .yaml or .yml)")
    parser.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        type=key_value,
        metavar="KEY=VALUE",
        help="a run input; VALUE is read as JSON when it parses, else as text",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="give up waiting after this many seconds")


def key_value(pair: str) -> str:
    """An --input argument as given, refused (a usage error, exit 2) unless it reads KEY=VALUE."""
    key, sep, _ = pair.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{pair!r}: expected KEY=VALUE")
    return pair


def parse_inputs(pairs: list[str]) -> dict[str, Any]:
    """`k=v` pairs (checked by `key_value`) to a dict; values that parse as JSON keep their type."""
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            inputs[key] = json.loads(value)
        except json.JSONDecodeError:
            inputs[key] = value
    return inputs


def run_run(args: argparse.Namespace) -> int:
    """Run a workflow on the workers, print each step as it finishes; exit 1 unless it succeeded."""
    from engine.ops.launcher import resolved_services
    from engine.parse import parse_file
    from engine.validate import ensure_valid

    defn = parse_file(args.file)
    ensure_valid(defn)
    inputs = parse_inputs(args.input)
    with resolved_services(get_settings()) as settings:
        _use(settings)
        from engine.ops.migrate import upgrade_to_head

        upgrade_to_head(settings.database_url)
        with _worker_available(settings):
            return _run_and_watch(defn, inputs, args.timeout)


def _use(settings: Settings) -> None:
    os.environ["FLOWLOOM_DATABASE_URL"] = settings.database_url
    os.environ["FLOWLOOM_REDIS_URL"] = settings.redis_url
    get_settings.cache_clear()


@contextmanager
def _worker_available(settings: Settings) -> Iterator[None]:
    """Use the running workers, or start one for the length of this run."""
    from engine.ops.health import check_workers

    if check_workers(settings.redis_url, timeout=1.0).ok:
        yield
        return
    print("no worker is running; starting one for this run", file=sys.stderr)
    worker = subprocess.Popen(
        [sys.executable, "-m", "engine.ops.cli", "worker", "--concurrency", "2"],
        env=os.environ.copy(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not check_workers(settings.redis_url, timeout=1.0).ok:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise ConfigError("could not start a worker; run `flowloom worker` and check its output")
        yield
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def cli_user() -> str:
    """How runs started here record who started them: "cli:<OS user>" ("cli" when it is unknown)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (containers)
        return "cli"
    return f"cli:{name}"[:120]


def _run_and_watch(defn: Any, inputs: dict[str, Any], timeout: float) -> int:
    from engine.runs import get_run, start_run

    try:
        run_id = start_run(defn, inputs, started_by=cli_user(), started_via="cli")
    except ValidationError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 1
    print(f"run {run_id} started")
    shown: set[tuple[str, int, str]] = set()
    deadline = time.monotonic() + timeout
    while True:
        view = get_run(run_id)
        if view is None:
            print(f"run {run_id} is gone (its workflow was deleted)", file=sys.stderr)
            return 1
        for step in view.steps:
            key = (step["node_id"], step["visit"], step["status"])
            if step["status"] in _MARK and key not in shown:
                shown.add(key)
                ms = (step["metrics"] or {}).get("duration_ms")
                took = f" {ms:.0f} ms" if isinstance(ms, int | float) else ""
                error = f": {step['error']}" if step["status"] == "failed" else ""
                print(
                    f"{_MARK[step['status']]} {step['node_id']} ({step['node_type']}){took}{error}",
                    flush=True,
                )
        if view.status not in ("running", "queued"):  # queued: waiting for a slot
            break
        if time.monotonic() > deadline:
            print(f"gave up waiting after {timeout:g}s; run {run_id} is still {view.status}", file=sys.stderr)
            return 1
        time.sleep(0.1)
    if view.status == "succeeded":
        print(json.dumps(view.outputs, indent=2, default=str))
        return 0
    print(f"run {view.status}: {view.error}", file=sys.stderr)
    return 1

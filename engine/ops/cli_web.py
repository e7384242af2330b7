"""`flowloom web`: the web app alone (what `flowloom up` starts), for deployments that run each tier apart.

It does not start services or migrate (run `flowloom migrate` once per release, e.g. as a one-shot
job); the process becomes `reflex run --env prod --single-port`, so a container's stop signal
reaches Reflex directly (send SIGINT or SIGTERM).
"""

from __future__ import annotations

import argparse
import os

from engine.settings import get_settings

# Like engine/ops/cli.py, the command imports what it uses when it runs, so the CLI starts fast.


def configure_web(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", type=int, default=None, help="port of the app, frontend and API (default FLOWLOOM_PORT)"
    )


def run_web(args: argparse.Namespace) -> int:
    """Replace this process by the production web server; only returns (by raising) on a bad setting."""
    from engine.ops.embedded_postgres import embedded_database_url
    from engine.ops.embedded_redis import embedded_redis_url
    from engine.ops.launcher import REPO_ROOT, child_env, web_command
    from engine.web_hosts import check_web_settings

    settings = get_settings()
    if args.port is not None:
        settings = settings.model_copy(update={"port": args.port})
    check_web_settings(settings)  # a wide bind needs FLOWLOOM_ALLOWED_HOSTS; no "*" origins
    database_url = settings.database_url or embedded_database_url(settings)
    redis_url = settings.redis_url or embedded_redis_url(settings)
    command = web_command(settings)
    env = child_env(settings, database_url, redis_url)
    os.chdir(REPO_ROOT)  # rxconfig.py lives there
    os.execve(command[0], command, env)
    return 0  # not reached: execve only returns by raising

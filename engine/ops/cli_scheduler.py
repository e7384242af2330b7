"""`flowloom scheduler`: fire the ticks of schedule triggers (what `flowloom up` starts).

Several schedulers may run against one database (on several hosts, or a standby): each tick still
starts exactly one run (engine/schedule_loop.py says why).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from engine.errors import ConfigError
from engine.settings import get_settings

log = logging.getLogger(__name__)
# Like engine/ops/cli.py, the command imports what it uses when it runs, so the CLI starts fast.


def configure_scheduler(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval", type=float, default=None,
        help="seconds between looks for due ticks (default FLOWLOOM_SCHEDULE_POLL_S, 1 s)",
    )  # fmt: skip


def run_scheduler(args: argparse.Namespace) -> int:
    """Fire due ticks until SIGTERM or Ctrl-C."""
    from engine.ops.embedded_urls import use_embedded_services
    from engine.schedule_loop import SchedulerLoop

    settings = get_settings()
    # Empty URLs mean the embedded services (started by `flowloom up`); the runs' first steps go
    # to the broker through the settings, so they are resolved into the environment.
    use_embedded_services(settings)
    settings = get_settings()
    interval = args.interval if args.interval is not None else settings.schedule_poll_s
    if interval <= 0:
        raise ConfigError(f"--interval must be above 0 seconds, not {interval}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    loop = SchedulerLoop(settings.database_url, poll_interval_s=interval)
    log.info("scheduler: firing schedule triggers, looking every %.3g s", interval)
    loop.run(stop)
    totals = loop.totals
    log.info("scheduler: stopped after %d runs started, %d failed ticks, %d skipped ticks",
             totals.fired, totals.failed, totals.skipped)  # fmt: skip
    return 0

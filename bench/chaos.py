"""Survived faults: the engine under Redis and PostgreSQL restarts, load, and killed workers.

Every scenario runs on services of its own (an embedded PostgreSQL and a `redis-server --save ''`
it may kill and restart, never the machine's) and real `flowloom worker` processes, and prints
what it did and what it counted:

- redis restart: Redis is killed (its queue is lost: no persistence) and restarted while runs are
  queued and running;
- postgres restart: PostgreSQL is stopped and started again while runs are in flight; meanwhile
  the API answers 503 problem+json;
- load: N concurrent runs of a 5-step workflow on 4 worker processes (runs/s, p95 run latency);
- worker kills: a worker's main process is SIGKILLed again and again mid-runs, and started again
  by the supervisor `flowloom up` runs (engine.ops.launcher.Supervisor);
- broker away: runs started while Redis is killed (refuses) or frozen (SIGSTOP: hangs) return
  at once, recorded with their first step unsent, and run when it is back.

The 5-step workflow is start -> effect1 (tool.sql) -> work (tool.python sleep) -> effect2
(tool.sql) -> end. Each effect step records a delivery (a plain INSERT, so every execution counts)
and applies its effect keyed by run and node (INSERT ... ON CONFLICT DO NOTHING): deliveries
count at-least-once executions, effects what happened once. A duplicate step is a (run, node)
with more than one step row or more than one `workflow.step.completed` event.

Run: `python bench/chaos.py [--runs 1000] [--only load,redis,postgres,kill,broker-away]`.
tests/chaos/ runs the same scenarios with small sizes and asserts the counts. The services are in
bench/chaos_services.py, the workflow, counts and scenarios in bench/chaos_scenarios.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/openvino.py would shadow the openvino package: import from the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from bench.chaos_scenarios import (  # noqa: E402
    Tally,
    broker_away,
    load,
    postgres_restart,
    redis_restart,
    start_runs,
    worker_kills,
)
from bench.chaos_services import OwnRedis, Workers, services  # noqa: E402


def _both_broker_outages(pg_url: str, own_redis: OwnRedis, runs: int) -> Tally:
    killed = broker_away(pg_url, own_redis, lambda: start_runs(1, 0.05)[0], max(1, runs), "killed")
    print("\n".join(killed.lines()) + "\n", flush=True)
    return broker_away(pg_url, own_redis, lambda: start_runs(1, 0.05)[0], max(1, runs), "frozen")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="concurrent runs of the load scenario")
    parser.add_argument("--fault-runs", type=int, default=100, help="runs in flight in each fault scenario")
    parser.add_argument("--only", default="load,redis,postgres,kill,broker-away")
    args = parser.parse_args()
    only = set(args.only.split(","))
    # Sends that fail while Redis is down are expected (the sweeper resends them): no tracebacks.
    logging.getLogger("flowloom.dispatch").setLevel(logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="flowloom-chaos-"))
    with services(tmp) as (own_pg, own_redis, kafka):
        workers = Workers(own_pg.url, own_redis.url, tmp)
        try:
            workers.start(4)
            if kafka is not None:  # every event published: the counts say how many the relay marked
                workers.start_relay(kafka.bootstrap)
            scenarios: dict[str, Callable[[], Tally]] = {
                "load": lambda: load(own_pg.url, args.runs),
                "redis": lambda: redis_restart(own_pg.url, own_redis, args.fault_runs),
                "postgres": lambda: postgres_restart(own_pg, args.fault_runs),
                "kill": lambda: worker_kills(own_pg.url, workers, args.fault_runs, kills=5),
                "broker-away": lambda: _both_broker_outages(own_pg.url, own_redis, args.fault_runs // 5),
            }
            for name, scenario in scenarios.items():
                if name in only:
                    print("\n".join(scenario().lines()) + "\n", flush=True)
        finally:
            workers.stop()


if __name__ == "__main__":
    main()

"""Engine overhead vs raw Celery, measured in one run on the same broker and worker.

Prints: median per-step time of a 50-step chain of no-op steps vs the median round trip of a raw
Celery no-op task (and vs one hop of a raw Celery chain), and steps/s of 200 concurrent 5-step
runs vs raw Celery tasks/s. Run: `python bench/engine.py` (starts its own embedded PostgreSQL;
uses the machine's Redis when reachable, else an embedded one).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/openvino.py would shadow the openvino package: import from the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from engine.ops.embedded_postgres import EmbeddedPostgres  # noqa: E402
from engine.ops.embedded_redis import EmbeddedRedis  # noqa: E402
from engine.ops.services import find_free_port, redis_reachable  # noqa: E402
from engine.settings import get_settings  # noqa: E402

CHAIN = 50
RUNS = 200
RUN_STEPS = 5
RAW_TASKS = 1000


def _definition(n_middle: int) -> dict:
    ids = ["start"] + [f"s{i}" for i in range(n_middle)] + ["end"]
    nodes = [{"id": "start", "type": "start"}]
    nodes += [
        {"id": f"s{i}", "type": "tool.python", "config": {"tool": "echo", "args": {"value": i}}}
        for i in range(n_middle)
    ]
    nodes.append({"id": "end", "type": "end"})
    edges = [
        {"id": f"e{i}", "source": a, "target": b} for i, (a, b) in enumerate(zip(ids, ids[1:], strict=False))
    ]
    return {"id": "bench", "name": "bench", "nodes": nodes, "edges": edges}


def _wait(pred, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark did not finish")
        time.sleep(0.01)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="flowloom-bench-"))
    tmp.chmod(0o755)  # the embedded PostgreSQL runs as its own user when we are root
    pg = EmbeddedPostgres(tmp / "pg", find_free_port())
    pg_url = pg.start()
    red = None
    if redis_reachable("redis://127.0.0.1:6379/9"):
        redis_url = "redis://127.0.0.1:6379/9"
    else:
        red = EmbeddedRedis(tmp / "redis", find_free_port())
        redis_url = red.start()
    redis.Redis.from_url(redis_url).flushdb()
    os.environ.update(FLOWLOOM_DATABASE_URL=pg_url, FLOWLOOM_REDIS_URL=redis_url)
    get_settings.cache_clear()
    from engine.ops.migrate import upgrade_to_head

    upgrade_to_head(pg_url)
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "2"))
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.worker_app",
            "worker",
            "--loglevel",
            "WARNING",
            "--concurrency",
            str(concurrency),
            "--pool",
            "prefork",
            "-Q",
            "flowloom",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    try:
        _run(pg_url, redis_url, concurrency)
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)
        pg.stop()
        if red is not None:
            red.stop()


def _run(pg_url: str, redis_url: str, concurrency: int) -> None:
    from engine.celery_app import current_celery
    from engine.parse import parse_dict
    from engine.runs import get_run, start_run
    from models.db import get_engine

    app = current_celery()
    r = redis.Redis.from_url(redis_url)
    _wait(lambda: bool(app.control.ping(timeout=0.5)), 60)

    # Baseline 1: raw Celery no-op round trip (send, run, result back), median of 200.
    for _ in range(20):
        app.send_task("flowloom.ping").get(timeout=10)
    rtts = []
    for _ in range(200):
        t0 = time.perf_counter()
        app.send_task("flowloom.ping").get(timeout=10)
        rtts.append((time.perf_counter() - t0) * 1000)
    raw_rtt = statistics.median(rtts)

    # Baseline 2: one hop of a raw Celery chain (each task sends the next).
    key = f"hop:{uuid.uuid4()}"
    app.send_task("bench.hop", args=[CHAIN, key])
    _wait(lambda: r.llen(key) == CHAIN + 1)
    times = [float(x) for x in r.lrange(key, 0, -1)]
    raw_hop = statistics.median([(b - a) * 1000 for a, b in zip(times, times[1:], strict=False)])

    # Engine: a 50-step chain of no-op steps; per-step time from consecutive step finish times.
    defn = parse_dict(_definition(CHAIN - 2))
    wait_run = start_run(defn, {})  # warm-up (imports, caches, connection pools)
    _wait(lambda: get_run(wait_run).status != "running")
    per_step = []
    for _ in range(3):
        run_id = start_run(defn, {})
        _wait(lambda rid=run_id: get_run(rid).status != "running")
        assert get_run(run_id).status == "succeeded", get_run(run_id).error
        with get_engine(pg_url).connect() as conn:
            fin = [
                row[0]
                for row in conn.execute(
                    text("SELECT finished_at FROM step_runs WHERE run_id = :r ORDER BY finished_at"),
                    {"r": run_id},
                )
            ]
        per_step += [(b - a).total_seconds() * 1000 for a, b in zip(fin, fin[1:], strict=False)]
    engine_step = statistics.median(per_step)

    # Throughput: raw Celery tasks/s vs engine steps/s for 200 concurrent 5-step runs.
    key = f"noop:{uuid.uuid4()}"
    t0 = time.perf_counter()
    for _ in range(RAW_TASKS):
        app.send_task("bench.noop", args=[key])
    _wait(lambda: int(r.get(key) or 0) >= RAW_TASKS)
    raw_tps = RAW_TASKS / (time.perf_counter() - t0)

    defn5 = parse_dict(_definition(RUN_STEPS - 2))
    t0 = time.perf_counter()
    run_ids = [start_run(defn5, {}) for _ in range(RUNS)]
    with get_engine(pg_url).connect() as conn:
        _wait(
            lambda: (
                conn.execute(
                    text(
                        "SELECT count(*) FROM runs WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'running'"
                    ),
                    {"ids": run_ids},
                ).scalar()
                == 0
            )
        )
        failed = conn.execute(
            text("SELECT count(*) FROM runs WHERE id = ANY(CAST(:ids AS uuid[])) AND status <> 'succeeded'"),
            {"ids": run_ids},
        ).scalar()
    engine_sps = RUNS * RUN_STEPS / (time.perf_counter() - t0)

    inline = get_settings().inline_steps
    print(
        f"worker processes: {concurrency}, broker: {redis_url.split('@')[-1]}, CPU cores: {os.cpu_count()}, "
        f"FLOWLOOM_INLINE_STEPS={inline}"
    )
    print(f"raw Celery no-op round trip (median of 200):     {raw_rtt:7.2f} ms")
    print(f"raw Celery chain hop (median of {CHAIN}):             {raw_hop:7.2f} ms")
    print(f"engine step in a {CHAIN}-step chain (median):        {engine_step:7.2f} ms")
    print(f"  overhead ratio vs raw round trip:              {engine_step / raw_rtt:7.2f}x")
    print(f"  overhead ratio vs raw chain hop:               {engine_step / raw_hop:7.2f}x")
    print(f"raw Celery no-op tasks/s ({RAW_TASKS} tasks):          {raw_tps:7.0f}")
    print(
        f"engine steps/s ({RUNS} concurrent {RUN_STEPS}-step runs):  {engine_sps:7.0f}  (failed runs: {failed})"
    )
    print(f"  throughput ratio engine/raw:                   {engine_sps / raw_tps:7.2f}")


if __name__ == "__main__":
    main()

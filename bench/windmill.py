"""Windmill's benchmark harness and wide fan-out/fan-in on Flowloom, each beside raw Celery in one run.

Windmill's public harness times a flow of 40 sequential tasks of ~10 ms each (the work itself is
0.40 s); its table: Hatchet 1.22 s, Windmill 2.09 s, Temporal 2.97 s, Prefect 4.87 s. Here the 40
steps are `tool.python` steps calling the `sleep` tool (10 ms) or `echo` (the 0 ms variant), started
by POST /api/runs on the API served by granian, on 2 worker processes; the total is from the first
step's queued_at to the last step's finished_at (both written by the engine in PostgreSQL), and the
baseline is a raw Celery chain of 40 tasks doing the same sleep on the same workers and broker.

The fan-out/fan-in sections run start -> N echo steps -> merge (all) -> end and compare the N
branch steps' throughput with N raw Celery no-op tasks sent at once to the same workers; the worker
processes' resident memory is sampled during the run (peak minus before). The run-start section
times POST /api/runs to the first step running (its started_at), p50 and p95, one run at a time.

Run: `python bench/windmill.py` (its own embedded PostgreSQL and Redis; BENCH_REDIS_URL=redis://...
uses that Redis instead and flushes its database; BENCH_CONCURRENCY sets the worker processes,
BENCH_REPEATS the chain runs, BENCH_FANOUTS the fan-out widths, e.g. 300,2000, BENCH_STARTS the
runs of the run-start section).
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# bench/openvino.py would shadow the openvino package: import from the repository root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.event_setup import operator_key, save_workflow, serve_api, start_worker, stop_process  # noqa: E402
from engine import run_events  # noqa: E402
from engine.ops.embedded_postgres import EmbeddedPostgres  # noqa: E402
from engine.ops.embedded_redis import EmbeddedRedis  # noqa: E402
from engine.ops.migrate import upgrade_to_head  # noqa: E402
from engine.ops.services import find_free_port  # noqa: E402
from engine.settings import get_settings  # noqa: E402
from models.db import get_engine  # noqa: E402

CHAIN = 40
WORK_S = 0.010
STARTS = int(os.environ.get("BENCH_STARTS", "50"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
FANOUTS = tuple(int(n) for n in os.environ.get("BENCH_FANOUTS", "300,2000").split(","))
# Published by Windmill (windmill.dev/docs/misc/benchmarks/competitors), 40 tasks of ~10 ms.
PUBLISHED_S = {"Hatchet": 1.22, "Windmill": 2.09, "Temporal": 2.97, "Prefect": 4.87}


def chain_definition(n: int, work_s: float) -> dict:
    """start -> n steps (sleep `work_s`, or echo when 0) -> end."""
    work = (
        {"tool": "sleep", "args": {"seconds": work_s}} if work_s else {"tool": "echo", "args": {"value": 1}}
    )
    ids = ["start", *(f"s{i}" for i in range(n)), "end"]
    nodes = [{"id": "start", "type": "start"}, {"id": "end", "type": "end"}]
    nodes += [{"id": f"s{i}", "type": "tool.python", "config": work} for i in range(n)]
    edges = [
        {"id": f"e{i}", "source": a, "target": b} for i, (a, b) in enumerate(zip(ids, ids[1:], strict=False))
    ]
    return {"id": f"chain-{n}", "name": f"chain of {n}", "nodes": nodes, "edges": edges}


def fan_definition(n: int) -> dict:
    """start -> n echo steps -> merge (all) -> end."""
    nodes = [{"id": "start", "type": "start"}, {"id": "join", "type": "merge", "config": {"mode": "all"}},
             {"id": "end", "type": "end"}]  # fmt: skip
    nodes += [{"id": f"b{i}", "type": "tool.python", "config": {"tool": "echo", "args": {"value": i}}}
              for i in range(n)]  # fmt: skip
    edges = [{"id": "e-end", "source": "join", "target": "end"}]
    for i in range(n):
        edges += [{"id": f"o{i}", "source": "start", "target": f"b{i}"},
                  {"id": f"i{i}", "source": f"b{i}", "target": "join"}]  # fmt: skip
    return {"id": f"fan-{n}", "name": f"fan-out of {n}", "nodes": nodes, "edges": edges,
            "policy": {"max_steps": n + 10}}  # fmt: skip  # the default budget is 1000 steps a run


@dataclass
class Stack:
    """What the benchmark runs on: the database, the broker, the API and an operator's key."""

    pg_url: str
    redis_url: str
    base: str
    key: str
    worker_pid: int
    celery: object = field(repr=False)


def _step_times(pg_url: str, run_id: str, prefix: str) -> tuple[float, list[float]]:
    """(first matching step's queued_at, every matching step's finished_at) as epoch seconds."""
    with get_engine(pg_url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT extract(epoch FROM queued_at), extract(epoch FROM finished_at) FROM step_runs "
                "WHERE run_id = :r AND node_id LIKE :p ORDER BY queued_at"
            ),  # fmt: skip
            {"r": run_id, "p": f"{prefix}%"},
        ).all()
    return float(rows[0][0]), [float(r[1]) for r in rows]


def _start(client: httpx.Client, stack: Stack, workflow_id: str) -> str:
    answer = client.post("/api/runs", json={"workflow_id": workflow_id, "inputs": {}},
                         headers={"authorization": f"Bearer {stack.key}"})  # fmt: skip
    if answer.status_code != 201:
        raise RuntimeError(f"POST /api/runs answered {answer.status_code}: {answer.text}")
    return answer.json()["id"]


def _finished(stack: Stack, run_id: str, timeout: float = 600) -> None:
    status = run_events.wait_for_end(run_id, timeout, database_url=stack.pg_url)
    if status != "succeeded":
        from engine.runs import get_run

        view = get_run(run_id, database_url=stack.pg_url)
        raise RuntimeError(f"run {run_id} ended {status}: {view.error if view else 'no such run'}")


def engine_chain(stack: Stack, client: httpx.Client, n: int, work_s: float, repeats: int) -> list[float]:
    """Totals (s) of `repeats` runs of the n-step chain: first step queued -> last step finished."""
    wid, _ = save_workflow(stack.pg_url, chain_definition(n, work_s))
    _finished(stack, _start(client, stack, wid))  # warm-up
    totals = []
    for _ in range(repeats):
        run_id = _start(client, stack, wid)
        _finished(stack, run_id)
        first, finishes = _step_times(stack.pg_url, run_id, "s")
        totals.append(max(finishes) - first)
    return totals


def raw_chain(stack: Stack, n: int, work_s: float, repeats: int) -> list[float]:
    """Totals (s) of a raw Celery chain of n tasks (each sends the next): first send -> last done."""
    r = redis.Redis.from_url(stack.redis_url)
    totals = []
    for i in range(repeats + 1):
        key = f"hop:{uuid.uuid4()}"
        sent = time.time()
        stack.celery.send_task("bench.hop", args=[n - 1, key, work_s])  # type: ignore[attr-defined]
        expected = n + (1 if work_s else 0)
        _wait(lambda k=key, e=expected: r.llen(k) >= e)
        if i:  # the first is a warm-up
            totals.append(float(r.lindex(key, -1)) - sent)  # type: ignore[arg-type]
    return totals


def _wait(pred, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark did not finish")
        time.sleep(0.002)


class RssSampler(threading.Thread):
    """Samples the resident memory of a process and its children until stopped; peak - start."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.start_rss = self._rss()
        self.peak = self.start_rss
        self._halt = threading.Event()

    def _rss(self) -> int:
        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def run(self) -> None:
        while not self._halt.wait(0.05):
            self.peak = max(self.peak, self._rss())

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak - self.start_rss


@dataclass
class Fan:
    """One fan-out/fan-in measured: branch steps/s of the engine and of raw Celery, memory growth."""

    n: int
    engine_s: float
    engine_branch_rate: float
    raw_rate: float
    rss_growth: int


def fan(stack: Stack, client: httpx.Client, n: int) -> Fan:
    """start -> n echo steps -> merge -> end through the API, then n raw no-op tasks at once."""
    wid, _ = save_workflow(stack.pg_url, fan_definition(n))
    _finished(stack, _start(client, stack, wid))  # warm-up
    sampler = RssSampler(stack.worker_pid)
    sampler.start()
    run_id = _start(client, stack, wid)
    _finished(stack, run_id)
    growth = sampler.stop()
    first, finishes = _step_times(stack.pg_url, run_id, "b")
    with get_engine(stack.pg_url).connect() as conn:
        whole = conn.execute(
            text("SELECT extract(epoch FROM finished_at - created_at) FROM runs WHERE id = :r"), {"r": run_id}
        ).scalar_one()
    engine_rate = n / (max(finishes) - first)

    r = redis.Redis.from_url(stack.redis_url)
    key = f"noop:{uuid.uuid4()}"
    t0 = time.perf_counter()
    for _ in range(n):
        stack.celery.send_task("bench.noop", args=[key])  # type: ignore[attr-defined]
    _wait(lambda: int(r.get(key) or 0) >= n)
    raw_rate = n / (time.perf_counter() - t0)
    return Fan(n, float(whole), engine_rate, raw_rate, growth)


def run_starts(stack: Stack, client: httpx.Client, n: int) -> list[float]:
    """`n` runs of start -> echo -> end started one at a time by POST /api/runs: for each, the time
    (ms) from sending the request to its first step running (the step's started_at)."""
    from datetime import UTC, datetime

    wid, _ = save_workflow(stack.pg_url, chain_definition(1, 0.0))
    _finished(stack, _start(client, stack, wid))  # warm-up
    gaps = []
    for _ in range(n):
        sent = datetime.now(UTC)
        run_id = _start(client, stack, wid)
        _finished(stack, run_id)
        with get_engine(stack.pg_url).connect() as conn:
            started = conn.execute(
                text("SELECT started_at FROM step_runs WHERE run_id = :r AND node_id = 'start'"),
                {"r": run_id},
            ).scalar_one()
        gaps.append((started - sent).total_seconds() * 1000)
    return gaps


def start_lines(gaps: list[float]) -> list[str]:
    """The printed line of the run-start section."""
    ordered = sorted(gaps)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return [
        f"run start, POST /api/runs -> first step running, {len(gaps)} runs one at a time: "
        f"p50 {statistics.median(gaps):.1f} ms, p95 {p95:.1f} ms, max {max(gaps):.1f} ms"
    ]


def chain_lines(label: str, n: int, engine: list[float], raw: list[float], work_s: float) -> list[str]:
    """The printed lines of one chain section of `n` steps (medians of the repeats)."""
    e, b, work = statistics.median(engine), statistics.median(raw), n * work_s
    return [
        f"{label}: {n} sequential steps, median of {len(engine)} runs",
        f"  flowloom total          {e:7.3f} s   ({(e - work) / n * 1000:5.2f} ms of orchestration per step)",
        f"  raw Celery chain total  {b:7.3f} s   ({(b - work) / n * 1000:5.2f} ms per hop)",
        f"  ratio flowloom/raw      {e / b:7.2f}x",
    ]


def fan_lines(result: Fan) -> list[str]:
    """The printed lines of one fan-out/fan-in section."""
    return [
        f"fan-out/fan-in of {result.n}: run {result.engine_s:.2f} s (start to end), "
        f"branch steps {result.engine_branch_rate:.0f}/s vs raw Celery {result.raw_rate:.0f} tasks/s "
        f"= {result.engine_branch_rate / result.raw_rate:.2f}; worker memory grew {result.rss_growth / 2**20:.1f} MiB",
    ]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="flowloom-bench-windmill-"))
    tmp.chmod(0o755)  # the embedded PostgreSQL runs as its own user when we are root
    pg = EmbeddedPostgres(tmp / "pg", find_free_port())
    red = None
    started = []
    try:
        pg_url = pg.start()
        redis_url = os.environ.get("BENCH_REDIS_URL", "")
        if not redis_url:
            red = EmbeddedRedis(tmp / "redis", find_free_port())
            redis_url = red.start()
        redis.Redis.from_url(redis_url).flushdb()
        env = {**os.environ, "FLOWLOOM_DATABASE_URL": pg_url, "FLOWLOOM_REDIS_URL": redis_url,
               "FLOWLOOM_SECRET_KEY": uuid.uuid4().hex * 2, "FLOWLOOM_DATA_DIR": str(tmp / "data"),
               "FLOWLOOM_MAX_DEFINITION_NODES": str(max(*FANOUTS, CHAIN) + 10)}  # fmt: skip
        os.environ.update(env)
        get_settings.cache_clear()
        upgrade_to_head(pg_url)
        concurrency = int(os.environ.get("BENCH_CONCURRENCY", "2"))
        worker = start_worker(env, concurrency, tmp / "worker.log")
        started.append(worker)
        api, base = serve_api(env, tmp / "granian.log")
        started.append(api)
        from engine.celery_app import current_celery

        app = current_celery()
        _wait(lambda: bool(app.control.ping(timeout=0.5)), 60)
        stack = Stack(pg_url, redis_url, base, operator_key(pg_url), worker.pid, app)
        print(f"CPU cores: {os.cpu_count()}, load average at start {_load()}, worker processes: {concurrency}, "
              f"FLOWLOOM_INLINE_STEPS={get_settings().inline_steps}")  # fmt: skip
        with httpx.Client(base_url=base, timeout=60) as client:
            for label, work_s in (
                (f"Windmill harness, {WORK_S * 1000:g} ms steps", WORK_S),
                ("0 ms steps", 0.0),
            ):
                engine = engine_chain(stack, client, CHAIN, work_s, REPEATS)
                raw = raw_chain(stack, CHAIN, work_s, REPEATS)
                for line in chain_lines(label, CHAIN, engine, raw, work_s):
                    print(line, flush=True)
            for line in start_lines(run_starts(stack, client, STARTS)):
                print(line, flush=True)
            published = ", ".join(f"{k} {v:.2f} s" for k, v in PUBLISHED_S.items())
            print(f"  (Windmill's published table for the 10 ms harness: {published})")
            for n in FANOUTS:
                for line in fan_lines(fan(stack, client, n)):
                    print(line, flush=True)
        print(f"load average at end {_load()}")
    finally:
        logging.getLogger("engine.run_events").setLevel(logging.ERROR)  # its listener sees PostgreSQL go
        for process in reversed(started):
            stop_process(process)
        pg.stop()
        if red is not None:
            red.stop()


if __name__ == "__main__":
    main()

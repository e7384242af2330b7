"""Where an engine step's time goes: a chain run step after step in this one process, profiled.

No broker hop and no worker: the run's steps are executed here one after another by
engine.tasks.execute_step (the inline path), so what is left is the engine's own work per step —
its SQL statements (counted, and timed on the client side), Python, JSON and Jinja. Prints the SQL
statements per step, the time per step, and the functions with the most cumulative time
(cProfile); `--out FILE` also writes the pstats file for a flame graph tool.

Run: `python bench/profile_step.py [--steps 200] [--work echo|sleep]` (its own embedded PostgreSQL
and Redis).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, text  # noqa: E402

from bench.windmill import chain_definition  # noqa: E402
from engine.ops.embedded_postgres import EmbeddedPostgres  # noqa: E402
from engine.ops.embedded_redis import EmbeddedRedis  # noqa: E402
from engine.ops.migrate import upgrade_to_head  # noqa: E402
from engine.ops.services import find_free_port  # noqa: E402
from engine.settings import get_settings  # noqa: E402
from models.db import get_engine  # noqa: E402


class StatementCounter:
    """Counts the SQL statements an engine sends, by their first words, and their client-side time."""

    def __init__(self, engine) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.seconds = 0.0
        self._started: dict[int, float] = {}
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self._started[id(cursor)] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.seconds += time.perf_counter() - self._started.pop(id(cursor), time.perf_counter())
        words = " ".join(statement.split()[:3])
        self.counts[words[:60]] += 1

    def reset(self) -> None:
        self.counts.clear()
        self.seconds = 0.0


def profile_chain(pg_url: str, steps: int, work_s: float, out: Path | None = None) -> dict:
    """Run a chain of `steps` steps here, profiled; what it counted and measured."""
    from engine import tasks
    from engine.parse import parse_dict
    from engine.runs import get_run, start_run

    defn = parse_dict(chain_definition(steps, work_s))
    engine = get_engine(pg_url)
    counter = StatementCounter(engine)

    def run_here() -> str:
        run_id = start_run(defn, {}, database_url=pg_url)
        with engine.connect() as conn:
            first = conn.execute(
                text("SELECT id FROM step_runs WHERE run_id = :r AND node_id = 'start'"), {"r": run_id}
            ).scalar_one()
        tasks.execute_step(str(first))
        return run_id

    assert get_run(run_here(), database_url=pg_url).status == "succeeded"  # warm-up
    t0 = time.perf_counter()
    run_here()  # timed without the profiler, which inflates Python's share
    plain = time.perf_counter() - t0
    counter.reset()
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    run_id = run_here()
    profiler.disable()
    elapsed = time.perf_counter() - t0
    view = get_run(run_id, database_url=pg_url)
    if view.status != "succeeded":
        raise RuntimeError(f"the profiled run ended {view.status}: {view.error}")
    n = steps + 2  # with start and end
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer).sort_stats("cumulative")
    stats.print_stats(40)
    if out is not None:
        stats.dump_stats(out)
    return {
        "steps": n,
        "ms_per_step": elapsed / n * 1000,
        "plain_ms_per_step": plain / n * 1000,
        "sql_per_step": sum(counter.counts.values()) / n,
        "sql_ms_per_step": counter.seconds / n * 1000,
        "statements": counter.counts.most_common(),
        "profile": buffer.getvalue(),
    }


def profile_fan(pg_url: str, width: int, out: Path | None = None) -> dict:
    """start -> `width` echo branches -> merge -> end, every step executed here one after another
    (the branches' messages go to a queue no worker reads), profiled from the first branch on."""
    from bench.windmill import fan_definition
    from engine import tasks
    from engine.parse import parse_dict
    from engine.runs import get_run, start_run

    defn = parse_dict(fan_definition(width))
    engine = get_engine(pg_url)
    counter = StatementCounter(engine)
    run_id = start_run(defn, {}, database_url=pg_url)

    def queued() -> list[str]:
        with engine.connect() as conn:
            return [str(r[0]) for r in conn.execute(
                text("SELECT id FROM step_runs WHERE run_id = :r AND status = 'queued' ORDER BY queued_at, node_id"),
                {"r": run_id})]  # fmt: skip

    for step_id in queued():  # the start step: it records the branches
        tasks.execute_step(step_id)
    branches = queued()
    counter.reset()
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    for step_id in branches:
        tasks.execute_step(step_id)  # the last one runs the merge and the end inline
    profiler.disable()
    elapsed = time.perf_counter() - t0
    view = get_run(run_id, database_url=pg_url)
    if view.status != "succeeded":
        raise RuntimeError(f"the profiled run ended {view.status}: {view.error}")
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer).sort_stats("cumulative")
    stats.print_stats(40)
    if out is not None:
        stats.dump_stats(out)
    n = len(branches)
    return {
        "steps": n,
        "ms_per_step": elapsed / n * 1000,
        "sql_per_step": sum(counter.counts.values()) / n,
        "sql_ms_per_step": counter.seconds / n * 1000,
        "statements": counter.counts.most_common(),
        "profile": buffer.getvalue(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--work", choices=["echo", "sleep"], default="echo")
    parser.add_argument("--out", type=Path, default=None, help="write the pstats file here")
    parser.add_argument("--fan", type=int, default=0, help="profile a fan-out/fan-in of this width instead")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="flowloom-profile-"))
    tmp.chmod(0o755)  # the embedded PostgreSQL runs as its own user when we are root
    pg = EmbeddedPostgres(tmp / "pg", find_free_port())
    red = EmbeddedRedis(tmp / "redis", find_free_port())
    try:
        pg_url, redis_url = pg.start(), red.start()
        os.environ.update(
            FLOWLOOM_DATABASE_URL=pg_url, FLOWLOOM_REDIS_URL=redis_url, FLOWLOOM_INLINE_STEPS="100000",
            FLOWLOOM_QUEUE=f"profile-{uuid.uuid4().hex[:6]}", FLOWLOOM_MAX_DEFINITION_NODES=str(max(args.steps, args.fan) + 10),
        )  # fmt: skip
        get_settings.cache_clear()
        upgrade_to_head(pg_url)
        if args.fan:
            found = profile_fan(pg_url, args.fan, args.out)
        else:
            found = profile_chain(pg_url, args.steps, 0.01 if args.work == "sleep" else 0.0, args.out)
        if "plain_ms_per_step" in found:
            print(f"without the profiler: {found['plain_ms_per_step']:.2f} ms per step")
        print(f"{found['steps']} steps in this process: {found['ms_per_step']:.2f} ms per step profiled, "
              f"{found['sql_per_step']:.1f} SQL statements per step taking {found['sql_ms_per_step']:.2f} ms")  # fmt: skip
        for words, count in found["statements"]:
            print(f"  {count / found['steps']:5.2f} x  {words}")
        print(found["profile"])
    finally:
        red.stop()
        pg.stop()


if __name__ == "__main__":
    main()

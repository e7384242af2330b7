"""The chaos benchmark's workflow, counts and fault scenarios (load, Redis restart, broker away,
PostgreSQL restart, worker kills), each run on the services of bench/chaos_services.py and
returning a Tally of what it did and counted; bench/chaos.py runs them, tests/chaos/ asserts them."""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import text

from bench.chaos_services import SQL_CONNECTION, OwnPostgres, OwnRedis, Workers, wait_for
from engine import metrics  # noqa: F401 - registers flowloom_step_sends_deferred
from engine.parse import parse_dict
from engine.settings import get_settings
from models.db import get_engine

RUN_STEPS = 5
_EFFECT_SQL = (
    "WITH d AS (INSERT INTO chaos_deliveries (key) VALUES (CAST(:key AS text)) RETURNING key) "
    "INSERT INTO chaos_effects (key) SELECT key FROM d ON CONFLICT (key) DO NOTHING"
)
_RETRY = {"max_attempts": 10, "backoff_s": 0.5, "max_backoff_s": 3}


# --- the workflow and the counts ---------------------------------------------------------------


def definition(work_s: float = 0.05) -> Any:
    """start -> effect1 -> work -> effect2 -> end, the effects keyed by the run's `key` input."""
    return parse_dict(definition_dict(work_s))


def definition_dict(work_s: float = 0.05) -> dict:
    """`definition` as the JSON a REST client sends."""

    def effect(node_id: str) -> dict:
        return {
            "id": node_id, "type": "tool.sql", "retry": _RETRY,
            "config": {"connection": SQL_CONNECTION, "query": _EFFECT_SQL, "allow_writes": True,
                       "params": {"key": "{{ input.key }}:" + node_id}},
        }  # fmt: skip

    ids = ["start", "effect1", "work", "effect2", "end"]
    nodes = [
        {"id": "start", "type": "start"},
        effect("effect1"),
        {"id": "work", "type": "tool.python", "retry": _RETRY,
         "config": {"tool": "sleep", "args": {"seconds": work_s}}},
        effect("effect2"),
        {"id": "end", "type": "end"},
    ]  # fmt: skip
    edges = [
        {"id": f"e{i}", "source": a, "target": b} for i, (a, b) in enumerate(zip(ids, ids[1:], strict=False))
    ]
    return {"id": "chaos", "name": "chaos", "nodes": nodes, "edges": edges}


@dataclass
class Tally:
    """What a scenario did and what it counted."""

    scenario: str
    did: list[str] = field(default_factory=list)
    runs: int = 0
    succeeded: int = 0
    lost: int = 0  # runs that did not succeed
    steps: int = 0  # step rows
    expected_steps: int = 0
    duplicate_steps: int = 0
    step_events: int = 0  # workflow.step.completed events
    run_events: int = 0  # workflow.started + workflow.completed events
    redelivered_steps: int = 0  # step rows with attempt > 1
    deliveries: int = 0  # executions of an effect step's SQL (at least once)
    effects: int = 0  # effects applied (once per run and node)
    duplicate_effects: int = 0
    missing_effects: int = 0
    published_events: int = 0  # events of these runs the relay marked published (with a relay)
    unpublished_events: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"{self.scenario}:"] + [f"  did: {d}" for d in self.did]
        out.append(f"  runs {self.runs}: succeeded {self.succeeded}, lost {self.lost}")
        out.append(
            f"  steps {self.steps} of {self.expected_steps}: duplicate {self.duplicate_steps},"
            f" redelivered {self.redelivered_steps}; events: step.completed {self.step_events},"
            f" run started+completed {self.run_events}"
        )
        out.append(
            f"  effect deliveries {self.deliveries}, effects {self.effects}, duplicate effects"
            f" {self.duplicate_effects}, missing effects {self.missing_effects}"
        )
        if self.published_events or self.unpublished_events:
            out.append(
                f"  outbox: {self.published_events} events marked published by the relay,"
                f" {self.unpublished_events} unpublished"
            )
        if self.latencies and self.seconds:
            p95 = (
                statistics.quantiles(self.latencies, n=20)[-1]
                if len(self.latencies) > 1
                else self.latencies[0]
            )
            out.append(
                f"  {self.runs / self.seconds:.1f} runs/s over {self.seconds:.1f} s; run latency"
                f" p50 {statistics.median(self.latencies):.2f} s, p95 {p95:.2f} s"
            )
        out += [f"  {k}: {v}" for k, v in self.extra.items()]
        return out


def _query(pg_url: str, sql: str, keys: list[str]) -> Any:
    with get_engine(pg_url).connect() as conn:
        return conn.execute(text(sql), {"keys": keys}).all()


def count(tally: Tally, pg_url: str, run_ids: list[str]) -> Tally:
    """Fill `tally` from the database: runs, steps, events and effects of `run_ids`."""
    tally.runs = len(run_ids)
    tally.expected_steps = len(run_ids) * RUN_STEPS
    where = "run_id = ANY(CAST(:keys AS uuid[]))"
    runs = _query(pg_url, "SELECT status, finished_at, created_at, inputs->>'key' AS key FROM runs"
                  " WHERE id = ANY(CAST(:keys AS uuid[]))", run_ids)  # fmt: skip
    tally.succeeded = sum(r.status == "succeeded" for r in runs)
    tally.lost = tally.runs - tally.succeeded
    tally.latencies = [(r.finished_at - r.created_at).total_seconds() for r in runs if r.finished_at]
    steps = _query(pg_url, f"SELECT run_id, node_id, attempt FROM step_runs WHERE {where}", run_ids)
    tally.steps = len(steps)
    pairs: dict[tuple, int] = {}
    for s in steps:
        pairs[(s.run_id, s.node_id)] = pairs.get((s.run_id, s.node_id), 0) + 1
    tally.redelivered_steps = sum(s.attempt > 1 for s in steps)
    events = _query(pg_url, f"SELECT run_id, event_type, payload FROM events WHERE {where}"
                    " AND event_type IN ('workflow.step.completed', 'workflow.started', 'workflow.completed')",
                    run_ids)  # fmt: skip
    completed: dict[tuple, int] = {}
    for e in events:
        if e.event_type == "workflow.step.completed":
            key = (e.run_id, e.payload["data"].get("node_id"))
            completed[key] = completed.get(key, 0) + 1
        else:
            tally.run_events += 1
    tally.step_events = sum(completed.values())
    tally.duplicate_steps = sum(n - 1 for n in pairs.values() if n > 1) + sum(
        n - 1 for n in completed.values() if n > 1
    )
    keys = [f"{r.key}:{n}" for r in runs for n in ("effect1", "effect2")]
    with get_engine(pg_url).connect() as conn:
        tally.deliveries = conn.execute(
            text("SELECT count(*) FROM chaos_deliveries WHERE key = ANY(:keys)"), {"keys": keys}
        ).scalar_one()
        applied = conn.execute(
            text("SELECT key, count(*) FROM chaos_effects WHERE key = ANY(:keys) GROUP BY key"),
            {"keys": keys},
        ).all()
    tally.effects = sum(n for _, n in applied)
    tally.duplicate_effects = sum(n - 1 for _, n in applied if n > 1)
    tally.missing_effects = len(keys) - len(applied)
    if get_settings().kafka_bootstrap_servers:  # a relay publishes the outbox: wait for it to drain
        wait_published(pg_url, run_ids, timeout=180)
        tally.published_events, tally.unpublished_events = _published(pg_url, run_ids)
    return tally


def _published(pg_url: str, run_ids: list[str]) -> tuple[int, int]:
    """(events of `run_ids` marked published, events not yet)."""
    sql = ("SELECT count(*) FILTER (WHERE published_at IS NOT NULL), count(*) FILTER (WHERE published_at IS NULL)"
           " FROM events WHERE run_id = ANY(CAST(:keys AS uuid[]))")  # fmt: skip
    row = _query(pg_url, sql, run_ids)[0]
    return row[0], row[1]


def wait_published(pg_url: str, run_ids: list[str], timeout: float) -> None:
    """Wait until the relay marked every event of `run_ids` published (or `timeout` passes: the
    counts then show how many stayed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the database may be restarting
            if _published(pg_url, run_ids)[1] == 0:
                return
        time.sleep(0.2)


def start_runs(n: int, work_s: float) -> list[str]:
    """Start `n` runs whose effects are keyed by a fresh key each (their `key` input)."""
    from engine.runs import start_run

    defn = definition(work_s)
    return [start_run(defn, {"key": uuid.uuid4().hex}) for _ in range(n)]


def _terminal(pg_url: str, run_ids: list[str]) -> int:
    sql = ("SELECT count(*) FROM runs WHERE id = ANY(CAST(:keys AS uuid[]))"
           " AND status IN ('succeeded', 'failed', 'cancelled')")  # fmt: skip
    return _query(pg_url, sql, run_ids)[0][0]


def wait_done(pg_url: str, run_ids: list[str], timeout: float) -> None:
    """Wait until every run is terminal (or `timeout` passes: the counts then show the lost ones)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the database may be restarting
            if _terminal(pg_url, run_ids) == len(run_ids):
                return
        time.sleep(0.2)


def _running_steps(pg_url: str, run_ids: list[str]) -> int:
    sql = "SELECT count(*) FROM step_runs WHERE run_id = ANY(CAST(:keys AS uuid[])) AND status = 'running'"
    return _query(pg_url, sql, run_ids)[0][0]


# --- the scenarios -----------------------------------------------------------------------------


def load(pg_url: str, runs: int, timeout: float = 1800.0) -> Tally:
    """`runs` concurrent runs of the 5-step workflow on the workers already started."""
    tally = Tally("load", did=[f"started {runs} runs of a {RUN_STEPS}-step workflow at once"])
    began = time.monotonic()
    run_ids = start_runs(runs, work_s=0.0)
    wait_done(pg_url, run_ids, timeout)
    tally.seconds = time.monotonic() - began
    return count(tally, pg_url, run_ids)


def redis_restart(pg_url: str, own_redis: OwnRedis, runs: int, down_s: float = 3.0) -> Tally:
    """Kill Redis (losing its queue) while runs are queued and running, start runs during the outage,
    start Redis again empty on the same port."""
    tally = Tally("redis restart")
    began = time.monotonic()
    run_ids = start_runs(runs, work_s=0.5)
    wait_for(lambda: _running_steps(pg_url, run_ids) > 0)
    queued = _query(pg_url, "SELECT count(*) FROM step_runs WHERE run_id = ANY(CAST(:keys AS uuid[]))"
                    " AND status = 'queued'", run_ids)[0][0]  # fmt: skip
    running = _running_steps(pg_url, run_ids)
    own_redis.kill()
    tally.extra["in flight at the kill"] = {"queued": queued, "running": running}
    tally.did.append(f"started {runs} runs; killed Redis (SIGKILL, no persistence) with {queued} steps"
                     f" queued and {running} running")  # fmt: skip
    # Runs started during the outage are recorded; their first message cannot leave (each start
    # gives up on the broker after one quick retry and leaves it to the sweeper). They start in a
    # thread of their own, so the outage lasts down_s whatever the starts take.
    during: list[str] = []
    start_s: list[float] = []

    def start_during_outage() -> None:
        for _ in range(max(1, runs // 5)):
            t0 = time.monotonic()
            during.extend(start_runs(1, work_s=0.5))
            start_s.append(time.monotonic() - t0)

    starter = threading.Thread(target=start_during_outage)
    starter.start()
    time.sleep(down_s)  # the outage itself: how long Redis stays away
    own_redis.start()
    starter.join()
    tally.extra["start_run calls while Redis was down"] = (
        f"{len(start_s)}, the slowest took {max(start_s):.1f} s"
    )
    tally.did.append(f"started {len(during)} more runs while Redis was down")
    tally.did.append(f"started Redis again (empty) after {down_s:g} s")
    run_ids += during
    wait_done(pg_url, run_ids, 300)
    tally.seconds = time.monotonic() - began
    return count(tally, pg_url, run_ids)


def _deferred_sends() -> float:
    """How many step messages this process could not send (flowloom_step_sends_deferred_total)."""
    return REGISTRY.get_sample_value("flowloom_step_sends_deferred_total") or 0.0


def broker_away(
    pg_url: str, own_redis: OwnRedis, start: Callable[[], str], runs: int, mode: str = "killed"
) -> Tally:
    """Start `runs` runs with `start()` (the REST API, start_run) while Redis is away: `killed`
    (the port refuses) or `frozen` (SIGSTOP: connections hang). Each start returns with its run
    recorded and its first step left unsent to the sweeper (counted by this process's
    flowloom_step_sends_deferred_total); Redis comes back and the sweeper sends them."""
    if mode not in ("killed", "frozen"):
        raise ValueError(f"mode: killed or frozen, not {mode!r}")
    tally = Tally(f"runs started while Redis is {mode}")
    began = time.monotonic()
    if mode == "killed":
        own_redis.kill()
    else:
        own_redis.freeze()
    run_ids: list[str] = []
    start_s: list[float] = []
    deferred_before = _deferred_sends()
    try:
        for _ in range(runs):
            t0 = time.monotonic()
            run_ids.append(start())
            start_s.append(time.monotonic() - t0)
        unsent = _deferred_sends() - deferred_before
    finally:
        if mode == "killed":
            own_redis.start()
        else:
            own_redis.thaw()
    tally.extra["first steps left to the sweeper"] = unsent
    tally.extra["starts while away"] = f"{len(start_s)}, the slowest took {max(start_s):.1f} s"
    tally.did.append(f"{mode} Redis ({'SIGKILL' if mode == 'killed' else 'SIGSTOP'}); started {runs} runs")
    tally.did.append("brought Redis back" + (" (empty)" if mode == "killed" else " (SIGCONT)"))
    wait_done(pg_url, run_ids, 300)
    tally.seconds = time.monotonic() - began
    return count(tally, pg_url, run_ids)


def postgres_restart(
    own_pg: OwnPostgres, runs: int, down_s: float = 3.0, probe: Callable[[], tuple[int, str]] | None = None
) -> Tally:
    """Stop PostgreSQL (fast shutdown) while runs are in flight, start it again on the same port.
    `probe()` -> (status, content type) of an API request, asked during the outage and after."""
    pg_url = own_pg.url
    tally = Tally("postgres restart")
    began = time.monotonic()
    run_ids = start_runs(runs, work_s=0.5)
    wait_for(lambda: _running_steps(pg_url, run_ids) > 0)
    own_pg.stop()
    tally.did.append(f"started {runs} runs; stopped PostgreSQL with steps running")
    if probe is not None:
        status, kind = probe()
        tally.extra["API while down"] = f"{status} {kind}"
    time.sleep(down_s)  # the outage itself
    own_pg.start()
    tally.did.append(f"started PostgreSQL again after {down_s:g} s (plus its shutdown and start)")
    wait_done(pg_url, run_ids, 300)
    tally.seconds = time.monotonic() - began
    if probe is not None:
        # The web's pool meets its dropped connections once, discards them and connects anew.
        answers = [probe() for _ in range(1)]
        while answers[-1][0] >= 500 and len(answers) < 10:
            answers.append(probe())
        tally.extra["API after"] = (
            f"{answers[-1][0]} {answers[-1][1]} after {len(answers) - 1} failed request(s)"
        )
    return count(tally, pg_url, run_ids)


def _worker_running_a_step(pg_url: str, workers: Workers, run_ids: list[str]) -> int | None:
    """The index of a live worker whose pool runs a step of `run_ids` now (None once all are done)."""
    sql = ("SELECT worker FROM step_runs WHERE run_id = ANY(CAST(:keys AS uuid[]))"
           " AND status = 'running' AND lease_until > now()")  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pids = {int(r.worker.rsplit(":", 1)[1]) for r in _query(pg_url, sql, run_ids) if r.worker}
        for index, process in enumerate(workers.processes):
            if process.poll() is None and pids & {process.pid, *workers.pool_pids(index)}:
                return index
        if _terminal(pg_url, run_ids) == len(run_ids):
            return None
        time.sleep(0.05)
    return None


def worker_kills(pg_url: str, workers: Workers, runs: int, kills: int) -> Tally:
    """SIGKILL a worker that is running a step, `kills` times while runs are in flight; the
    supervisor (the one `flowloom up` runs) clears its group and starts it again each time, and the
    next kill waits for that. Every other kill takes the main process only (its pool processes are
    orphaned until the supervisor clears the group), the others the main process with its pool."""
    tally = Tally("worker kills")
    began = time.monotonic()
    restarts_at_start = workers.restarts()
    run_ids = start_runs(runs, work_s=1.0)
    main_only = with_pool = 0
    for i in range(kills):
        index = _worker_running_a_step(
            pg_url, workers, run_ids
        )  # a live one: a dead one waits for its restart
        if index is None:
            break
        if i % 2 == 0:
            workers.kill_main(index)
            main_only += 1
        else:
            workers.kill_group(index)
            with_pool += 1
    # Every kill is followed by a restart, which the supervisor makes after its backoff.
    wait_for(lambda: workers.restarts() - restarts_at_start >= main_only + with_pool, timeout=300)
    tally.extra["kills"] = {"main only": main_only, "main and pool": with_pool}
    tally.extra["restarted by the supervisor"] = workers.restarts() - restarts_at_start
    tally.did.append(f"started {runs} runs; killed a worker running a step {main_only + with_pool} times"
                     f" (SIGKILL: {main_only} x the main process only, {with_pool} x main and pool);"
                     " the supervisor started each killed worker again")  # fmt: skip
    wait_done(pg_url, run_ids, 300)
    tally.seconds = time.monotonic() - began
    workers.wait_ready(workers.processes)
    return count(tally, pg_url, run_ids)

"""bench/windmill.py's parts with tiny sizes on the real API, PostgreSQL, broker and workers: each
measures what it says (the engine's steps and the raw Celery baseline on the same workers) and
prints its lines. No timing is asserted."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text

from bench.event_setup import operator_key, serve_api, start_worker, stop_process
from bench.windmill import (
    Stack,
    _wait,
    chain_lines,
    engine_chain,
    fan,
    fan_lines,
    raw_chain,
    run_starts,
    start_lines,
)
from engine.celery_app import current_celery
from models.db import get_engine
from tests.integration.conftest import ENGINE_WORKER_ENV, TEST_SECRET_KEY

pytestmark = pytest.mark.usefixtures("auth_env")


@pytest.fixture
def stack(pg_url: str, isolated_broker: str, tmp_path) -> Iterator[Stack]:
    """The bench's worker (engine tasks plus the raw baselines) on a broker and queue of this test's
    own, and the API served by granian."""
    env = {
        **os.environ, **ENGINE_WORKER_ENV, "FLOWLOOM_DATABASE_URL": pg_url,
        "FLOWLOOM_REDIS_URL": isolated_broker, "FLOWLOOM_SECRET_KEY": TEST_SECRET_KEY,
        "FLOWLOOM_DATA_DIR": str(tmp_path / "data"),
    }  # fmt: skip
    worker = start_worker(env, 2, tmp_path / "worker.log")
    server = None
    try:
        server, base = serve_api(env, tmp_path / "granian.log")
        app = current_celery()
        _wait(lambda: bool(app.control.ping(timeout=0.5)), 60)
        yield Stack(pg_url, isolated_broker, base, operator_key(pg_url), worker.pid, app)
    finally:
        if server is not None:
            stop_process(server)
        stop_process(worker)


def test_the_chain_sections_time_the_engine_and_a_raw_celery_chain_doing_the_same_work(stack):
    with httpx.Client(base_url=stack.base, timeout=60) as client:
        engine = engine_chain(stack, client, 3, 0.01, 2)
        engine_0 = engine_chain(stack, client, 3, 0.0, 1)
    raw = raw_chain(stack, 3, 0.01, 2)

    assert len(engine) == len(raw) == 2 and len(engine_0) == 1
    # Three steps that each sleep 10 ms take at least 30 ms, on either side.
    assert min(engine) >= 0.03 and min(raw) >= 0.03
    with get_engine(stack.pg_url).connect() as conn:
        slept = conn.execute(
            text(
                "SELECT count(*) FROM step_runs WHERE node_id LIKE 's%' AND status = 'succeeded' "
                "AND outputs->'out' = '0.01'::jsonb"
            )  # fmt: skip
        ).scalar()
    assert slept == 3 * 3  # warm-up and two measured runs, three sleeping steps each
    lines = chain_lines("Windmill harness", 3, engine, raw, 0.01)
    assert lines[0] == "Windmill harness: 3 sequential steps, median of 2 runs"
    assert "ms of orchestration per step" in lines[1] and lines[-1].strip().startswith("ratio flowloom/raw")


def test_the_fan_section_runs_every_branch_into_the_merge_and_the_raw_tasks(stack):
    with httpx.Client(base_url=stack.base, timeout=60) as client:
        result = fan(stack, client, 6)

    assert result.n == 6 and result.engine_s > 0 and result.engine_branch_rate > 0 and result.raw_rate > 0
    with get_engine(stack.pg_url).connect() as conn:
        joined = conn.execute(
            text(
                "SELECT outputs->'out' FROM step_runs WHERE node_id = 'join' ORDER BY finished_at DESC LIMIT 1"
            )
        ).scalar()
    assert joined == {f"b{i}": i for i in range(6)}  # every branch's output arrived at the merge
    line = fan_lines(result)[0]
    assert line.startswith("fan-out/fan-in of 6:") and "vs raw Celery" in line and "MiB" in line


def test_the_run_start_section_times_each_api_start_to_its_first_step_running(stack):
    with httpx.Client(base_url=stack.base, timeout=60) as client:
        gaps = run_starts(stack, client, 3)

    assert len(gaps) == 3 and all(gap > 0 for gap in gaps)  # the step started after the request left
    with get_engine(stack.pg_url).connect() as conn:
        started = conn.execute(text("SELECT count(*) FROM runs WHERE started_via = 'api'")).scalar()
    assert started == 3 + 1  # the warm-up and the three timed runs, each through the API
    [line] = start_lines(gaps)
    assert line.startswith("run start, POST /api/runs -> first step running, 3 runs") and "p95" in line

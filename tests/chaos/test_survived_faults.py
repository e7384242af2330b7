"""Survived faults (bench/chaos.py's scenarios with small sizes): load on four workers, Redis and
PostgreSQL restarted under load, a worker's main process killed again and again. Each test prints
its figures and asserts the counts: every run succeeded, every step and event exactly once, every
side effect applied exactly once. No timing is asserted."""

from __future__ import annotations

import pytest

from bench.chaos import RUN_STEPS, Tally, load, postgres_restart, redis_restart, worker_kills


def _survived(tally: Tally, *, effects_per_run: int = 2) -> None:
    print("\n".join(tally.lines()))
    assert tally.runs > 0
    assert (tally.succeeded, tally.lost) == (tally.runs, 0), tally.lines()
    assert tally.steps == tally.expected_steps == tally.runs * RUN_STEPS
    assert tally.duplicate_steps == 0
    assert tally.step_events == tally.runs * RUN_STEPS  # one workflow.step.completed per step
    assert tally.run_events == tally.runs * 2  # workflow.started and workflow.completed
    assert tally.effects == tally.runs * effects_per_run
    assert (tally.duplicate_effects, tally.missing_effects) == (0, 0)
    assert tally.deliveries >= tally.effects


def test_concurrent_runs_on_four_workers_all_complete_once(chaos):
    tally = load(chaos["pg"].url, runs=60)
    _survived(tally)
    assert len(tally.latencies) == 60  # every run has its latency (created -> finished)


def test_worker_main_process_killed_repeatedly_loses_no_run(chaos):
    workers = chaos["workers"]
    tally = worker_kills(chaos["pg"].url, workers, runs=40, kills=4)
    _survived(tally)
    assert tally.extra["kills"] == {"main only": 2, "main and pool": 2}
    assert tally.redelivered_steps >= 1  # a killed pool's step ran again elsewhere
    assert all(p.poll() is None for p in workers.processes)  # the replacements serve


def test_redis_killed_and_restarted_empty_under_load_loses_no_run(chaos):
    tally = redis_restart(chaos["pg"].url, chaos["redis"], runs=20)
    _survived(tally)
    # Steps were queued and running when Redis went away with its queue: they were sent again.
    in_flight = tally.extra["in flight at the kill"]
    assert in_flight["running"] >= 1 and in_flight["queued"] >= 1


@pytest.fixture
def api_probe(chaos):
    """probe() -> (status, content type) of GET /api/runs/<id> with a fresh admin's API key."""
    from fastapi.testclient import TestClient

    from app.api.main import api
    from app.auth import api_keys
    from app.auth.api_keys import rate_limiter
    from app.auth.principal import session_cache
    from app.db import db_session
    from models.auth import User

    rate_limiter.reset()
    session_cache.clear()
    with db_session() as session:
        user = User(issuer="https://idp.example.test", subject="chaos", email="chaos@example.test",
                    name="chaos", role="admin", email_verified=True)  # fmt: skip
        session.add(user)
        session.flush()
        _, key = api_keys.create(session, user, name="chaos", role="admin", rate_limit_per_min=6000)
    client = TestClient(api, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)
    answers: list[dict] = []

    def probe() -> tuple[int, str]:
        response = client.get("/api/runs/00000000-0000-0000-0000-000000000000")
        answers.append({"status": response.status_code, "body": response.text})
        return response.status_code, response.headers.get("content-type", "")

    probe.answers = answers  # type: ignore[attr-defined]
    yield probe
    session_cache.clear()


def test_postgres_restarted_under_load_workers_and_api_reconnect(chaos, api_probe):
    tally = postgres_restart(chaos["pg"], runs=20, probe=api_probe)
    _survived(tally)
    # While PostgreSQL was down the API answered 503 problem+json naming the database, not a traceback.
    assert tally.extra["API while down"] == "503 application/problem+json"
    down = api_probe.answers[0]
    assert "database is unavailable" in down["body"].lower() and "Traceback" not in down["body"]
    # Afterwards it reconnected: the unknown run is a plain 404 again.
    assert tally.extra["API after"].startswith("404 application/problem+json")

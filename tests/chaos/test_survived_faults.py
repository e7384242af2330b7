"""Survived faults (bench/chaos_scenarios.py's scenarios with small sizes): load on four workers, Redis and
PostgreSQL restarted under load, a worker's main process killed again and again. Each test prints
its figures and asserts the counts: every run succeeded, every step and event exactly once, every
side effect applied exactly once. No timing is asserted."""

from __future__ import annotations

import uuid

import pytest

from bench.chaos_scenarios import (
    RUN_STEPS,
    Tally,
    broker_away,
    definition_dict,
    load,
    postgres_restart,
    redis_restart,
    worker_kills,
)


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
    # The relay (supervised beside the workers) marked every event of these runs published in
    # PostgreSQL, through the Redis or PostgreSQL restart of the scenario.
    assert tally.published_events >= tally.runs * (RUN_STEPS + 2) and tally.unpublished_events == 0


def test_concurrent_runs_on_four_workers_all_complete_once(chaos):
    tally = load(chaos["pg"].url, runs=60)
    _survived(tally)
    assert len(tally.latencies) == 60  # every run has its latency (created -> finished)


def test_worker_main_process_killed_repeatedly_loses_no_run(chaos):
    workers = chaos["workers"]
    tally = worker_kills(chaos["pg"].url, workers, runs=40, kills=4)
    _survived(tally)
    assert tally.extra["kills"] == {"main only": 2, "main and pool": 2}
    # Each killed worker was started again by the supervisor `flowloom up` runs, not by the test.
    assert tally.extra["restarted by the supervisor"] == 4
    assert tally.redelivered_steps >= 1  # a killed pool's step ran again elsewhere
    assert all(p.poll() is None for p in workers.processes)  # the replacements serve


def test_redis_killed_and_restarted_empty_under_load_loses_no_run(chaos):
    tally = redis_restart(chaos["pg"].url, chaos["redis"], runs=20)
    _survived(tally)
    # Steps were queued and running when Redis went away with its queue: they were sent again.
    in_flight = tally.extra["in flight at the kill"]
    assert in_flight["running"] >= 1 and in_flight["queued"] >= 1


def _admin_client(name: str):
    """A TestClient of the REST API with a fresh admin's API key (its user named `name`)."""
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
        user = User(issuer="https://idp.example.test", subject=name, email=f"{name}@example.test",
                    name=name, role="admin", email_verified=True)  # fmt: skip
        session.add(user)
        session.flush()
        _, key = api_keys.create(session, user, name=name, role="admin", rate_limit_per_min=6000)
    return TestClient(api, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=False)


@pytest.mark.parametrize("mode", ["killed", "frozen"])
def test_run_started_through_the_api_while_redis_is_away_is_recorded_and_runs_when_it_is_back(chaos, mode):
    """POST /api/runs while Redis refuses connections (killed) or hangs (SIGSTOP) answers 201 with
    the run recorded and its first step marked unsent, not a call waiting on the broker; when
    Redis is back the sweeper sends the steps and every run completes exactly once."""
    from app.auth.principal import session_cache

    client = _admin_client(f"chaos-broker-{mode}")
    answers: list[dict] = []

    def start() -> str:
        response = client.post("/api/runs", json={"definition": definition_dict(0.05),
                                                  "inputs": {"key": uuid.uuid4().hex}})  # fmt: skip
        answers.append({"status": response.status_code, "body": response.json()})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    try:
        tally = broker_away(chaos["pg"].url, chaos["redis"], start, runs=4, mode=mode)
    finally:
        session_cache.clear()
    _survived(tally)
    assert [a["body"]["status"] for a in answers] == ["running"] * 4
    # Each first step's send gave up in the API process and was left to the sweeper.
    assert tally.extra["first steps left to the sweeper"] == 4


@pytest.fixture
def api_probe(chaos):
    """probe() -> (status, content type) of GET /api/runs/<id> with a fresh admin's API key."""
    from app.auth.principal import session_cache

    client = _admin_client("chaos")
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

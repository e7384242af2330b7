"""Engine fixtures: in-process settings pointing at the session's services, and a worker."""

from __future__ import annotations

import os

import pytest

from engine.settings import get_settings

ENGINE_WORKER_ENV = {"FLOWLOOM_STEP_LEASE_S": "5", "FLOWLOOM_SWEEP_INTERVAL_S": "1"}


def _point_settings_at(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


@pytest.fixture
def engine_env(pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch):
    """This process sends runs to the session's database and broker."""
    _point_settings_at(
        monkeypatch, FLOWLOOM_DATABASE_URL=pg_url, FLOWLOOM_REDIS_URL=redis_url, **ENGINE_WORKER_ENV
    )
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def engine_worker(worker_factory, pg_url: str, redis_url: str):
    """Two worker processes (prefork, concurrency 2) shared by the engine tests."""
    return worker_factory(concurrency=2, env=dict(ENGINE_WORKER_ENV))


@pytest.fixture
def isolated_broker(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A broker URL (another Redis database) no session worker listens on, for tests that kill workers."""
    base, _, _db = redis_url.rpartition("/")
    url = f"{base}/{(int(_db or 0) + 1) % 16}"
    import redis

    redis.Redis.from_url(url).flushdb()
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", url)
    get_settings.cache_clear()
    assert os.environ["FLOWLOOM_REDIS_URL"] == url
    return url

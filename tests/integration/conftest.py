"""Engine fixtures: in-process settings pointing at the session's services, and a worker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from engine.celery_app import celery_for
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
def engine_worker(worker_factory):
    """Two worker processes (prefork, concurrency 2) shared by the engine tests; their tool.sql
    connection `suite` is the session's database (as every test worker's)."""
    return worker_factory(concurrency=2, env=ENGINE_WORKER_ENV)


@pytest.fixture
def isolated_broker(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A broker URL (another Redis database) no session worker listens on, for tests that kill workers."""
    base, _, _db = redis_url.rpartition("/")
    url = f"{base}/{(int(_db or 0) + 1) % 16}"
    import redis

    redis.Redis.from_url(url).flushdb()
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", url)
    # And a queue of this test's own: workers an earlier test started on the isolated database live
    # as long as the session, and would take our steps (with FLOWLOOM_BROKER_URL, RabbitMQ, the
    # queue is what isolates). Workers this test starts inherit it from the environment.
    monkeypatch.setenv(
        "FLOWLOOM_QUEUE", f"{os.environ.get('FLOWLOOM_QUEUE', 'flowloom')}-isolated-{uuid.uuid4().hex[:8]}"
    )
    get_settings.cache_clear()
    celery_for.cache_clear()  # its apps send to the queue they were made with
    assert os.environ["FLOWLOOM_REDIS_URL"] == url
    yield url
    monkeypatch.undo()  # back to the session's broker and queue, and apps made for them
    get_settings.cache_clear()
    celery_for.cache_clear()


# ---------------------------------------------------------------------------------------------
# Signed-in callers for API tests (app/auth): api_client(role) and make_user(role).

TEST_SECRET_KEY = "test-secret-key-for-flowloom-sessions-0123456789abcdef"


@pytest.fixture
def auth_env(pg_url: str, clean_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path):
    """In-process settings for auth tests: the session's database, a fixed secret, a private data dir."""
    from app.auth.api_keys import rate_limiter
    from app.auth.principal import session_cache

    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    rate_limiter.reset()
    session_cache.clear()
    yield
    get_settings.cache_clear()
    session_cache.clear()


@pytest.fixture
def make_user(auth_env):
    """make_user(role="viewer", email=None, email_verified=True) -> the new user's row (an OIDC-style
    identity whose provider verified the address, as the test provider does, unless told otherwise)."""
    import uuid

    from app.db import db_session
    from models.auth import User

    def make(role: str = "viewer", email: str | None = None, email_verified: bool = True) -> User:
        email = email or f"{role}-{uuid.uuid4().hex[:6]}@example.test"
        with db_session() as session:
            user = User(
                issuer="https://idp.example.test", subject=email, email=email, name=email, role=role,
                email_verified=email_verified,
            )  # fmt: skip
            session.add(user)
            session.flush()
            return user

    return make


@pytest.fixture
def api_client(make_user):
    """api_client(role="viewer", **client_kwargs) -> a TestClient of the API app sending an API key of
    a fresh user with `role` (the key is on `client.api_key`, its user on `client.user`)."""
    from fastapi.testclient import TestClient

    from app.api.main import api
    from app.auth import api_keys
    from app.db import db_session

    def make(role: str = "viewer", **client_kwargs) -> TestClient:
        user = make_user(role)
        with db_session() as session:
            _, key = api_keys.create(session, user, name=f"test {role}", role=role, rate_limit_per_min=6000)
        client = TestClient(api, headers={"Authorization": f"Bearer {key}"}, **client_kwargs)
        client.api_key, client.user = key, user
        return client

    return make

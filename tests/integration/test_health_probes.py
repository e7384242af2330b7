"""/api/health/live, /api/health/ready and /api/health: what each requires, who sees what, and that
anonymous callers get cached answers instead of a check per request."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.api.main import api
from engine.ops.health import CheckResult
from engine.settings import get_settings

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


class Fake:
    """A check that answers `ok` and counts its runs."""

    def __init__(self, name: str, ok: bool = True) -> None:
        self.name, self.ok, self.runs = name, ok, 0

    def __call__(self, *args: object, **kwargs: object) -> CheckResult:
        self.runs += 1
        return CheckResult(self.name, self.ok, f"{self.name} {'answers' if self.ok else 'is away'}")


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, Fake]:
    """The three checks replaced by counting fakes (a fresh set per test, so nothing cached applies)."""
    made = {"database": Fake("database"), "redis": Fake("redis"), "workers": Fake("workers", ok=False)}
    for name, fake in made.items():
        monkeypatch.setattr(f"app.api.health.check_{name}", fake)
    return made


def test_live_answers_ok_without_checking_anything(auth_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> CheckResult:
        raise AssertionError("liveness must not check a dependency")

    for name in ("database", "redis", "workers"):
        monkeypatch.setattr(f"app.api.health.check_{name}", broken)
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", UNREACHABLE_REDIS)
    get_settings.cache_clear()

    response = TestClient(api).get("/api/health/live")

    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["cache-control"] == "no-store"


def test_ready_needs_database_and_redis_but_not_workers(auth_env: None, fakes: dict[str, Fake]) -> None:
    anonymous = TestClient(api)

    assert anonymous.get("/api/health/ready").status_code == 200  # no worker answers
    assert anonymous.get("/api/health/ready").json() == {"status": "ok"}
    full = anonymous.get("/api/health")  # the whole installation still needs a worker
    assert full.status_code == 503 and full.json() == {"status": "degraded"}
    assert fakes["workers"].runs == 1  # readiness never pinged the workers for an anonymous caller


def test_ready_is_503_when_redis_is_down_and_admins_see_why(
    auth_env: None, api_client, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, anonymous = api_client("admin"), TestClient(api)
    monkeypatch.setattr("app.api.health.check_workers", Fake("workers", ok=False))
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", UNREACHABLE_REDIS)
    get_settings.cache_clear()

    refused = anonymous.get("/api/health/ready")
    assert refused.status_code == 503 and refused.json() == {"status": "degraded"}
    # A signed-in caller learns which part is away (an open page's outage banner says it), nothing more.
    viewer = api_client("viewer").get("/api/health/ready")
    assert viewer.status_code == 503 and viewer.json() == {"status": "degraded", "unavailable": ["redis"]}
    detailed = admin.get("/api/health/ready").json()
    assert detailed["status"] == "degraded" and detailed["unavailable"] == ["redis"]
    assert detailed["checks"]["database"]["ok"] is True and detailed["checks"]["redis"]["ok"] is False
    assert "127.0.0.1:1" in detailed["checks"]["redis"]["detail"] and detailed["checks"]["redis"]["fix"]

    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)  # real Redis and database, workers reported
    get_settings.cache_clear()
    back = admin.get("/api/health/ready")
    assert back.status_code == 200, back.text
    assert back.json()["checks"]["workers"] == {
        "name": "workers",
        "ok": False,
        "detail": "workers is away",
        "fix": "",
    }
    assert back.json()["versions"]["flowloom"]


def test_anonymous_callers_share_one_check_per_ttl_and_admins_get_fresh_ones(
    auth_env: None, api_client, fakes: dict[str, Fake]
) -> None:
    anonymous, admin = TestClient(api), api_client("admin")

    for _ in range(15):
        assert anonymous.get("/api/health/ready").status_code == 200
        assert anonymous.get("/api/health").status_code == 503
    assert [fakes[n].runs for n in ("database", "redis", "workers")] == [1, 1, 1]

    admin.get("/api/health")
    admin.get("/api/health")
    assert [fakes[n].runs for n in ("database", "redis", "workers")] == [3, 3, 3]


def test_the_health_routes_are_in_the_openapi_document(auth_env: None) -> None:
    paths = TestClient(api).get("/api/openapi.json").json()["paths"]
    assert {"/api/health", "/api/health/live", "/api/health/ready"} <= set(paths)
    assert "503" in paths["/api/health/ready"]["get"]["responses"]

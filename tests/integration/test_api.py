"""The REST API under /api against a real PostgreSQL: workflows CRUD, errors, health and the schema."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from engine.settings import get_settings

UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/flowloom"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def client(api_client) -> TestClient:
    """A client of the API app, with an editor's API key, whose settings point at the session's database."""
    return api_client("editor")


def _create(client: TestClient, name: str, description: str = "") -> dict:
    response = client.post("/api/workflows", json={"name": name, "description": description})
    assert response.status_code == 201, response.text
    return response.json()


def test_created_workflow_is_listed_and_readable(client: TestClient) -> None:
    created = _create(client, "  Triage tickets  ", "Route support tickets")

    assert created["name"] == "Triage tickets"
    assert created["description"] == "Route support tickets"
    assert created["latest_version"] == 0
    uuid.UUID(created["id"])

    listed = client.get("/api/workflows").json()
    assert [w["id"] for w in listed] == [created["id"]]

    fetched = client.get(f"/api/workflows/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created


def test_list_filters_by_name_case_insensitively_and_treats_wildcards_literally(client: TestClient) -> None:
    _create(client, "Nightly report")
    _create(client, "Invoice approval")
    _create(client, "100% coverage")

    names = {w["name"] for w in client.get("/api/workflows", params={"search": "REPORT"}).json()}
    assert names == {"Nightly report"}
    names = {w["name"] for w in client.get("/api/workflows", params={"search": "%"}).json()}
    assert names == {"100% coverage"}
    assert len(client.get("/api/workflows").json()) == 3


def test_deleted_workflow_is_gone_and_a_second_delete_is_404(client: TestClient) -> None:
    workflow_id = _create(client, "Short-lived")["id"]

    assert client.delete(f"/api/workflows/{workflow_id}").status_code == 204
    assert client.get(f"/api/workflows/{workflow_id}").status_code == 404
    assert client.get("/api/workflows").json() == []
    assert client.delete(f"/api/workflows/{workflow_id}").status_code == 404


def test_unknown_workflow_id_is_404_with_the_id_in_the_message(client: TestClient) -> None:
    unknown = uuid.uuid4()

    response = client.get(f"/api/workflows/{unknown}")

    assert response.status_code == 404
    assert str(unknown) in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 201},
        {"name": 42},
        {"name": "ok", "description": "d" * 2001},
        {"name": "ok", "owner_id": str(uuid.uuid4())},
    ],
    ids=[
        "missing-name",
        "empty-name",
        "blank-name",
        "long-name",
        "number-name",
        "long-description",
        "extra-field",
    ],
)
def test_bad_create_body_is_422_and_creates_nothing(client: TestClient, body: dict) -> None:
    response = client.post("/api/workflows", json=body)

    assert response.status_code == 422, response.text
    assert client.get("/api/workflows").json() == []


def test_malformed_workflow_id_is_422(client: TestClient) -> None:
    assert client.get("/api/workflows/not-a-uuid").status_code == 422


def test_openapi_schema_lists_the_routes_and_docs_are_served(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()

    assert set(schema["paths"]["/api/workflows"]) >= {"get", "post"}
    assert set(schema["paths"]["/api/workflows/{workflow_id}"]) >= {"get", "delete"}
    assert "get" in schema["paths"]["/api/health"]
    assert {"WorkflowCreate", "WorkflowPublic", "HealthPublic"} <= set(schema["components"]["schemas"])
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.text


def test_health_is_503_and_names_the_fix_when_redis_is_down(
    api_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = api_client("admin")  # only admins see the checks
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", UNREACHABLE_REDIS)
    get_settings.cache_clear()

    response = admin.get("/api/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert set(body["checks"]) == {"database", "redis", "workers"}
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["fix"]
    assert body["checks"]["workers"]["ok"] is False


def test_unreachable_database_is_503_with_a_message_not_a_crash(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", UNREACHABLE_POSTGRES)
    get_settings.cache_clear()

    response = client.get("/api/workflows")

    assert response.status_code == 503
    assert "database is unavailable" in response.json()["detail"]


def test_health_is_ok_when_database_redis_and_a_worker_answer(
    api_client, redis_url: str, engine_worker: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = api_client("admin")  # only admins see the checks
    monkeypatch.setenv("FLOWLOOM_REDIS_URL", redis_url)
    get_settings.cache_clear()

    response = admin.get("/api/health")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert all(check["ok"] for check in body["checks"].values())

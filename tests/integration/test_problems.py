"""The REST API answers refusals as RFC 9457 problem+json: code, status, detail and where (node, field)."""

from __future__ import annotations

import uuid

from app.api.runs import INLINE_NEEDS_EDITOR

PROBLEM = "application/problem+json"

START, END = {"id": "start", "type": "start"}, {"id": "done", "type": "end"}


def _definition(*nodes: dict) -> dict:
    chain = [START, *nodes, END]
    edges = [
        {"id": f"e{i}", "source": a["id"], "target": b["id"]}
        for i, (a, b) in enumerate(zip(chain, chain[1:], strict=False))
    ]
    return {"name": "problems", "nodes": chain, "edges": edges}


def test_an_invalid_definition_is_a_422_problem_naming_the_node_and_field(api_client) -> None:
    fetch = {"id": "fetch", "type": "tool.http", "config": {"method": "GET"}}  # no url
    response = api_client("editor").post("/api/runs", json={"definition": _definition(fetch)})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert {k: body[k] for k in ("type", "status", "code", "node_id", "field")} == {
        "type": "https://flowloom.dev/problems/validation_failed",
        "status": 422,
        "code": "validation_failed",
        "node_id": "fetch",
        "field": "config.url",
    }
    assert 'node "fetch": config.url' in body["detail"]
    issue = next(i for i in body["issues"] if i["node_id"] == "fetch")
    assert (issue["code"], issue["field"]) == ("config_invalid", "config.url")


def test_a_definition_that_does_not_parse_is_a_422_problem(api_client) -> None:
    response = api_client("editor").post("/api/runs", json={"definition": {"name": "x", "nodes": "no"}})
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "definition_invalid"


def test_an_unknown_run_is_a_404_problem_with_its_id(api_client) -> None:
    unknown = uuid.uuid4()
    response = api_client("viewer").get(f"/api/runs/{unknown}")
    assert response.status_code == 404 and response.headers["content-type"] == PROBLEM
    body = response.json()
    assert (body["code"], body["status"], body["title"]) == ("run_not_found", 404, "Run not found")
    assert str(unknown) in body["detail"]


def test_an_operators_inline_definition_is_a_403_problem(api_client) -> None:
    response = api_client("operator").post("/api/runs", json={"definition": _definition()})
    assert response.status_code == 403 and response.headers["content-type"] == PROBLEM
    body = response.json()
    assert (body["code"], body["detail"]) == ("inline_needs_editor", INLINE_NEEDS_EDITOR)


def test_a_role_below_the_route_is_a_403_problem(api_client) -> None:
    response = api_client("viewer").post("/api/workflows", json={"name": "w"})
    assert response.status_code == 403 and response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "forbidden"


def test_a_malformed_body_is_a_422_problem_naming_each_field_without_echoing_it(api_client) -> None:
    response = api_client("admin").post("/api/secrets", json={"value": "s3cret-value", "bogus": 1})
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "request_invalid"
    assert {tuple(e["loc"]) for e in body["errors"]} >= {("body", "name"), ("body", "bogus")}
    assert "s3cret-value" not in response.text

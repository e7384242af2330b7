"""Every error carries a code with an HTTP status; the API answers them as RFC 9457 problem+json."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest
from fastapi.testclient import TestClient

import app.api
import app.auth
import engine
from app import problems
from app.api.main import create_api
from engine.errors import (
    DefinitionError,
    ErrorCode,
    FlowloomError,
    Issue,
    StepError,
    ValidationError,
    user_message,
)

# Where errors are defined (the pages' states need a Reflex app, so only the editor's graph of them).
PACKAGES = (engine, app.api, app.auth)
MODULES = ("app.pages.editor.graph", "app.secret_admin")


def _every_flowloom_error() -> list[type[FlowloomError]]:
    """FlowloomError and every subclass defined in the engine, the API, sign-in and the editor."""
    for name in MODULES:
        importlib.import_module(name)
    for package in PACKAGES:
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    found, todo = [], [FlowloomError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_code_has_an_http_status() -> None:
    assert set(problems.STATUS) == set(ErrorCode)
    assert all(400 <= status < 600 for status in problems.STATUS.values())


def test_every_flowloom_error_subclass_has_its_own_code_and_a_status() -> None:
    classes = _every_flowloom_error()
    names = {cls.__name__ for cls in classes}
    assert {"ConfigError", "DefinitionError", "ValidationError", "StepError", "PolicyViolation"} <= names
    assert {"ApprovalError", "SecretsError", "SecretExists", "SignInError", "EditRefused"} <= names
    for cls in classes:
        assert isinstance(cls.code, ErrorCode), cls
        assert cls.code in problems.STATUS, cls
        if cls is not FlowloomError:
            assert cls.code is not FlowloomError.code, f"{cls.__name__} has no default code of its own"


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (DefinitionError("invalid JSON"), "definition_invalid", 422),
        (ValidationError([Issue("x")]), "validation_failed", 422),
        (StepError("upstream down"), "step_failed", 500),
        (FlowloomError("gone", code=ErrorCode.RUN_NOT_FOUND), "run_not_found", 404),
    ],
)
def test_the_code_of_an_error_decides_its_problem_status(
    error: FlowloomError, code: str, status: int
) -> None:
    body = problems.problem_of(error)
    assert (body["code"], body["status"], body["type"]) == (code, status, f"{problems.TYPE_BASE}{code}")
    assert body["detail"] == user_message(error) == str(error)


def test_a_validation_problem_says_where_and_lists_every_issue() -> None:
    issues = [
        Issue(
            "not reachable from the start node", code=ErrorCode.UNREACHABLE, node_id="b", severity="warning"
        ),
        Issue(
            "Field required (tool.http)", code=ErrorCode.CONFIG_INVALID, node_id="fetch", field="config.url"
        ),
    ]
    body = problems.problem_of(ValidationError(issues))
    assert (body["node_id"], body["field"]) == ("fetch", "config.url")  # the first error, not the warning
    assert [i["code"] for i in body["issues"]] == ["unreachable", "config_invalid"]
    assert json.loads(json.dumps(body)) == body  # plain JSON: codes are strings
    assert 'node "fetch": config.url: Field required' in body["detail"]


def test_issue_codes_keep_their_json_value() -> None:
    issue = Issue("m", code=ErrorCode.PORT_TYPE_MISMATCH, node_id="n", edge_id="e")
    assert issue.to_dict()["code"] == "port_type_mismatch" and type(issue.to_dict()["code"]) is str
    assert issue.code == "port_type_mismatch"


# Through the real API app: these refusals come from the HTTP gate, before any database work.


@pytest.fixture
def api() -> TestClient:
    return TestClient(create_api(), base_url="http://127.0.0.1")


def test_an_unknown_api_route_is_a_404_problem(api: TestClient) -> None:
    response = api.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {k: body[k] for k in ("type", "title", "status", "code")} == {
        "type": "https://flowloom.dev/problems/not_found",
        "title": "Not found",
        "status": 404,
        "code": "not_found",
    }


def test_a_cross_site_request_is_a_403_problem(api: TestClient) -> None:
    response = api.get("/api/workflows", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["status"], body["detail"]) == (
        "cross_site_refused",
        403,
        "cross-site request refused",
    )


def test_an_anonymous_call_is_a_401_problem_with_a_bearer_challenge(api: TestClient) -> None:
    response = api.get("/api/workflows")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "sign_in_required"

"""The OpenAPI document of the API: security schemes, the error answers of every route, the workflow
definition schema, and the version from the package metadata.

FastAPI builds the document from the routes; `install` finishes it once, the first time it is asked
for. What it adds is derived from the same tables the server obeys, so a new route is documented
the way it behaves without a line here:

- `security` per operation from `app.auth.policy.API_POLICY`: public routes need nothing; /v1 takes
  API keys only; every other route an API key (`Authorization: Bearer`) or the session cookie.
- Error statuses a route can answer, each as `application/problem+json` (the `Problem` model):
  400 everywhere (the Host check, a body that is not JSON), 401/403/429 for routes that need a caller (the auth gate, the API key's rate limit), 404 for routes
  with path parameters, 422 for routes with parameters or a body, 413 for routes with a body (the
  body cap), plus whatever a route declares itself. /v1 answers errors in OpenAI's shape instead
  (`OpenAIError`, app/api/openai_errors.py), where a malformed request is a 400.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib import metadata
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from app import problems, routes
from app.api.schemas import DEFINITION_MARKER, DEFINITION_REF, IssuePublic
from app.auth.policy import PUBLIC, api_access
from app.auth.sessions import COOKIE_NAME
from engine.definition import WorkflowDefinition
from engine.errors import ErrorCode, title_of

DISTRIBUTION = "flowloom"
API_KEY_SCHEME = "apiKey"
SESSION_SCHEME = "session"
PROBLEM = "Problem"
OPENAI_ERROR = "OpenAIError"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_BODY_METHODS = ("post", "put", "patch")
# The description of a status a route did not describe itself.
_DEFAULTS: dict[int, str] = {
    400: "Bad request: a Host header outside FLOWLOOM_ALLOWED_HOSTS (host_not_allowed), or a body that is "
    "not JSON (request_invalid)",
    401: f"{title_of(ErrorCode.SIGN_IN_REQUIRED)}: no session or API key, or an unknown or revoked key",
    403: f"{title_of(ErrorCode.FORBIDDEN)}: the caller's role (or the API key's) is too low for this",
    404: "Not found: nothing has this id",
    413: f"{title_of(ErrorCode.BODY_TOO_LARGE)}: the body is over the cap (FLOWLOOM_MAX_BODY_BYTES)",
    422: f"{title_of(ErrorCode.REQUEST_INVALID)}: a parameter or the body is invalid (`errors` or `issues` say where)",
    429: f"{title_of(ErrorCode.RATE_LIMITED)}: the API key's requests a minute are used up (see Retry-After)",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}
}


class RequestError(BaseModel):
    """One thing wrong with a request (a 422 for a malformed request)."""

    loc: list[str | int] = Field(description='where: e.g. ["body", "inputs"], ["query", "limit"]')
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`), the answer to every refusal."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="https://flowloom.dev/problems/<code>")
    title: str
    status: int
    detail: str = Field(description="what went wrong, the text the UI shows")
    code: str = Field(description="the ErrorCode, e.g. workflow_not_found, validation_failed, rate_limited")
    node_id: str | None = Field(None, description="the node at fault, when one is")
    field: str | None = Field(None, description="the field at fault, when one is")
    issues: list[IssuePublic] | None = Field(None, description="every issue of a validation error")
    errors: list[RequestError] | None = Field(None, description="each wrong part of a malformed request")


class OpenAIErrorBody(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """An error of the OpenAI-compatible API, in OpenAI's shape."""

    error: OpenAIErrorBody


def package_version() -> str:
    """The installed distribution's version (pyproject.toml), or "0+unknown" when it is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _component_schemas(model: type[BaseModel]) -> dict[str, Any]:
    """`model` and the models it uses as OpenAPI components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    found = schema.pop("$defs", {})
    found[model.__name__] = schema
    return found


def _shape(schema: dict[str, Any]) -> tuple[Any, ...]:
    """What tells two models apart (FastAPI and pydantic render defaults differently)."""
    return schema.get("title"), sorted(schema.get("properties", {})), sorted(schema.get("required", []))


def _add_components(document: dict[str, Any], models: list[type[BaseModel]]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        for name, schema in _component_schemas(model).items():
            if name in schemas and _shape(schemas[name]) != _shape(schema):
                raise RuntimeError(f"two API schemas are named {name!r}; rename one of the models")
            schemas.setdefault(name, schema)  # FastAPI's rendering of a model it already has stays
    document["components"]["securitySchemes"] = {
        API_KEY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: create one on the Settings page and send `Authorization: Bearer <key>`. "
            "A key acts with its own role, never above its owner's.",
        },
        SESSION_SCHEME: {
            "type": "apiKey",
            "in": "cookie",
            "name": COOKIE_NAME,
            "description": "The session cookie the app sets when you sign in (what the pages and this docs "
            "page use). Requests that change something must come from the app's own origin.",
        },
    }


def _error_content(openai: bool) -> dict[str, Any]:
    if openai:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{OPENAI_ERROR}"}}}
    return {problems.MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{PROBLEM}"}}}


def _declares_its_own_model(response: dict[str, Any]) -> bool:
    """Whether a route documented this error answer with a model of its own (not FastAPI's 422 model)."""
    for media in (response.get("content") or {}).values():
        ref = (media.get("schema") or {}).get("$ref", "")
        if ref and not ref.endswith("/HTTPValidationError"):
            return True
    return False


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses the gate, the body cap and FastAPI's own checks can answer for this route."""
    found: set[int] = {400}  # a Host outside FLOWLOOM_ALLOWED_HOSTS, a body that is not JSON
    access = api_access(method, path)
    if access is not None and access != PUBLIC:
        found |= {401, 403, 429}
    if "{" in path:
        found.add(404)
    if operation.get("parameters") or "requestBody" in operation:
        found.add(422)
    if "requestBody" in operation or method.lower() in _BODY_METHODS:
        found.add(413)
    return found


def _document_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    openai = path.startswith(routes.OPENAI_PREFIX + "/")
    access = api_access(method, path)
    if access == PUBLIC:
        operation["security"] = []  # anyone (a signed webhook checks its own signature)
    elif openai:
        operation["security"] = [{API_KEY_SCHEME: []}]
    else:
        operation["security"] = [{API_KEY_SCHEME: []}, {SESSION_SCHEME: []}]
    responses: dict[str, Any] = operation.setdefault("responses", {})
    wanted = _statuses(path, method, operation)
    if openai and (422 in wanted or "422" in responses):
        responses.pop("422", None)
        wanted.discard(422)
        wanted.add(400)  # /v1 answers a malformed request 400, as OpenAI does
    for status in sorted(wanted):
        responses.setdefault(str(status), {})
    for key, response in responses.items():
        if not key.isdigit() or int(key) < 400:
            continue
        status = int(key)
        described = response.get("description")
        if not described or described in ("Validation Error", "Unauthorized"):
            response["description"] = _DEFAULTS.get(status, "Refused")
        if _declares_its_own_model(response):
            continue  # e.g. /api/health's 503 answers its HealthPublic report, not a problem
        response["content"] = _error_content(openai)
        if status == 429:
            response["headers"] = {**_RETRY_AFTER, **response.get("headers", {})}
    operation["responses"] = dict(sorted(responses.items()))


def _refer_to_definition(value: Any) -> Any:
    """Every schema marked as a workflow definition becomes a reference to the WorkflowDefinition component."""
    if isinstance(value, dict):
        if value.get(DEFINITION_MARKER) is True:
            kept = {k: v for k, v in value.items() if k not in (DEFINITION_MARKER, "type")}
            return {"$ref": DEFINITION_REF, **kept}
        return {k: _refer_to_definition(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_refer_to_definition(v) for v in value]
    return value


def _drop_unused(document: dict[str, Any], names: tuple[str, ...]) -> None:
    """Remove FastAPI's own error models once nothing refers to them any more."""
    schemas = document["components"]["schemas"]
    for name in names:
        ref = f"#/components/schemas/{name}"
        rest = {k: v for k, v in schemas.items() if k not in names}
        if ref not in repr(document["paths"]) and ref not in repr(rest):
            schemas.pop(name, None)


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """The document FastAPI built, with security, error answers, the definition schema and the version."""
    document = _refer_to_definition(copy.deepcopy(document))
    document["info"]["version"] = package_version()
    _add_components(document, [Problem, OpenAIError, WorkflowDefinition])
    if DEFINITION_REF.rsplit("/", 1)[-1] not in document["components"]["schemas"]:
        raise RuntimeError("the WorkflowDefinition component is missing")
    for path, item in document["paths"].items():
        for method in _METHODS:
            if method in item:
                _document_operation(path, method.upper(), item[method])
    _drop_unused(document, ("HTTPValidationError", "ValidationError"))
    return document


def install(api: FastAPI) -> None:
    """Serve the finished document at /api/openapi.json (built once, on first request)."""
    build: Callable[[], dict[str, Any]] = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = finish(build())  # build() caches FastAPI's own; ours replaces it
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]

"""/api/secrets: create, rotate and delete secrets (admins only); values are write-only.

No answer carries a value or ciphertext, not even a validation error: request bodies are parsed
here, and their errors name the field without echoing what was sent.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypeVar

import pydantic
from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from app import secret_admin
from app.api.callers import Admin, client_ip
from engine import secrets
from engine.errors import ErrorCode, FlowloomError

router = APIRouter(tags=["secrets"])
Body = TypeVar("Body", bound=BaseModel)
_NAME = Field(pattern=secrets.NAME_PATTERN, description="letters, digits, '_', '.', '-'; up to 100")
_DESTINATIONS = Field(
    default=None,
    max_length=100,
    description="hosts (api.example.com, *.example.com, host:port) or URL prefixes; empty = nowhere",
)
_NODE_TYPES = Field(default=None, max_length=100, description="node types that may use it; empty = any")


class SecretCreate(BaseModel):
    """A new secret: its value is stored encrypted and never shown again."""

    model_config = ConfigDict(extra="forbid")

    name: str = _NAME
    value: SecretStr = Field(min_length=1, max_length=65_536)
    description: str = Field("", max_length=500)
    allowed_destinations: list[str] | None = _DESTINATIONS
    allowed_node_types: list[str] | None = _NODE_TYPES


class SecretUpdate(BaseModel):
    """Rotate the value and/or change description and bindings; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    value: SecretStr | None = Field(None, min_length=1, max_length=65_536)
    description: str | None = Field(None, max_length=500)
    allowed_destinations: list[str] | None = _DESTINATIONS
    allowed_node_types: list[str] | None = _NODE_TYPES


class WorkflowUse(BaseModel):
    id: str
    name: str


class SecretPublic(BaseModel):
    """A secret without its value."""

    name: str
    description: str
    allowed_destinations: list[str]
    allowed_node_types: list[str]
    created_by: str
    created_at: datetime | None
    rotated_by: str
    rotated_at: datetime | None
    source: str = Field(description="store, or env (opted in with FLOWLOOM_ENV_SECRETS)")
    env: str = Field("", description="the environment variable of an env secret")
    used_by: list[WorkflowUse] = Field(description="workflows whose latest version uses it")


def _public(row: secret_admin.SecretRow) -> SecretPublic:
    return SecretPublic(
        name=row.name, description=row.description, allowed_destinations=row.allowed_destinations,
        allowed_node_types=row.allowed_node_types, created_by=row.created_by, created_at=row.created_at,
        rotated_by=row.rotated_by, rotated_at=row.rotated_at, source=row.source, env=row.env,
        used_by=[WorkflowUse(id=w.id, name=w.name) for w in row.used_by],
    )  # fmt: skip


def _one(name: str) -> SecretPublic:
    for row in secret_admin.list_rows():
        if row.name == name:
            return _public(row)
    raise FlowloomError(f"secret {name!r} not found", code=ErrorCode.SECRET_NOT_FOUND)


async def _parse(request: Request, model: type[Body]) -> Body:
    """The body as `model`; 422 naming each wrong field, never repeating the submitted values."""
    try:
        data: Any = json.loads(await request.body() or b"null")
    except ValueError:
        raise FlowloomError("the body is not JSON", code=ErrorCode.REQUEST_INVALID) from None
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        # Answered like FastAPI's own request errors: locations and messages, never the input.
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


@router.get("/secrets", response_model=list[SecretPublic])
def list_secrets(principal: Admin) -> list[SecretPublic]:
    """Every secret with its bindings, who created and rotated it, and which workflows use it."""
    return [_public(r) for r in secret_admin.list_rows()]


@router.post(
    "/secrets",
    response_model=SecretPublic,
    status_code=status.HTTP_201_CREATED,
    responses={409: {}, 422: {}},
    openapi_extra=_body_doc(SecretCreate),
)
async def create_secret(request: Request, principal: Admin) -> SecretPublic:
    """Store a new secret; the value is write-only."""
    body = await _parse(request, SecretCreate)

    def work() -> SecretPublic:
        # SecretExists answers 409, any other SecretsError 422 (app/problems.py).
        secret_admin.create(
            principal.actor, body.name, body.value.get_secret_value(), description=body.description,
            allowed_destinations=body.allowed_destinations, allowed_node_types=body.allowed_node_types,
            ip=client_ip(request),
        )  # fmt: skip
        return _one(body.name)

    return await run_in_threadpool(work)


@router.put(
    "/secrets/{name}",
    response_model=SecretPublic,
    responses={404: {}, 422: {}},
    openapi_extra=_body_doc(SecretUpdate),
)
async def update_secret(name: str, request: Request, principal: Admin) -> SecretPublic:
    """Rotate a secret's value and/or change its description and bindings."""
    body = await _parse(request, SecretUpdate)

    def work() -> SecretPublic:
        changed = secret_admin.update(
            principal.actor, name, value=body.value.get_secret_value() if body.value else None,
            description=body.description, allowed_destinations=body.allowed_destinations,
            allowed_node_types=body.allowed_node_types, ip=client_ip(request),
        )  # fmt: skip
        if changed is None:
            raise FlowloomError(_absent(name), code=ErrorCode.SECRET_NOT_FOUND)
        return _one(name)

    return await run_in_threadpool(work)


@router.delete("/secrets/{name}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}})
def delete_secret(name: str, request: Request, principal: Admin) -> Response:
    """Delete a secret; workflows that use it fail with 'not set' until it is stored again."""
    deleted = secret_admin.delete(principal.actor, name, ip=client_ip(request))
    if not deleted:
        raise FlowloomError(_absent(name), code=ErrorCode.SECRET_NOT_FOUND)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _absent(name: str) -> str:
    if name in {e.name for e in secrets.list_env_secrets()}:
        return f"secret {name!r} comes from the environment (FLOWLOOM_ENV_SECRETS); change it there"
    return f"secret {name!r} not found"

"""/api/secrets: create, rotate and delete secrets (admins only); values are write-only.

No answer carries a value or ciphertext, not even a validation error: request bodies are parsed
here, and their errors name the field without echoing what was sent.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic
from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from app import secret_admin
from app.api.callers import Admin, client_ip
from app.secret_admin import SecretRow
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


def _one(name: str, workspace_id: str) -> SecretRow:
    for row in secret_admin.list_rows(workspace_id):
        if row.name == name:
            return row
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


@router.get("/secrets", response_model=list[SecretRow])
def list_secrets(principal: Admin) -> list[SecretRow]:
    """The current workspace's secrets with their bindings, who created and rotated each, and which
    of its workflows use it."""
    return secret_admin.list_rows(principal.workspace_id)


@router.post(
    "/secrets",
    response_model=SecretRow,
    status_code=status.HTTP_201_CREATED,
    responses={409: {}, 422: {}},
    openapi_extra=_body_doc(SecretCreate),
)
async def create_secret(request: Request, principal: Admin) -> SecretRow:
    """Store a new secret; the value is write-only."""
    body = await _parse(request, SecretCreate)

    def work() -> SecretRow:
        # SecretExists answers 409, any other SecretsError 422 (app/problems.py).
        secret_admin.create(
            principal.actor, body.name, body.value.get_secret_value(), description=body.description,
            allowed_destinations=body.allowed_destinations, allowed_node_types=body.allowed_node_types,
            ip=client_ip(request), workspace_id=principal.workspace_id,
        )  # fmt: skip
        return _one(body.name, principal.workspace_id)

    return await run_in_threadpool(work)


@router.put(
    "/secrets/{name}",
    response_model=SecretRow,
    responses={404: {}, 422: {}},
    openapi_extra=_body_doc(SecretUpdate),
)
async def update_secret(name: str, request: Request, principal: Admin) -> SecretRow:
    """Rotate a secret's value and/or change its description and bindings."""
    body = await _parse(request, SecretUpdate)

    def work() -> SecretRow:
        changed = secret_admin.update(
            principal.actor, name, value=body.value.get_secret_value() if body.value else None,
            description=body.description, allowed_destinations=body.allowed_destinations,
            allowed_node_types=body.allowed_node_types, ip=client_ip(request),
            workspace_id=principal.workspace_id,
        )  # fmt: skip
        if changed is None:
            raise FlowloomError(_absent(name), code=ErrorCode.SECRET_NOT_FOUND)
        return _one(name, principal.workspace_id)

    return await run_in_threadpool(work)


@router.delete("/secrets/{name}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}})
def delete_secret(name: str, request: Request, principal: Admin) -> Response:
    """Delete a secret; workflows that use it fail with 'not set' until it is stored again."""
    deleted = secret_admin.delete(
        principal.actor, name, ip=client_ip(request), workspace_id=principal.workspace_id
    )
    if not deleted:
        raise FlowloomError(_absent(name), code=ErrorCode.SECRET_NOT_FOUND)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _absent(name: str) -> str:
    if name in {e.name for e in secrets.list_env_secrets()}:
        return f"secret {name!r} comes from the environment (FLOWLOOM_ENV_SECRETS); change it there"
    return f"secret {name!r} not found"

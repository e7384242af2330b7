"""/api/secrets: create, rotate and delete secrets (admins only); values are write-only.

No answer carries a value or ciphertext, not even a validation error: request bodies are parsed
here, and their errors name the field without echoing what was sent.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypeVar

import pydantic
from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from app import secret_admin
from app.api.callers import Admin, client_ip
from engine import secrets

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
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"secret {name!r} not found")


async def _parse(request: Request, model: type[Body]) -> Body:
    """The body as `model`; 422 naming each wrong field, never repeating the submitted values."""
    try:
        data: Any = json.loads(await request.body() or b"null")
    except ValueError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="the body is not JSON") from None
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=problems) from None


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
        try:
            secret_admin.create(
                principal.actor, body.name, body.value.get_secret_value(), description=body.description,
                allowed_destinations=body.allowed_destinations, allowed_node_types=body.allowed_node_types,
                ip=client_ip(request),
            )  # fmt: skip
        except secrets.SecretExists as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        except secrets.SecretsError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
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
        try:
            changed = secret_admin.update(
                principal.actor, name, value=body.value.get_secret_value() if body.value else None,
                description=body.description, allowed_destinations=body.allowed_destinations,
                allowed_node_types=body.allowed_node_types, ip=client_ip(request),
            )  # fmt: skip
        except secrets.SecretsError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
        if changed is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=_absent(name))
        return _one(name)

    return await run_in_threadpool(work)


@router.delete("/secrets/{name}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}})
def delete_secret(name: str, request: Request, principal: Admin) -> Response:
    """Delete a secret; workflows that use it fail with 'not set' until it is stored again."""
    try:
        deleted = secret_admin.delete(principal.actor, name, ip=client_ip(request))
    except secrets.SecretsError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    if not deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=_absent(name))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _absent(name: str) -> str:
    if name in {e.name for e in secrets.list_env_secrets()}:
        return f"secret {name!r} comes from the environment (FLOWLOOM_ENV_SECRETS); change it there"
    return f"secret {name!r} not found"

"""Managing secrets for admins, shared by the REST API and the Secrets page.

Create, rotate, delete with an audit entry each (never the value), and the list with who created
and rotated each secret and which workflows use it. Values go in and never come out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from pydantic import Field

from app.db import database_url
from engine import audit, secrets
from engine.contract import all_node_types
from engine.secret_usage import WorkflowRef, workflows_by_secret
from models.db import get_engine


@dataclass(frozen=True)
class SecretRow:
    """A secret as admins see it: bindings, provenance, usage; no value."""

    name: str
    description: str
    allowed_destinations: list[str]
    allowed_node_types: list[str]
    created_by: str
    created_at: datetime | None
    rotated_by: str
    rotated_at: datetime | None
    source: Annotated[str, Field(description="store, or env (opted in with FLOWLOOM_ENV_SECRETS)")]
    env: Annotated[str, Field(description="the environment variable of an env secret")]
    used_by: Annotated[list[WorkflowRef], Field(description="workflows whose latest version uses it")] = (
        field(default_factory=list)
    )


def list_rows(workspace_id: str | uuid.UUID) -> list[SecretRow]:
    """The workspace's stored secrets, then opted-in environment secrets (the instance's, the same
    in every workspace), each with the workspace's workflows that use it."""
    with get_engine(database_url()).connect() as conn:
        usage = workflows_by_secret(conn, workspace_id=workspace_id)
    stored = secrets.list_secrets(workspace_id=workspace_id)
    taken = {s.name for s in stored}
    infos = stored + [e for e in secrets.list_env_secrets() if e.name not in taken]
    return [
        SecretRow(
            name=i.name,
            description=i.description,
            allowed_destinations=i.allowed_destinations,
            allowed_node_types=i.allowed_node_types,
            created_by=i.created_by,
            created_at=i.created_at,
            rotated_by=i.rotated_by,
            rotated_at=i.rotated_at,
            source=i.source,
            env=i.env,
            used_by=usage.get(i.name, []),
        )  # fmt: skip
        for i in infos
    ]


def check_node_types(names: list[str] | None) -> list[str] | None:
    """The names if each is a registered node type; SecretsError listing the known ones otherwise."""
    if not names:
        return names
    known = {n.type for n in all_node_types()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise secrets.SecretsError(
            f"allowed_node_types: unknown node type(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return names


def _record(actor: str, action: str, info: secrets.SecretInfo, ip: str, **extra: object) -> None:
    audit.record_now(
        actor=actor, action=action, target_type="secret", target_id=info.name, ip=ip,
        details={"allowed_destinations": info.allowed_destinations,
                 "allowed_node_types": info.allowed_node_types, **extra},
    )  # fmt: skip


def create(
    actor: str,
    name: str,
    value: str,
    *,
    description: str = "",
    allowed_destinations: list[str] | None = None,
    allowed_node_types: list[str] | None = None,
    ip: str = "",
    workspace_id: str | uuid.UUID,
) -> secrets.SecretInfo:
    """Store a new secret in the workspace as `actor`; SecretExists / SecretsError say what is wrong."""
    info = secrets.create_secret(
        name, value, description=description, allowed_destinations=allowed_destinations,
        allowed_node_types=check_node_types(allowed_node_types), actor=actor, workspace_id=workspace_id,
    )  # fmt: skip
    _record(actor, "secret.created", info, ip, workspace_id=str(workspace_id))
    return info


def update(
    actor: str,
    name: str,
    *,
    value: str | None = None,
    description: str | None = None,
    allowed_destinations: list[str] | None = None,
    allowed_node_types: list[str] | None = None,
    ip: str = "",
    workspace_id: str | uuid.UUID,
) -> secrets.SecretInfo | None:
    """Rotate the value and/or change the bindings as `actor`; None when the workspace has no such secret."""
    info = secrets.update_secret(
        name, value=value or None, description=description, allowed_destinations=allowed_destinations,
        allowed_node_types=check_node_types(allowed_node_types), actor=actor, workspace_id=workspace_id,
    )  # fmt: skip
    if info is not None:
        _record(actor, "secret.rotated" if value else "secret.updated", info, ip, value_changed=bool(value))
    return info


def delete(actor: str, name: str, *, ip: str = "", workspace_id: str | uuid.UUID) -> bool:
    """Delete the workspace's secret `name` as `actor`; False when there was none."""
    if not secrets.delete_secret(name, workspace_id=workspace_id):
        return False
    audit.record_now(actor=actor, action="secret.deleted", target_type="secret", target_id=name, ip=ip)
    return True

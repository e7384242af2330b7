"""Request and response models of the REST API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from engine.workflows import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH

WorkflowName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH)
]


class WorkflowCreate(BaseModel):
    """A new workflow: a name and an optional description."""

    model_config = ConfigDict(extra="forbid")

    name: WorkflowName
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=DESCRIPTION_MAX_LENGTH)
    ] = ""


class WorkflowPublic(BaseModel):
    """A workflow as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    latest_version: int = Field(description="0 while no version has been saved")
    created_at: datetime
    updated_at: datetime


class CheckPublic(BaseModel):
    """The result of one health check, with a fix when it failed."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""


class HealthPublic(BaseModel):
    """Overall health: "ok" when every check passed. Only admins get the checks and versions."""

    status: Literal["ok", "degraded"]
    checks: dict[str, CheckPublic] | None = Field(None, description="admins only")
    versions: dict[str, str] | None = Field(None, description="admins only")

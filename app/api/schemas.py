"""Request and response models of the REST API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from engine.workflows import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH

WorkflowName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH)
]
WorkflowDescription = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=DESCRIPTION_MAX_LENGTH)
]
# A workflow definition travels as a JSON object that engine.parse.parse_dict checks (sizes, counts,
# then the model, with messages that say where); the schema documents it as the WorkflowDefinition
# component (docs/workflow-schema.json), which app.api.openapi_doc adds to the document.
# (pydantic cannot emit a $ref to a component it does not know: the marker is replaced by it there.)
DEFINITION_REF = "#/components/schemas/WorkflowDefinition"
DEFINITION_MARKER = "x-flowloom-definition"
Definition = Annotated[dict[str, Any], WithJsonSchema({"type": "object", DEFINITION_MARKER: True})]


class WorkflowCreate(BaseModel):
    """A new workflow: a name, an optional description and, optionally, its first definition (version 1)."""

    model_config = ConfigDict(extra="forbid")

    name: WorkflowName
    description: WorkflowDescription = ""
    definition: Definition | None = Field(
        None,
        description="saved as version 1 (its name becomes the workflow's); without it the workflow has no version",
    )
    note: str = Field("", max_length=500, description="the note of version 1")


class WorkflowUpdate(BaseModel):
    """A new name and/or description; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    name: WorkflowName | None = None
    description: WorkflowDescription | None = None
    max_concurrent_runs: int | None = Field(
        None, ge=1, le=1_000_000,
        description="how many runs of this workflow may run at once (more wait queued); null: only the "
        "workspace's limit. Changing it needs the workflow's own workspace (not a share).",
    )  # fmt: skip


class WorkflowPublic(BaseModel):
    """A workflow as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    latest_version: int = Field(description="0 while no version has been saved")
    created_at: datetime
    updated_at: datetime
    max_concurrent_runs: int | None = Field(
        None, description="runs of it at once; null: only the workspace's limit"
    )
    shared_with_you: bool = Field(
        False, description="reached through a share (with you or your workspace), not your workspace's own"
    )
    share_permission: Literal["read", "edit"] | None = Field(
        None, description="what the share allows (null for your workspace's own workflows)"
    )


class IssuePublic(BaseModel):
    """One thing validation found, located by node, edge and field (each null when it does not apply)."""

    message: str
    code: str = Field(description="an ErrorCode, e.g. unknown_node_type, config_invalid, inputs_invalid")
    node_id: str | None = None
    edge_id: str | None = None
    field: str | None = Field(None, description='dotted, e.g. "config.url", "inputs.properties.n.type"')
    severity: Literal["error", "warning"]


class ValidationPublic(BaseModel):
    """Every issue at once; the plan once there is no error (warnings allowed)."""

    ok: bool = Field(description="no issue is an error")
    issues: list[IssuePublic]
    plan: list[list[str]] | None = Field(
        description="the execution plan's phases of node ids (every node of a phase may run once the "
        "earlier phases are done; for a state machine an outline); null while there are errors"
    )


class ValidateRequest(BaseModel):
    """A definition to check (nothing is saved or run)."""

    model_config = ConfigDict(extra="forbid")

    definition: Definition


class VersionCreate(BaseModel):
    """A definition to save as the workflow's next version."""

    model_config = ConfigDict(extra="forbid")

    definition: Definition
    note: str = Field("", max_length=500, description="what changed, for the version history")


class VersionSummary(BaseModel):
    """A saved version as the history lists it."""

    version: int
    note: str
    nodes: int = Field(description="how many nodes the definition has")
    created_at: datetime
    status: str = Field(
        "", description="draft, in_review, approved, rejected, published or superseded (four-eyes publishing)"
    )


class ReviewPublic(BaseModel):
    """A version's place in the review after a submit, approve, reject or publish."""

    workflow_id: uuid.UUID
    version: int
    status: str = Field(description="draft, in_review, approved, rejected, published or superseded")
    created_by: uuid.UUID | None = Field(description="the author (who may not approve it)")
    submitted_by: uuid.UUID | None
    submitted_at: datetime | None
    reviewed_by: uuid.UUID | None
    reviewed_at: datetime | None
    review_note: str
    published_version: int | None = Field(description="the version triggers and operators run now")
    require_review: bool = Field(description="the workspace requires a second editor's approval")


class VersionPage(BaseModel):
    """Saved versions, newest first."""

    versions: list[VersionSummary]
    next_before: int | None = Field(
        description="pass as `before` for the next (older) page; null on the last page"
    )


class VersionPublic(VersionSummary):
    """A saved version with its definition."""

    workflow_id: uuid.UUID
    definition: Definition


class VersionSaved(VersionPublic):
    """The version just saved, and what validation says of it (a definition with errors is saved too,
    as the editor saves drafts; starting a run of it is refused with these issues)."""

    validation: ValidationPublic


class PortPublic(BaseModel):
    """A typed input or output port."""

    type: str = Field(description="any, json, text, number, boolean, messages, embedding or documents")
    required: bool
    description: str


class NodeTypePublic(BaseModel):
    """A node type a definition may use, with the JSON Schema of its config."""

    type: str
    category: str
    label: str
    description: str
    icon: str
    config_schema: dict[str, Any] = Field(description="JSON Schema of the node's `config`")
    inputs: dict[str, PortPublic]
    outputs: dict[str, PortPublic] = Field(description="the declared outputs (see dynamic_outputs)")
    branching: bool = Field(description="only the output ports present in a result fire")
    dynamic_outputs: bool = Field(
        description="output port names also come from the config (branches, actions)"
    )
    dynamic_inputs: bool = Field(
        False, description="input port names also come from the config (a sub-workflow's inputs)"
    )
    calls_workflow: bool = Field(
        False, description="it runs another saved workflow as a child run (config: workflow_id, version)"
    )
    expression_fields: list[str] = Field(description="config fields holding an expression the node evaluates")
    unrendered_fields: list[str] = Field(description="config fields passed as written, never templated")


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
    unavailable: list[str] | None = Field(
        None,
        description="the required parts that failed (database, redis, workers); names only, for everyone",
    )
    checks: dict[str, CheckPublic] | None = Field(None, description="admins only")
    versions: dict[str, str] | None = Field(None, description="admins only")

"""The `human.approval` node: suspend the run until people decide, then fire the chosen action."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.contract import (
    EXPIRED_BY,
    ErrorCode,
    Port,
    StepContext,
    StepError,
    Suspend,
    check_unique_names,
    register,
)

_NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"


class FormField(BaseModel):
    """One field of the form an approver fills in."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64, pattern=_NAME, description="Key of the value in the decision's form")
    label: str = Field("", description="Label shown to the approver; empty = the name")
    kind: Literal["text", "number", "select", "boolean", "json"] = Field("text", description="Input kind")
    options: list[str] = Field(default_factory=list, description="Choices of a select field")
    required: bool = Field(False, description="The approver must fill it in")
    default: Any = Field(None, description="Value used when the approver leaves it empty")

    @model_validator(mode="after")
    def _options_fit_kind(self) -> FormField:
        if self.kind == "select" and not self.options:
            raise ValueError(f"field {self.name!r}: a select field needs options")
        if self.kind != "select" and self.options:
            raise ValueError(f"field {self.name!r}: options are only for select fields")
        if not _is_empty(self.default):
            coerce_value(self, self.default)  # a ValueError here reports the bad default
        return self

    @property
    def display(self) -> str:
        return self.label or self.name


class Approvers(BaseModel):
    """Who may decide: named users and/or members of roles (both empty = anyone allowed to approve)."""

    model_config = ConfigDict(extra="forbid")

    users: list[str] = Field(default_factory=list, description="User emails or ids")
    roles: list[str] = Field(default_factory=list, description="Role names")


class Action(BaseModel):
    """One button of the approval; its name is the output port that fires."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64, pattern=_NAME, description="Output port fired by this action")
    label: str = Field(min_length=1, description="Button label")


class HumanApprovalConfig(BaseModel):
    """Config of `human.approval`."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field("Approval needed", min_length=1, max_length=300, description="Title (templated)")
    body: str = Field(
        "",
        description="What the approver should know, in Markdown (templated)",
        json_schema_extra={"format": "multiline"},
    )
    fields: list[FormField] = Field(default_factory=list, description="Form the approver fills in")
    approvers: Approvers = Field(default_factory=Approvers, description="Who may decide")
    quorum: int = Field(1, ge=1, description="Decisions needed before the step continues")
    deadline_s: float | None = Field(
        None, gt=0, description="Seconds until the request expires; empty = never"
    )
    on_expiry: Literal["reject", "approve", "escalate"] = Field(
        "reject", description="What happens at the deadline"
    )
    escalate_to_role: str | None = Field(None, description="Role that receives the request when it escalates")
    actions: list[Action] = Field(
        default_factory=lambda: [
            Action(name="approved", label="Approve"),
            Action(name="rejected", label="Reject"),
        ],
        min_length=1,
        description="Buttons offered; each action name is an output port",
    )

    @field_validator("fields", "actions")
    @classmethod
    def _unique_names(cls, items: list[Any]) -> list[Any]:
        check_unique_names([i.name for i in items])
        return items

    @model_validator(mode="after")
    def _consistent(self) -> HumanApprovalConfig:
        users, roles = self.approvers.users, self.approvers.roles
        if users and not roles and self.quorum > len(users):
            raise ValueError(f"quorum: {self.quorum} decisions needed but only {len(users)} approvers listed")
        if self.on_expiry == "escalate" and not self.escalate_to_role:
            raise ValueError("escalate_to_role: set the role to escalate to, or choose another on_expiry")
        action = {"approve": "approved", "reject": "rejected"}.get(self.on_expiry)
        if self.deadline_s is not None and action and action not in self.action_names:
            raise ValueError(f"on_expiry: {self.on_expiry} fires the action {action!r}; add it to actions")
        return self

    @property
    def action_names(self) -> list[str]:
        return [a.name for a in self.actions]


def approval_outputs(cfg: BaseModel) -> dict[str, Port]:
    """One output port per action."""
    ports = {}
    # Items may be plain dicts when the validator built the config with model_construct.
    for a in getattr(cfg, "actions", None) or []:
        a = a if isinstance(a, Action) else Action.model_construct(**a)
        ports[a.name] = Port("object", description=a.label)
    return ports


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"expected a number, got {value!r}")
    return int(value) if isinstance(value, float) and value.is_integer() else value


def coerce_value(field: FormField, value: Any) -> Any:
    """The value of a filled-in field as its kind says; ValueError when it does not fit."""
    if field.kind == "text":
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__}")
        return value
    if field.kind == "number":
        return _number(value)
    if field.kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(f"expected true or false, got {value!r}")
    if field.kind == "select":
        if value not in field.options:
            raise ValueError(f"{value!r} is not one of the options: {', '.join(field.options)}")
        return value
    if isinstance(value, str):  # json: the form sends text
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a JSON value: {exc}") from None
    return value


def validate_form(fields: list[FormField], form: Any, *, enforce_required: bool = True) -> dict[str, Any]:
    """The submitted form checked against the fields; StepError names the first bad field."""
    if not isinstance(form, Mapping):
        raise StepError(
            f"form: expected an object of field values, got {type(form).__name__}",
            retryable=False,
            code=ErrorCode.APPROVAL_INVALID,
            field="form",
        )
    known = {f.name for f in fields}
    unknown = sorted(str(k) for k in form if k not in known)
    if unknown:
        raise StepError(
            f"form.{unknown[0]}: unknown field; expected: {', '.join(sorted(known)) or 'no fields'}",
            retryable=False,
            code=ErrorCode.APPROVAL_INVALID,
            field=f"form.{unknown[0]}",
        )
    clean: dict[str, Any] = {}
    for f in fields:
        value = form.get(f.name)
        if _is_empty(value):
            value = f.default
        if _is_empty(value):
            if f.required and enforce_required:
                raise StepError(f"form.{f.name}: {f.display!r} is required", retryable=False,
                                code=ErrorCode.APPROVAL_INVALID, field=f"form.{f.name}")  # fmt: skip
            clean[f.name] = None
            continue
        try:
            clean[f.name] = coerce_value(f, value)
        except ValueError as exc:
            raise StepError(f"form.{f.name}: {exc}", retryable=False, code=ErrorCode.APPROVAL_INVALID,
                            field=f"form.{f.name}") from None  # fmt: skip
    return clean


def resume_outputs(
    cfg: HumanApprovalConfig, decision: Mapping[str, Any], *, expired: bool = False
) -> dict[str, Any]:
    """The step's outputs for a decision: exactly the chosen action's port fires.

    `decision` is {"action", "form", "comment", "decided_by", "data"}; the engine copies "data"
    from the step's input. `expired=True` (with `expiry_decision`) does not insist on required fields.
    """
    action = decision.get("action")
    if action not in cfg.action_names:
        raise StepError(f"action: {action!r} is not one of {', '.join(cfg.action_names)}", retryable=False,
                        code=ErrorCode.APPROVAL_INVALID, field="action")  # fmt: skip
    form = validate_form(cfg.fields, decision.get("form") or {}, enforce_required=not expired)
    value = {
        "action": action,
        "form": form,
        "comment": decision.get("comment") or "",
        "decided_by": decision.get("decided_by"),
        "data": decision.get("data"),
    }
    return {action: value}


def expiry_decision(cfg: HumanApprovalConfig) -> dict[str, Any] | None:
    """The decision applied at the deadline (for `resume_outputs(..., expired=True)`); None = escalate."""
    action = {"approve": "approved", "reject": "rejected"}.get(cfg.on_expiry)
    if action is None:
        return None
    return {"action": action, "form": {}, "comment": "the deadline passed", "decided_by": EXPIRED_BY}


@register(
    "human.approval",
    category="human",
    label="Approval",
    config=HumanApprovalConfig,
    inputs={"in": Port("any", required=False, description="data shown to the approver and passed on")},
    outputs={
        "approved": Port("object", description="Approve"),
        "rejected": Port("object", description="Reject"),
    },
    icon="user-check",
    branching=True,
    dynamic_outputs=approval_outputs,
    resume=resume_outputs,
    on_expiry=expiry_decision,
)
def human_approval(ctx: StepContext, cfg: HumanApprovalConfig, inputs: dict[str, Any]) -> Suspend:
    """Ask people to decide; the run waits without holding a worker."""
    return Suspend(
        "approval",
        {
            "title": cfg.title,
            "body": cfg.body,
            "fields": [f.model_dump(mode="json") for f in cfg.fields],
            "approvers": cfg.approvers.model_dump(mode="json"),
            "quorum": cfg.quorum,
            "deadline_s": cfg.deadline_s,
            "on_expiry": cfg.on_expiry,
            "escalate_to_role": cfg.escalate_to_role,
            "actions": [a.model_dump(mode="json") for a in cfg.actions],
            "data": inputs.get("in"),
        },
    )

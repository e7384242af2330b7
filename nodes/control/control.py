"""Control-flow node types: start, end, condition, merge and delay."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.contract import (
    FlowloomError,
    JoinMode,
    Port,
    StepContext,
    StepError,
    Suspend,
    check_unique_names,
    register,
)

# A delay up to this long sleeps inside the step; a longer one suspends the run on a timer.
SHORT_DELAY_S = 5.0

_IN = {"in": Port("any", description="the value coming in")}
_OUT = {"out": Port("any", description="the value going out")}


@register(
    "start",
    category="control",
    label="Start",
    # `any`, not object: an edge from start often only orders the first steps (a text node whose
    # text comes from {{ input.x }}), and a typed input must not refuse that.
    outputs={"out": Port("any", description="the run's inputs (an object)")},
    icon="play",
)
def start(ctx: StepContext, cfg: BaseModel, inputs: dict[str, Any]) -> dict[str, Any]:
    """Where a run begins: passes the run's inputs on."""
    return {"out": dict(ctx.run_inputs)}


@register("end", category="control", label="End", inputs=_IN, outputs=_OUT, icon="flag")
def end(ctx: StepContext, cfg: BaseModel, inputs: dict[str, Any]) -> dict[str, Any]:
    """Where a run finishes: its input becomes the run's output."""
    return {"out": inputs.get("in")}


class Branch(BaseModel):
    """One named way out of a multi-way condition."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$",
        description="Output port name of this branch",
    )
    expression: str = Field(
        min_length=1,
        description="Jinja2 expression without braces, e.g. value.score > 0.8; the first true branch fires",
    )


class ConditionConfig(BaseModel):
    """Config of `condition`: one true/false test, or several named branches."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        "",
        description=(
            "Jinja2 expression without braces, e.g. value.status == 'ok'; "
            "`value` is the input. Fires `true` or `false`"
        ),
    )
    branches: list[Branch] = Field(
        default_factory=list,
        description="Multi-way: named branches tested in order; the first true one fires, else `default`",
    )

    @field_validator("branches")
    @classmethod
    def _unique_branch_names(cls, branches: list[Branch]) -> list[Branch]:
        names = [b.name for b in branches]
        if "default" in names:
            raise ValueError("'default' is reserved for the branch taken when no other matches")
        check_unique_names(names, "branch names")
        return branches

    @model_validator(mode="after")
    def _expression_or_branches(self) -> ConditionConfig:
        if not self.branches and not self.expression.strip():
            raise ValueError("set `expression` (true/false) or add `branches` (multi-way)")
        return self


def condition_outputs(cfg: BaseModel) -> dict[str, Port]:
    """Output ports of a condition: its branch names plus `default`, or `true`/`false`."""
    branches = getattr(cfg, "branches", None) or []
    if not branches:
        return {}
    # Items may be plain dicts when the validator built the config with model_construct.
    ports = {}
    for b in branches:
        b = b if isinstance(b, Branch) else Branch.model_construct(**b)
        ports[b.name] = Port("any", description=b.expression)
    ports["default"] = Port("any", description="taken when no branch matches")
    return ports


def _truthy(ctx: StepContext, expression: str, value: Any, field: str) -> bool:
    try:
        return bool(ctx.evaluate(expression, value=value))
    except StepError as exc:
        raise StepError(f"{field}: {exc}", retryable=exc.retryable) from exc
    except FlowloomError:
        raise
    except Exception as exc:  # a template error is the author's to fix, not worth retrying
        raise StepError(f"{field}: cannot evaluate {expression!r}: {exc}", retryable=False) from exc


@register(
    "condition",
    category="control",
    label="Condition",
    config=ConditionConfig,
    inputs=_IN,
    outputs={
        "true": Port("any", description="taken when the expression is true"),
        "false": Port("any", description="taken when the expression is false"),
    },
    icon="git-branch",
    branching=True,
    dynamic_outputs=condition_outputs,
    unrendered_fields={"expression", "branches"},  # expressions: the node evaluates them itself
    expression_fields={"expression", "branches.*.expression"},
)
def condition(ctx: StepContext, cfg: ConditionConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Route the input down exactly one branch chosen by expressions."""
    value = inputs.get("in")
    if not cfg.branches:
        return {"true" if _truthy(ctx, cfg.expression, value, "expression") else "false": value}
    for i, branch in enumerate(cfg.branches):
        if _truthy(ctx, branch.expression, value, f"branches.{i}.expression"):
            return {branch.name: value}
    return {"default": value}


class MergeConfig(BaseModel):
    """Config of `merge`."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["all", "any"] = Field(
        "all",
        description="all: wait for every incoming branch that runs; any: continue at the first one",
    )


def merge_join(config: Mapping[str, Any]) -> JoinMode:
    """A merge in "any" mode runs at the first branch that arrives; otherwise it waits for all."""
    return "any" if str(config.get("mode", "all")) == "any" else "all"


@register(
    "merge",
    category="control",
    label="Merge",
    config=MergeConfig,
    inputs={"in": Port("any", description="several edges arrive as a dict keyed by source node id")},
    outputs=_OUT,
    icon="git-merge",
    join=merge_join,
)
def merge(ctx: StepContext, cfg: MergeConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Join branches; the engine decides when the merge is ready."""
    return {"out": inputs.get("in")}


class DelayConfig(BaseModel):
    """Config of `delay`."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(
        1.0,
        ge=0,
        le=86400,
        description=(
            f"How long to wait (up to a day). Up to {SHORT_DELAY_S:g} s the step sleeps; "
            "longer, the run is suspended on a timer and no worker is held"
        ),
    )


@register(
    "delay",
    category="control",
    label="Delay",
    config=DelayConfig,
    inputs=_IN,
    outputs=_OUT,
    icon="clock",
)
async def delay(ctx: StepContext, cfg: DelayConfig, inputs: dict[str, Any]) -> dict[str, Any] | Suspend:
    """Wait, then pass the input on.

    A long delay returns `Suspend("timer", {"resume_after_s": seconds})`; no worker waits, and
    the engine finishes the step after that time with the input passed through as `out`.
    """
    value = inputs.get("in")
    if cfg.seconds <= SHORT_DELAY_S:
        await asyncio.sleep(cfg.seconds)
        return {"out": value}
    return Suspend("timer", {"resume_after_s": cfg.seconds})

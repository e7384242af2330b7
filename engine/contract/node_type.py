"""What a node type declares: config model, typed ports, run function, and what the engine must know of it."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

# Port types. "any" connects to everything; otherwise source and target types must match,
# except that every type flows into "json" (a JSON value can hold any of them) and a list of a
# known kind (messages, embedding, documents) into "list". "object" is a JSON object (a dict).
PORT_TYPES = (
    "any",
    "json",
    "object",
    "list",
    "text",
    "number",
    "boolean",
    "messages",
    "embedding",
    "documents",
)
LIST_PORT_TYPES = frozenset({"messages", "embedding", "documents"})

# Who decided an approval whose deadline passed: the `decided_by` of every expiry decision.
EXPIRED_BY = "system:deadline"

JoinMode = Literal["all", "any"]
RunFunction = Callable[..., Any]
# (config) -> the decision applied at an approval's deadline (for `resume(..., expired=True)`); None = escalate.
ExpiryFunction = Callable[[Any], dict[str, Any] | None]


class ResumeFunction(Protocol):
    """The step's outputs for people's decision on a suspended step; StepError when it does not fit."""

    def __call__(
        self, config: Any, decision: Mapping[str, Any], /, *, expired: bool = False
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Port:
    """A typed input or output port of a node."""

    type: str = "any"
    required: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in PORT_TYPES:
            raise ValueError(f"unknown port type {self.type!r}; known: {', '.join(PORT_TYPES)}")


def port_types_compatible(source: str, target: str) -> bool:
    """Whether a value from a `source`-typed output may flow into a `target`-typed input."""
    return (
        source == target
        or "any" in (source, target)
        or target == "json"
        or (target == "list" and source in LIST_PORT_TYPES)
    )


class EmptyConfig(BaseModel):
    """Config of a node type that takes no settings."""

    model_config = ConfigDict(extra="forbid")


def check_unique_names(names: list[str], what: str = "names") -> None:
    """ValueError listing the names given more than once (a config's branches, fields, actions)."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} must be unique; repeated: {', '.join(repeated)}")


@dataclass(frozen=True)
class Suspend:
    """Returned by a node that must wait for the outside world (a human, a timer).

    The engine records `request` (e.g. an approval), releases the worker and resumes the
    step later with the outside world's answer as the step's outputs.
    """

    kind: str
    request: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChildRun:
    """Returned by a node that runs another saved workflow (`workflow_id` at its pinned `version`).

    The engine starts that version as a child run linked both ways to this step (the step records
    the child's id, the child its parent run and step), releases the worker, and finishes the step
    when the child ends: the child's run outputs become the step's outputs; a failed or cancelled
    child fails the step with the child's error. Cancelling or ending the parent run cancels the
    child; nesting deeper than FLOWLOOM_MAX_SUBWORKFLOW_DEPTH fails the step instead.
    """

    workflow_id: str
    version: int
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeType:
    """A registered node type."""

    type: str
    category: str
    label: str
    config_model: builtins.type[BaseModel]  # `type` here would be the field above
    inputs: dict[str, Port]
    outputs: dict[str, Port]
    run: RunFunction
    description: str = ""
    icon: str = "box"
    # Output ports are branches: only the ports present in the run's result fire.
    branching: bool = False
    # Output port names may also come from the config (e.g. condition branches, approval actions).
    dynamic_outputs: Callable[[BaseModel], dict[str, Port]] | None = None
    # Config fields the engine passes as written, never rendered as templates (the node evaluates
    # them itself, or they must not be text spliced from run inputs, such as SQL).
    unrendered_fields: frozenset[str] = frozenset()
    # Config fields that hold an expression the node evaluates (the validator compiles them):
    # dotted paths, "*" for any list index ("expression", "branches.*.expression").
    expression_fields: frozenset[str] = frozenset()
    # When the node is ready to run, from its raw config: "all" incoming branches, or "any" one.
    join: Callable[[Mapping[str, Any]], JoinMode] | None = None
    # A node that suspends for people's decisions: the outputs of a decision, and what the deadline decides.
    resume: ResumeFunction | None = None
    on_expiry: ExpiryFunction | None = None
    # Input port names may also come from the config (e.g. a called workflow's inputs schema).
    dynamic_inputs: Callable[[BaseModel], dict[str, Port]] | None = None
    # A node that runs another saved workflow (returns ChildRun): the (workflow id, version) its raw
    # config calls, or None; the validator follows these calls to refuse recursion.
    calls_workflow: Callable[[Mapping[str, Any]], tuple[str, int] | None] | None = None
    # A node that runs a saved agent: ("agent_id", id) or ("capability", name) its raw config asks
    # for, or None (an inline agent); the validator checks that such an agent exists (engine/agents.py).
    uses_agent: Callable[[Mapping[str, Any]], tuple[str, str] | None] | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.run)

    def output_ports(self, config: BaseModel | None = None) -> dict[str, Port]:
        """The ports derived from `config` when it defines any (branches, actions), else the declared ones."""
        if self.dynamic_outputs is not None and config is not None:
            derived = self.dynamic_outputs(config)
            if derived:
                return dict(derived)
        return dict(self.outputs)

    def input_ports(self, config: BaseModel | None = None) -> dict[str, Port]:
        """The ports derived from `config` when the type derives any, else the declared ones."""
        if self.dynamic_inputs is not None and config is not None:
            derived = self.dynamic_inputs(config)
            if derived:
                return dict(derived)
        return dict(self.inputs)

    def workflow_called(self, config: Mapping[str, Any]) -> tuple[str, int] | None:
        """What `calls_workflow` says of a raw config; None without it, or for a config it cannot read."""
        return _ask_config_hook(self.calls_workflow, config)

    def agent_used(self, config: Mapping[str, Any]) -> tuple[str, str] | None:
        """What `uses_agent` says of a raw config; None without it, or for a config it cannot read."""
        return _ask_config_hook(self.uses_agent, config)

    def join_mode(self, config: Mapping[str, Any]) -> JoinMode:
        """Whether a node with this raw config waits for all its incoming branches or runs at the first."""
        return self.join(config) if self.join is not None else "all"

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for the editor palette and docs."""
        return {
            "type": self.type,
            "category": self.category,
            "label": self.label,
            "description": self.description,
            "icon": self.icon,
            "config_schema": self.config_model.model_json_schema(),
            "inputs": {k: vars(p) for k, p in self.inputs.items()},
            "outputs": {k: vars(p) for k, p in self.outputs.items()},
            "branching": self.branching,
        }


_Answer = TypeVar("_Answer")


def _ask_config_hook(
    hook: Callable[[Mapping[str, Any]], _Answer | None] | None, config: Mapping[str, Any]
) -> _Answer | None:
    if hook is None:
        return None
    try:
        return hook(config)
    except Exception:  # a config the type cannot read: its config check already says why
        return None

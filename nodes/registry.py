"""The node registry: each node type declares its config model, typed ports and run function."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

# Port types. "any" connects to everything; otherwise source and target types must match,
# except that every type flows into "json" (a JSON value can hold any of them).
PORT_TYPES = ("any", "json", "text", "number", "boolean", "messages", "embedding", "documents")


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
    return source == target or "any" in (source, target) or target == "json"


class EmptyConfig(BaseModel):
    """Config of a node type that takes no settings."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Suspend:
    """Returned by a node that must wait for the outside world (a human, a timer).

    The engine records `request` (e.g. an approval), releases the worker and resumes the
    step later with the outside world's answer as the step's outputs.
    """

    kind: str
    request: dict[str, Any] = field(default_factory=dict)


RunFunction = Callable[..., Any]


@dataclass(frozen=True)
class NodeType:
    """A registered node type."""

    type: str
    category: str
    label: str
    config_model: type[BaseModel]
    inputs: dict[str, Port]
    outputs: dict[str, Port]
    run: RunFunction
    description: str = ""
    icon: str = "box"
    # Output ports are branches: only the ports present in the run's result fire.
    branching: bool = False
    # Output port names may also come from the config (e.g. condition branches, approval actions).
    dynamic_outputs: Callable[[BaseModel], dict[str, Port]] | None = None

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


_REGISTRY: dict[str, NodeType] = {}


def register(
    type_name: str,
    *,
    category: str,
    label: str,
    config: type[BaseModel] = EmptyConfig,
    inputs: dict[str, Port] | None = None,
    outputs: dict[str, Port] | None = None,
    description: str = "",
    icon: str = "box",
    branching: bool = False,
    dynamic_outputs: Callable[[BaseModel], dict[str, Port]] | None = None,
) -> Callable[[RunFunction], RunFunction]:
    """Register the decorated function as the run function of node type `type_name`.

    The run function is called as `run(ctx, cfg, inputs)` where `ctx` is the engine's
    `StepContext`, `cfg` an instance of `config` and `inputs` a dict keyed by input port.
    It returns a dict keyed by output port (sync or async), or a `Suspend`.
    """

    def decorator(fn: RunFunction) -> RunFunction:
        if type_name in _REGISTRY and _REGISTRY[type_name].run is not fn:
            raise ValueError(f"node type {type_name!r} is already registered")
        _REGISTRY[type_name] = NodeType(
            type=type_name,
            category=category,
            label=label,
            config_model=config,
            inputs=dict(inputs or {}),
            outputs=dict(outputs or {}),
            run=fn,
            description=description or (inspect.getdoc(fn) or "").split("\n")[0],
            icon=icon,
            branching=branching,
            dynamic_outputs=dynamic_outputs,
        )
        return fn

    return decorator


def get_node_type(type_name: str) -> NodeType | None:
    """The registered node type called `type_name`, or None."""
    load_builtin_nodes()
    return _REGISTRY.get(type_name)


def all_node_types() -> list[NodeType]:
    """Every registered node type, sorted by category then label."""
    load_builtin_nodes()
    return sorted(_REGISTRY.values(), key=lambda n: (n.category, n.label))


_loaded = False


def load_builtin_nodes() -> None:
    """Import the built-in node modules once so they register themselves."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from nodes import builtin  # noqa: F401  (import registers the node types)

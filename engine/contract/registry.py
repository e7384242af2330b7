"""The node registry, filled by plug-ins: every `flowloom.nodes` entry point registers a family of node types.

Built-in families (nodes/control, nodes/http, ...) are listed in Flowloom's own pyproject.toml
exactly as a third-party package lists its own, so the engine finds both the same way and never
imports a node module by name. Entry points are loaded once, lazily, on the first lookup. An
entry point names a module (importing it registers its node types) or a callable (calling it
does). One that fails is logged with its name and skipped; the others still load.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from engine.contract.node_type import (
    EmptyConfig,
    ExpiryFunction,
    JoinMode,
    NodeType,
    Port,
    ResumeFunction,
    RunFunction,
)

ENTRY_POINT_GROUP = "flowloom.nodes"

log = logging.getLogger("flowloom.plugins")

_REGISTRY: dict[str, NodeType] = {}
_loaded_entry_points: set[str] = set()
_failed: dict[str, str] = {}
_loaded = False
_lock = threading.RLock()  # re-entrant: a plug-in may look node types up while it loads


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
    unrendered_fields: frozenset[str] | set[str] | tuple[str, ...] = frozenset(),
    expression_fields: frozenset[str] | set[str] | tuple[str, ...] = frozenset(),
    join: Callable[[Mapping[str, object]], JoinMode] | None = None,
    resume: ResumeFunction | None = None,
    on_expiry: ExpiryFunction | None = None,
    dynamic_inputs: Callable[[BaseModel], dict[str, Port]] | None = None,
    calls_workflow: Callable[[Mapping[str, Any]], tuple[str, int] | None] | None = None,
    uses_agent: Callable[[Mapping[str, Any]], tuple[str, str] | None] | None = None,
) -> Callable[[RunFunction], RunFunction]:
    """Register the decorated function as the run function of node type `type_name`.

    The run function is called as `run(ctx, cfg, inputs)` where `ctx` is the engine's
    `StepContext`, `cfg` an instance of `config` and `inputs` a dict keyed by input port.
    It returns a dict keyed by output port (sync or async), a `Suspend`, or a `ChildRun`.
    """

    def decorator(fn: RunFunction) -> RunFunction:
        with _lock:
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
                unrendered_fields=frozenset(unrendered_fields),
                expression_fields=frozenset(expression_fields),
                join=join,
                resume=resume,
                on_expiry=on_expiry,
                dynamic_inputs=dynamic_inputs,
                calls_workflow=calls_workflow,
                uses_agent=uses_agent,
            )
        return fn

    return decorator


def get_node_type(type_name: str) -> NodeType | None:
    """The registered node type called `type_name`, or None."""
    ensure_plugins_loaded()
    return _REGISTRY.get(type_name)


def all_node_types() -> list[NodeType]:
    """Every registered node type, sorted by category then label."""
    ensure_plugins_loaded()
    return sorted(_REGISTRY.values(), key=lambda n: (n.category, n.label))


def ensure_plugins_loaded() -> None:
    """Load the plug-ins, unless that happened already in this process."""
    if not _loaded:
        load_plugins()


def load_plugins() -> list[str]:
    """Load every `flowloom.nodes` entry point not loaded yet; returns the names of those loaded now."""
    global _loaded
    with _lock:
        _loaded = True
        loaded = []
        for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
            key = f"{entry_point.name}={entry_point.value}"
            if key in _loaded_entry_points:
                continue
            _loaded_entry_points.add(key)
            if _load(entry_point):
                loaded.append(entry_point.name)
        return loaded


def _load(entry_point: EntryPoint) -> bool:
    """Load one plug-in; a failure is logged, remembered and skipped, never raised."""
    try:
        target = entry_point.load()
        if callable(target) and not isinstance(target, ModuleType):
            target()
    except Exception as exc:  # third-party code: one broken plug-in must not take the app down
        message = (
            f"node plug-in {entry_point.name!r} ({entry_point.value}, entry point group "
            f"{ENTRY_POINT_GROUP!r}) failed to load and was skipped: {type(exc).__name__}: {exc}"
        )
        _failed[entry_point.name] = message
        log.error(message, exc_info=True)
        return False
    _failed.pop(entry_point.name, None)
    return True


def failed_plugins() -> dict[str, str]:
    """Entry point name -> why it was skipped, for every plug-in that failed to load."""
    ensure_plugins_loaded()
    return dict(_failed)

"""Named Python tools: typed functions any node family registers and `tool.python` and agents call by name."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from pydantic import ValidationError as PydanticValidationError

from engine.contract.context import StepContext
from engine.contract.registry import ensure_plugins_loaded
from engine.errors import FlowloomError, StepError


@dataclass(frozen=True)
class Tool:
    """A typed Python function callable by name from workflows and agents."""

    name: str
    description: str
    fn: Callable[..., Any]
    args_model: type[BaseModel]
    takes_ctx: bool

    @property
    def parameter_names(self) -> list[str]:
        return list(self.args_model.model_fields)

    @property
    def parameters(self) -> dict[str, Any]:
        """JSON schema of the tool's arguments (derived from its signature)."""
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        return schema

    def spec(self) -> dict[str, Any]:
        """Name, description and argument schema, as agents hand them to a model."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    async def call(self, ctx: StepContext, args: Mapping[str, Any]) -> Any:
        """Validate `args` against the signature, call the tool and return its result."""
        try:
            parsed = self.args_model.model_validate(dict(args))
        except PydanticValidationError as exc:
            raise StepError(f"tool {self.name!r}: {_describe(exc)}", retryable=False) from exc
        kwargs = dict(parsed)  # keeps validated values typed (no model_dump round trip)
        try:
            result = self.fn(ctx, **kwargs) if self.takes_ctx else self.fn(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except FlowloomError:
            raise
        except (TimeoutError, ConnectionError) as exc:
            raise StepError(f"tool {self.name!r}: {exc!r}", retryable=True) from exc
        except Exception as exc:
            raise StepError(
                f"tool {self.name!r} raised {type(exc).__name__}: {exc}", retryable=False
            ) from exc
        return result


def _describe(exc: PydanticValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in exc.errors())


_TOOLS: dict[str, Tool] = {}


def _args_model(name: str, fn: Callable[..., Any]) -> tuple[type[BaseModel], bool]:
    """An arguments model built from `fn`'s signature; a first parameter `ctx` gets the StepContext."""
    hints = typing.get_type_hints(fn, include_extras=True)
    params = list(inspect.signature(fn).parameters.values())
    takes_ctx = bool(params) and params[0].name == "ctx"
    fields: dict[str, Any] = {}
    for p in params[1:] if takes_ctx else params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise TypeError(f"tool {name!r}: parameter {p.name!r} must be a plain keyword parameter")
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (hints.get(p.name, Any), default)
    model = create_model(f"{name}_args", __config__=ConfigDict(extra="forbid"), **fields)
    return model, takes_ctx


def tool(name: str, *, description: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated typed function as the tool `name` (a first `ctx` parameter gets the context)."""

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _TOOLS and _TOOLS[name].fn is not fn:
            raise ValueError(f"tool {name!r} is already registered")
        model, takes_ctx = _args_model(name, fn)
        doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        _TOOLS[name] = Tool(name=name, description=doc, fn=fn, args_model=model, takes_ctx=takes_ctx)
        return fn

    return decorator


def get_tool(name: str) -> Tool | None:
    """The tool registered as `name`, or None."""
    ensure_plugins_loaded()
    return _TOOLS.get(name)


def all_tools() -> list[Tool]:
    """Every registered tool, sorted by name."""
    ensure_plugins_loaded()
    return sorted(_TOOLS.values(), key=lambda t: t.name)

"""Named Python tools (used by `tool.python` and, later, by agents) and the `tool.python` node."""

from __future__ import annotations

import asyncio
import inspect
import string
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator
from pydantic import ValidationError as PydanticValidationError

from engine.context import StepContext
from engine.errors import FlowloomError, StepError
from nodes.registry import Port, register

MAX_SLEEP_S = 60.0
# A tool parameter with this name receives the whole "in" value when nothing else fills it.
VALUE_PARAM = "value"


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
    return _TOOLS.get(name)


def all_tools() -> list[Tool]:
    """Every registered tool, sorted by name."""
    return sorted(_TOOLS.values(), key=lambda t: t.name)


# Built-in tools


@tool("echo", description="Return the value unchanged.")
def echo(value: Any = None) -> Any:
    return value


@tool("add", description="Add two numbers.")
def add(a: int | float, b: int | float) -> int | float:
    return a + b


@tool("sleep", description=f"Wait `seconds` (at most {MAX_SLEEP_S:g}) and return how long it waited.")
async def sleep(seconds: Annotated[float, Field(ge=0)]) -> float:
    waited = min(seconds, MAX_SLEEP_S)
    await asyncio.sleep(waited)
    return waited


@tool("fail", description="Fail while the step's attempt is at most fail_times (always when unset).")
def fail(
    ctx: StepContext,
    fail_times: Annotated[int | None, Field(ge=0)] = None,
    message: str = "failed on purpose",
    retryable: bool = True,
) -> dict[str, int]:
    if fail_times is None or ctx.attempt <= fail_times:
        raise StepError(f"{message} (attempt {ctx.attempt})", retryable=retryable)
    return {"attempt": ctx.attempt}


_MISSING = object()


@tool("json_pick", description="Pick a dotted path (e.g. items.0.name) out of a JSON value.")
def json_pick(value: Any, path: str, default: Any = None) -> Any:
    current = value
    for part in path.split(".") if path else []:
        if isinstance(current, Mapping):
            current = current.get(part, _MISSING)
        elif isinstance(current, list) and part.lstrip("-").isdigit():
            index = int(part)
            current = current[index] if -len(current) <= index < len(current) else _MISSING
        else:
            current = _MISSING
        if current is _MISSING:
            return default
    return current


@tool("text_template", description="Fill $name / ${name} placeholders in a text from `values`.")
def text_template(template: str, values: dict[str, Any] | None = None) -> str:
    # string.Template, not Jinja: config strings are already Jinja-rendered by the engine, and
    # $-placeholders can neither collide with that pass nor reach attributes of the values.
    try:
        return string.Template(template).substitute({k: str(v) for k, v in (values or {}).items()})
    except KeyError as exc:
        raise StepError(f"text_template: no value for ${exc.args[0]}", retryable=False) from exc
    except ValueError as exc:
        raise StepError(f"text_template: {exc}", retryable=False) from exc


# The node


def _known_tools(schema: dict[str, Any]) -> None:
    schema["examples"] = [t.name for t in all_tools()]


class PythonToolConfig(BaseModel):
    """Config of `tool.python`."""

    model_config = ConfigDict(extra="forbid")

    tool: str = Field(description="Name of a registered Python tool", json_schema_extra=_known_tools)
    args: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Arguments by parameter name; they override same-named keys of an incoming dict. "
            f"A `{VALUE_PARAM}` parameter left unset receives the whole input"
        ),
    )

    @field_validator("tool")
    @classmethod
    def _tool_exists(cls, name: str) -> str:
        if get_tool(name) is None:
            known = ", ".join(t.name for t in all_tools())
            raise ValueError(f"unknown tool {name!r}; known tools: {known}")
        return name

    @field_validator("args")
    @classmethod
    def _args_are_parameters(cls, args: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        registered = get_tool(info.data.get("tool", ""))
        if registered is None:  # the unknown tool is reported on its own field
            return args
        unknown = sorted(set(args) - set(registered.parameter_names))
        if unknown:
            expected = ", ".join(registered.parameter_names) or "no arguments"
            raise ValueError(
                f"unknown argument(s) {', '.join(unknown)} for tool {registered.name!r}; expected: {expected}"
            )
        return args


def tool_arguments(registered: Tool, incoming: Any, args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments a tool gets: matching keys of a dict input, overridden by the configured args."""
    names = registered.parameter_names
    merged: dict[str, Any] = {}
    if isinstance(incoming, Mapping):
        merged.update({k: v for k, v in incoming.items() if k in names})
    merged.update(args)
    if VALUE_PARAM in names and VALUE_PARAM not in merged and incoming is not None:
        merged[VALUE_PARAM] = incoming
    return merged


@register(
    "tool.python",
    category="tool",
    label="Python tool",
    config=PythonToolConfig,
    inputs={"in": Port("any", required=False, description="a dict supplies arguments by name")},
    outputs={"out": Port("any", description="the tool's result")},
    icon="wrench",
)
async def python_tool(ctx: StepContext, cfg: PythonToolConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Call a registered Python tool with the configured arguments."""
    registered = get_tool(cfg.tool)
    if registered is None:  # the tool was unregistered after the config was validated
        raise StepError(f"tool: unknown tool {cfg.tool!r}", retryable=False)
    return {"out": await registered.call(ctx, tool_arguments(registered, inputs.get("in"), cfg.args))}

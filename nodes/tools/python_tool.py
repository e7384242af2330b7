"""The built-in named Python tools (echo, add, sleep, ...) and the `tool.python` node that calls one."""

from __future__ import annotations

import asyncio
import string
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from engine.contract import Port, StepContext, StepError, Tool, all_tools, get_tool, register, tool

MAX_SLEEP_S = 60.0
# A tool parameter with this name receives the whole "in" value when nothing else fills it.
VALUE_PARAM = "value"


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


def result_port_type(registered: Tool) -> str:
    """The port type of what a tool returns, read from its return annotation ("any" when it says no more)."""
    try:
        hint = typing.get_type_hints(registered.fn).get("return", Any)
    except Exception:  # an annotation that does not resolve says nothing
        return "any"
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (typing.get_origin(hint) or hint,)
    kinds = tuple(k for k in kinds if k is not type(None))
    if kinds and all(k in (int, float) for k in kinds):
        return "number"
    if len(kinds) == 1:
        return _PORT_TYPE_OF.get(kinds[0], "any")
    return "any"


_PORT_TYPE_OF: dict[Any, str] = {
    str: "text",
    bool: "boolean",
    dict: "object",
    Mapping: "object",
    list: "list",
}


def tool_outputs(cfg: BaseModel) -> dict[str, Port]:
    """The result port typed by the configured tool's return annotation."""
    registered = get_tool(getattr(cfg, "tool", "") or "")
    if registered is None:
        return {}
    return {"out": Port(result_port_type(registered), description=f"what {registered.name} returns")}


@register(
    "tool.python",
    category="tool",
    label="Python tool",
    config=PythonToolConfig,
    inputs={"in": Port("any", required=False, description="a dict supplies arguments by name")},
    outputs={"out": Port("any", description="the tool's result")},
    dynamic_outputs=tool_outputs,
    icon="wrench",
)
async def python_tool(ctx: StepContext, cfg: PythonToolConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Call a registered Python tool with the configured arguments."""
    registered = get_tool(cfg.tool)
    if registered is None:  # the tool was unregistered after the config was validated
        raise StepError(f"tool: unknown tool {cfg.tool!r}", retryable=False)
    return {"out": await registered.call(ctx, tool_arguments(registered, inputs.get("in"), cfg.args))}

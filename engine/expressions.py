"""The Jinja2 sandbox for templates and expressions: caps on source, output, work and time.

Escapes and cap violations raise PolicyViolation; template mistakes raise StepError(retryable=False).
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache, partial, wraps
from itertools import chain
from types import GeneratorType
from typing import Any, cast

from jinja2 import (
    ChainableUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    nodes,
    pass_context,
    pass_environment,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import TemplateExpression
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from engine import expression_limits as limits
from engine.errors import FlowloomError, PolicyViolation, StepError
from engine.expression_limits import evaluation_budget as evaluation_budget  # the engine's entry point

MAX_SOURCE_CHARS = 20_000
MAX_JSON_CHARS = 5_000_000  # input of the fromjson filter
MAX_NESTING = 64  # syntax-tree depth; Python itself refuses code nested about 200 deep
_STRUCTURAL_FILTERS = frozenset(
    "abs attr batch count d default dictsort first float fromjson groupby int items last length list "
    "map max min random reject rejectattr reverse round select selectattr slice sort sum unique".split()
)
_LONE_EXPRESSION = re.compile(r"\s*\{\{-?(?P<expr>.*?)-?\}\}\s*", re.DOTALL)


class _GuardedCodeGenerator(CodeGenerator):
    """Routes '~' and every for-loop's iterable through the environment's guards."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.sandbox_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        guard = nodes.EnvironmentAttribute("sandbox_iter")
        if not (isinstance(node.iter, nodes.Call) and node.iter.node == guard):
            node.iter = nodes.Call(guard, [node.iter], [], None, None, lineno=node.lineno)
        super().visit_For(node, frame)


class _TooDeep(Exception):
    """A template's syntax tree nests deeper than MAX_NESTING."""


def _check_nesting(tree: nodes.Node) -> None:
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise _TooDeep()
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


class _SandboxEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus deadline, size and work checks on every hook it offers."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _GuardedCodeGenerator
    concat = staticmethod(partial(limits.checked_join, what="template block"))
    sandbox_concat = staticmethod(limits.checked_join)
    sandbox_iter = staticmethod(limits.guarded_iter)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        limits.tick()
        target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format in a function
        owner = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        if isinstance(owner, str | bytes):
            limits.refuse_size(limits.estimate(name, owner, args, kwargs), f"{type(owner).__name__}.{name}()")
            if name in ("encode", "decode"):
                limits.refuse_codec(owner, name, args[0] if args else kwargs.get("encoding", "utf-8"))
        elif isinstance(owner, int) and name == "to_bytes":
            limits.refuse_size(limits.as_int(args[0] if args else kwargs.get("length", 1)), "int.to_bytes()")
        result = super().call(context, obj, *args, **kwargs)
        # Methods may return big data they were handed (slices, strip); they may not grow it past the cap.
        if isinstance(result, str | bytes) and len(result) > max(
            limits.MAX_OUTPUT_CHARS, limits.value_size(owner)
        ):
            limits.refuse_size(len(result), "call")
        return limits.spend(result)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        limits.tick()
        limits.check_binop(operator, left, right)
        return limits.spend(super().call_binop(context, operator, left, right))

    def getattr(self, obj: Any, attribute: str) -> Any:
        limits.tick()
        limits.refuse_internal(obj, attribute)
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]  # data keys such as "items" or "keys" win over dict methods
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        limits.tick()
        if isinstance(argument, str):
            limits.refuse_internal(obj, argument)
        return super().getitem(obj, argument)

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        # Every template and expression is compiled here; Python refuses deeply nested code.
        _check_nesting(source)
        return super()._generate(source, *args, **kwargs)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


def _tojson(value: Any, indent: int | None = None) -> str:
    """Plain JSON (not HTML-escaped); missing values become null."""
    if indent is not None and not (isinstance(indent, int) and 0 <= indent <= 16):
        raise PolicyViolation("tojson: indent must be between 0 and 16")
    return json.dumps(
        value,
        ensure_ascii=False,
        indent=indent,
        default=lambda v: None if isinstance(v, Undefined) else str(v),
    )


def _fromjson(value: Any) -> Any:
    """Parse a JSON string, refusing inputs over MAX_JSON_CHARS."""
    if not isinstance(value, str | bytes):
        raise TypeError(f"fromjson expects a JSON string, got {type(value).__name__}")
    if len(value) > MAX_JSON_CHARS:
        raise PolicyViolation(f"fromjson input is {len(value):,} characters; the limit is {MAX_JSON_CHARS:,}")
    return json.loads(value)


@pass_environment
def _join(environment: _SandboxEnvironment, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    """Jinja's join, sized item by item before anything is built."""
    if attribute is not None:
        value = map(make_attrgetter(environment, attribute), value)
    sep, total = str(d), 0
    parts: list[str] = []
    for item in value:
        total += (len(sep) if parts else 0) + (
            len(item) if isinstance(item, str) else limits.approx_size(item, limits.MAX_OUTPUT_CHARS - total)
        )
        limits.refuse_size(total, "filter 'join'")
        parts.append(item if isinstance(item, str) else str(item))
    return sep.join(parts)


@pass_environment
def _sum(
    environment: _SandboxEnvironment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
) -> Any:
    """Jinja's sum; sequences are concatenated in linear time and sized as they come."""
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    if not isinstance(start, list | tuple):
        return sum(iterable, start)
    items, total = [], limits.approx_size(start)
    for item in iterable:
        total += limits.approx_size(item, limits.MAX_OUTPUT_CHARS - total)
        limits.refuse_size(total, "filter 'sum'")
        items.append(item)
    return type(start)(chain(start, *items))


_FILTER_ESTIMATES = {"center", "indent", "wordwrap", "replace", "urlize", "batch", "slice", "format"}


def _leading_args(func: Callable[..., Any], context: Context) -> tuple[Any, ...]:
    """What Jinja would pass before the value to a filter or test marked pass_context & co."""
    kind = getattr(getattr(func, "jinja_pass_arg", None), "name", None)
    if kind == "context":
        return (context,)
    if kind == "eval_context":
        return (context.eval_ctx,)
    if kind == "environment":
        return (context.environment,)
    return ()


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter with the deadline, size checks on text filters and the work budget.

    The wrapper takes the render context, which also keeps Jinja from running the filter while
    compiling (constant folding), where no deadline or work budget applies.
    """
    estimate_as = "%" if name == "format" else name
    structural = name in _STRUCTURAL_FILTERS

    @wraps(func)
    def guarded(context: Context, value: Any, /, *args: Any, **kwargs: Any) -> Any:
        limits.tick()
        if not structural:
            limits.refuse_size(limits.value_size(value), f"input of filter {name!r}")
        if name in _FILTER_ESTIMATES:
            limits.refuse_size(limits.estimate(estimate_as, value, args, kwargs), f"filter {name!r}")
        result = func(*_leading_args(func, context), value, *args, **kwargs)
        if not structural and isinstance(result, str | bytes):
            limits.refuse_size(len(result), f"filter {name!r}")
        return result if result is value else limits.spend(result)

    return pass_context(guarded)


def _guard_test(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a test (`is ...`) with the deadline; like filters, never run while compiling."""

    @wraps(func)
    def guarded(context: Context, value: Any, /, *args: Any, **kwargs: Any) -> Any:
        limits.tick()
        return func(*_leading_args(func, context), value, *args, **kwargs)

    return pass_context(guarded)


def _make_environment() -> _SandboxEnvironment:
    env = _SandboxEnvironment(
        autoescape=False,
        undefined=ChainableUndefined,
        finalize=limits.finalize,
        keep_trailing_newline=True,
        optimized=False,  # the optimizer folds constants at compile time, outside every budget
    )
    env.globals.pop("lipsum", None)
    env.globals["range"] = limits.capped_range
    env.filters.update(tojson=_tojson, fromjson=_fromjson, join=_join, sum=_sum)
    env.filters = {name: _guard_filter(name, func) for name, func in env.filters.items()}
    env.tests = {name: _guard_test(cast(Callable[..., Any], func)) for name, func in env.tests.items()}
    return env


_env = _make_environment()


@lru_cache(maxsize=512)
def _compile_template(source: str) -> Template:
    return _env.from_string(source)


@lru_cache(maxsize=512)
def _compile_expression(source: str) -> TemplateExpression:
    return _env.compile_expression(source, undefined_to_none=True)


def _check_source(source: str, what: str) -> None:
    if len(source) > MAX_SOURCE_CHARS:
        raise PolicyViolation(f"{what} is {len(source):,} characters; the limit is {MAX_SOURCE_CHARS:,}")


@contextmanager
def _translate_errors(what: str, source: str) -> Iterator[None]:
    """Turn whatever Jinja or the template raised into PolicyViolation or StepError."""
    try:
        yield
    except FlowloomError:
        raise
    except _TooDeep:
        raise PolicyViolation(
            f"{what} nests more than {MAX_NESTING} levels deep (filters, calls, brackets or blocks "
            "inside each other); split it into several steps"
        ) from None
    except SecurityError as exc:
        raise PolicyViolation(f"{what} refused by the sandbox: {exc}") from exc
    except TemplateSyntaxError as exc:
        lines = source.splitlines()
        near = f" (near {lines[exc.lineno - 1].strip()[:80]!r})" if 0 < exc.lineno <= len(lines) else ""
        raise StepError(
            f"{what} syntax error on line {exc.lineno}: {exc.message}{near}", retryable=False
        ) from exc
    except (RecursionError, MemoryError) as exc:
        raise PolicyViolation(f"{what} nests too deeply or needs too much memory") from exc
    except Exception as exc:
        numbers = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
        where = f" on line {numbers[-1]}" if numbers and "\n" in source else ""
        raise StepError(f"{what} failed{where}: {type(exc).__name__}: {exc}", retryable=False) from exc


def is_templated(value: str) -> bool:
    """True when the string holds Jinja markup ('{{' or '{%')."""
    return "{{" in value or "{%" in value


def render_template(template: str, variables: Mapping[str, Any]) -> str:
    """Render a template string in the sandbox; missing names render as empty text."""
    _check_source(template, "template")
    with _translate_errors("template", template), limits.budgeted():
        stream = _compile_template(template).generate(variables)
        parts, total = [], 0
        try:
            for chunk in stream:
                total += len(chunk)
                limits.refuse_size(total, "template output")
                limits.tick()
                parts.append(chunk)
        finally:
            if isinstance(stream, GeneratorType):  # Jinja's generate() is a generator: end it now
                stream.close()
        return "".join(parts)


def evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    """Evaluate a Jinja2 expression (no braces) in the sandbox; missing names give None."""
    _check_source(expression, "expression")
    with _translate_errors("expression", expression), limits.budgeted():
        result = _compile_expression(expression)(variables)
        return list(result) if isinstance(result, GeneratorType) else result


def _lone_expression(text: str) -> str | None:
    match = _LONE_EXPRESSION.fullmatch(text)
    if match is None or any(mark in match["expr"] for mark in ("{{", "}}", "{%", "%}", "{#", "#}")):
        return None
    return match["expr"].strip() or None


def _render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        if not is_templated(value):
            return value
        expression = _lone_expression(value)
        return evaluate(expression, variables) if expression else render_template(value, variables)
    if isinstance(value, Mapping):
        return {key: _render_value(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [_render_value(item, variables) for item in value]
    if isinstance(value, tuple):
        return tuple(_render_value(item, variables) for item in value)
    return value


def render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render template strings inside value (dicts and lists walked); a lone '{{ expr }}' keeps its type."""
    with limits.budgeted():
        return _render_value(value, variables)


def check_template(template: str) -> str | None:
    """Compile a template without running it; return the error message, or None when it is fine."""
    return _check(template, "template", _compile_template)


def check_expression(expression: str) -> str | None:
    """Compile an expression without running it; return the error message, or None when it is fine."""
    return _check(expression, "expression", _compile_expression)


def _check(source: str, what: str, compile_source: Callable[[str], Any]) -> str | None:
    try:
        _check_source(source, what)
        with _translate_errors(what, source):
            compile_source(source)
    except FlowloomError as exc:
        return str(exc)
    return None

"""The Jinja2 sandbox for templates and expressions: caps on source, output, work and time.

Escapes and cap violations raise PolicyViolation; template mistakes raise StepError(retryable=False).
"""

from __future__ import annotations

import codecs
import json
import re
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache, partial, wraps
from itertools import chain
from string import Formatter
from types import GeneratorType
from typing import Any

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

from engine.errors import FlowloomError, PolicyViolation, StepError

MAX_SOURCE_CHARS = 20_000
MAX_OUTPUT_CHARS = 1_000_000  # rendered text, and any single string or list a template builds
MAX_WORK_CHARS = 50_000_000  # everything one render produces, added up
MAX_JSON_CHARS = 5_000_000  # input of the fromjson filter
MAX_RANGE = 100_000
MAX_INT_BITS = 10_000
MAX_SECONDS = 2.0
MAX_NESTING = 64  # syntax-tree depth; Python itself refuses code nested about 200 deep
# Text codecs that run in linear time (punycode, for one, is quadratic).
_LINEAR_CODECS = frozenset(
    "ascii latin-1 iso8859-1 cp1252 utf-8 utf-8-sig utf-16 utf-16-le utf-16-be utf-32 utf-32-le utf-32-be".split()
)

# Names refused as attributes even when missing: what older escapes reach for.
_INTERNAL_NAMES = frozenset(
    "mro func_globals func_code func_closure func_defaults im_func im_self im_class gi_frame gi_code "
    "cr_frame cr_code ag_frame ag_code f_globals f_locals f_builtins f_code f_back tb_frame tb_next".split()
)
# Filters that pass values through or reshape collections; the rest build text and are size-checked.
_STRUCTURAL_FILTERS = frozenset(
    "abs attr batch count d default dictsort first float fromjson groupby int items last length list "
    "map max min random reject rejectattr reverse round select selectattr slice sort sum unique".split()
)
_SEQUENCES = (str, bytes, list, tuple)
_SIZED = (str, bytes, list, tuple, dict, set, frozenset)
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)
_LONE_EXPRESSION = re.compile(r"\s*\{\{-?(?P<expr>.*?)-?\}\}\s*", re.DOTALL)


@dataclass
class _Budget:
    """Time and work left to one account: a step, a routing decision or a run's outputs."""

    seconds_left: float
    work_left: int


_budget: ContextVar[_Budget | None] = ContextVar("flowloom_expression_budget", default=None)
# When the evaluation running in this thread or task must stop (None: none is running).
_deadline: ContextVar[float | None] = ContextVar("flowloom_expression_deadline", default=None)


def _new_budget() -> _Budget:
    return _Budget(seconds_left=MAX_SECONDS, work_left=MAX_WORK_CHARS)


@contextmanager
def evaluation_budget() -> Iterator[_Budget]:
    """Share one time and work budget among every template and expression evaluated in the block.

    The engine opens one per step (its config and whatever the node evaluates), per routing
    decision (all edge conditions) and per run's outputs; only time spent evaluating is counted.
    An inner block joins the outer one.
    """
    budget = _budget.get()
    token = _budget.set(budget := _new_budget()) if budget is None else None
    try:
        yield budget
    finally:
        if token is not None:
            _budget.reset(token)


@contextmanager
def _budgeted() -> Iterator[None]:
    """Run one evaluation against the current budget (a fresh one outside any block)."""
    with evaluation_budget() as budget:
        if _deadline.get() is not None:  # nested inside an evaluation already running
            yield
            return
        started = time.monotonic()
        token = _deadline.set(started + budget.seconds_left)
        try:
            yield
        finally:
            _deadline.reset(token)
            budget.seconds_left -= time.monotonic() - started


def _tick() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise PolicyViolation(
            f"templates ran longer than {MAX_SECONDS:g}s (the limit for one step, routing decision or "
            "run output); simplify them or use a code step"
        )


def _spend(value: Any) -> Any:
    if (budget := _budget.get()) is not None:
        budget.work_left -= len(value) if isinstance(value, _SIZED) else 1
        if budget.work_left < 0:
            raise PolicyViolation(f"templates produced more than {MAX_WORK_CHARS:,} characters of values")
    return value


def _refuse_size(size: int, what: str) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise PolicyViolation(
            f"{what} would build about {size:,} characters; templates may build at most {MAX_OUTPUT_CHARS:,}"
        )


def _approx_size(value: Any, limit: int = MAX_OUTPUT_CHARS) -> int:
    """Rough length of str(value), counting shared references every time; stops once past limit."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(chain(item.keys(), item.values()))
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        else:
            total += 8
    return total


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes) else _approx_size(value)


def _largest_number(text: str) -> int:
    return max((int(d) if len(d) < 10 else 10**10 for d in re.findall(r"\d+", text)), default=0)


def _format_size(fmt: str | bytes, values: Any, *, percent: bool) -> int:
    """Upper bound of len(fmt % values) or len(fmt.format(...)), widths included."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    if percent:
        specs = [m[0] for m in _PERCENT_SPEC.finditer(text) if m[3] != "%"]
        numbers = values if isinstance(values, tuple) else (values,)
        stars = [n for n in numbers if isinstance(n, int)] if any("*" in s for s in specs) else []
    else:
        specs = [spec or "" for _, field, spec, _ in Formatter().parse(text) if field is not None]
        stars = [10**10] if any("{" in s for s in specs) else []  # nested width fields: refuse
    width = max([0, *stars, *(_largest_number(s) for s in specs)])
    return len(text) + len(specs) * (_approx_size(values) + width)


def _replace_size(text: Any, old: Any, new: Any, count: Any) -> int:
    if not (isinstance(text, str | bytes) and type(old) is type(text) and type(new) is type(text)):
        return 0
    found = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _estimate(name: str, text: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """Upper bound of the size a str method or text filter would build; 0 when it cannot amplify."""

    def arg(index: int, key: str, default: Any = None) -> Any:
        return args[index] if len(args) > index else kwargs.get(key, default)

    size = _size(text)
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(size, _as_int(arg(0, "width", 80)))
    if name == "replace":
        return _replace_size(text, arg(0, "old"), arg(1, "new"), arg(2, "count", -1))
    if name in ("expandtabs", "indent"):
        width = arg(0, "tabsize" if name == "expandtabs" else "width", 8 if name == "expandtabs" else 4)
        width = len(width) if isinstance(width, str) else _as_int(width)
        return size + (str(text).count("\t" if name == "expandtabs" else "\n") + 1) * width
    if name == "wordwrap":
        lines = 2 * size // max(_as_int(arg(0, "width", 79)), 1) + str(text).count("\n") + 1
        return size + lines * len(arg(2, "wrapstring") or "\n")
    if name == "urlize":
        return size * (4 + len(f"{arg(2, 'target') or ''}{arg(3, 'rel') or ''}") // 4)
    if name in ("batch", "slice"):
        return _as_int(arg(0, "linecount" if name == "batch" else "slices"))
    if name == "join" and isinstance(items := arg(0, "iterable"), list | tuple):
        return sum(len(i) for i in items if isinstance(i, str | bytes)) + size * max(len(items) - 1, 0)
    if name == "translate" and isinstance(table := arg(0, "table"), Mapping):
        return size * max((len(v) for v in table.values() if isinstance(v, str)), default=1)
    if name in ("format", "format_map") and isinstance(text, str):
        return _format_size(text, (args, kwargs) if name == "format" else arg(0, "mapping"), percent=False)
    if name == "%":  # the 'format' filter is printf-style
        return _format_size(str(text), kwargs or args, percent=True)
    return 0


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse '*', '**', '+' and '%' whose result would be over a cap, before computing it."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, _SEQUENCES) and isinstance(times, int):
                _refuse_size(_size(seq) * max(times, 0), "'*'")
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise PolicyViolation(f"'*' would build an integer over {MAX_INT_BITS:,} bits")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if left.bit_length() * right > MAX_INT_BITS:
                raise PolicyViolation(f"'**' would build an integer over {MAX_INT_BITS:,} bits")
    elif operator == "+":
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            _refuse_size(_size(left) + _size(right), "'+'")
    elif operator == "%" and isinstance(left, str | bytes):
        _refuse_size(_format_size(left, right, percent=True), "'%' formatting")


def _refuse_codec(owner: str | bytes, method: str, encoding: Any) -> None:
    """Only linear-time codecs: some others (punycode) take quadratic time on long text."""
    try:
        name = codecs.lookup(str(encoding)).name
    except LookupError:
        return  # the call itself reports the unknown encoding
    if name not in _LINEAR_CODECS:
        raise PolicyViolation(
            f"{type(owner).__name__}.{method}({encoding!r}) is not allowed in templates; "
            "use utf-8, ascii, latin-1, utf-16 or utf-32"
        )


def _refuse_internal(obj: Any, name: str) -> None:
    if (name.startswith("__") or name in _INTERNAL_NAMES) and not (isinstance(obj, Mapping) and name in obj):
        raise SecurityError(f"access to attribute {name!r} of {type(obj).__name__!r} object is unsafe")


def _capped_range(*args: int) -> range:
    """range() that refuses more than MAX_RANGE items."""
    numbers = range(*args)
    try:
        length = len(numbers)
    except OverflowError:
        length = MAX_RANGE + 1
    if length > MAX_RANGE:
        raise PolicyViolation(f"range() of {length:,} items is over the sandbox limit of {MAX_RANGE:,}")
    return numbers


def _guarded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every {% for %} loop iterates through this, so long loops hit the deadline."""
    for item in iterable:
        _tick()
        yield item


def _checked_join(parts: Iterable[Any], what: str = "'~'") -> str:
    """Stringify and join (block buffers, '~'), sizing each part before str() builds it."""
    kept, total = [], 0
    for part in parts:
        total += len(part) if isinstance(part, str) else _approx_size(part, MAX_OUTPUT_CHARS - total)
        _refuse_size(total, what)
        kept.append(str(part))
    _tick()
    return _spend("".join(kept))


def _finalize(value: Any) -> Any:
    _tick()
    if not isinstance(value, str):
        _refuse_size(_approx_size(value), "output of '{{ }}'")
    return value


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
    concat = staticmethod(partial(_checked_join, what="template block"))
    sandbox_concat = staticmethod(_checked_join)
    sandbox_iter = staticmethod(_guarded_iter)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _tick()
        target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format in a function
        owner = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        if isinstance(owner, str | bytes):
            _refuse_size(_estimate(name, owner, args, kwargs), f"{type(owner).__name__}.{name}()")
            if name in ("encode", "decode"):
                _refuse_codec(owner, name, args[0] if args else kwargs.get("encoding", "utf-8"))
        elif isinstance(owner, int) and name == "to_bytes":
            _refuse_size(_as_int(args[0] if args else kwargs.get("length", 1)), "int.to_bytes()")
        result = super().call(context, obj, *args, **kwargs)
        # Methods may return big data they were handed (slices, strip); they may not grow it past the cap.
        if isinstance(result, str | bytes) and len(result) > max(MAX_OUTPUT_CHARS, _size(owner)):
            _refuse_size(len(result), "call")
        return _spend(result)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        _check_binop(operator, left, right)
        return _spend(super().call_binop(context, operator, left, right))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        _refuse_internal(obj, attribute)
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]  # data keys such as "items" or "keys" win over dict methods
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        if isinstance(argument, str):
            _refuse_internal(obj, argument)
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
    sep, parts, total = str(d), [], 0
    for item in value:
        total += (len(sep) if parts else 0) + (
            len(item) if isinstance(item, str) else _approx_size(item, MAX_OUTPUT_CHARS - total)
        )
        _refuse_size(total, "filter 'join'")
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
    items, total = [], _approx_size(start)
    for item in iterable:
        total += _approx_size(item, MAX_OUTPUT_CHARS - total)
        _refuse_size(total, "filter 'sum'")
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
        _tick()
        if not structural:
            _refuse_size(_size(value), f"input of filter {name!r}")
        if name in _FILTER_ESTIMATES:
            _refuse_size(_estimate(estimate_as, value, args, kwargs), f"filter {name!r}")
        result = func(*_leading_args(func, context), value, *args, **kwargs)
        if not structural and isinstance(result, str | bytes):
            _refuse_size(len(result), f"filter {name!r}")
        return result if result is value else _spend(result)

    return pass_context(guarded)


def _guard_test(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a test (`is ...`) with the deadline; like filters, never run while compiling."""

    @wraps(func)
    def guarded(context: Context, value: Any, /, *args: Any, **kwargs: Any) -> Any:
        _tick()
        return func(*_leading_args(func, context), value, *args, **kwargs)

    return pass_context(guarded)


def _make_environment() -> _SandboxEnvironment:
    env = _SandboxEnvironment(
        autoescape=False,
        undefined=ChainableUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        optimized=False,  # the optimizer folds constants at compile time, outside every budget
    )
    env.globals.pop("lipsum", None)
    env.globals["range"] = _capped_range
    env.filters.update(tojson=_tojson, fromjson=_fromjson, join=_join, sum=_sum)
    env.filters = {name: _guard_filter(name, func) for name, func in env.filters.items()}
    env.tests = {name: _guard_test(func) for name, func in env.tests.items()}
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
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
        where = f" on line {lines[-1]}" if lines and "\n" in source else ""
        raise StepError(f"{what} failed{where}: {type(exc).__name__}: {exc}", retryable=False) from exc


def is_templated(value: str) -> bool:
    """True when the string holds Jinja markup ('{{' or '{%')."""
    return "{{" in value or "{%" in value


def render_template(template: str, variables: Mapping[str, Any]) -> str:
    """Render a template string in the sandbox; missing names render as empty text."""
    _check_source(template, "template")
    with _translate_errors("template", template), _budgeted():
        stream = _compile_template(template).generate(variables)
        parts, total = [], 0
        try:
            for chunk in stream:
                total += len(chunk)
                _refuse_size(total, "template output")
                _tick()
                parts.append(chunk)
        finally:
            stream.close()
        return "".join(parts)


def evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    """Evaluate a Jinja2 expression (no braces) in the sandbox; missing names give None."""
    _check_source(expression, "expression")
    with _translate_errors("expression", expression), _budgeted():
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
    with _budgeted():
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

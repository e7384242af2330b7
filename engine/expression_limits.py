"""The sandbox's resource guards: one time and work budget per evaluation account, and size
estimates that refuse an operation before it builds an oversized value.

engine/expressions.py wires these into the Jinja2 environment; caps raise PolicyViolation.
"""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import chain
from string import Formatter
from typing import Any

from jinja2.sandbox import SecurityError

from engine.errors import PolicyViolation

MAX_OUTPUT_CHARS = 1_000_000  # rendered text, and any single string or list a template builds
MAX_WORK_CHARS = 50_000_000  # everything one render produces, added up
MAX_RANGE = 100_000
MAX_INT_BITS = 10_000
MAX_SECONDS = 2.0
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
_SEQUENCES = (str, bytes, list, tuple)
_SIZED = (str, bytes, list, tuple, dict, set, frozenset)
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)


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
    outer = _budget.get()
    budget = outer if outer is not None else _new_budget()
    token = _budget.set(budget) if outer is None else None
    try:
        yield budget
    finally:
        if token is not None:
            _budget.reset(token)


@contextmanager
def budgeted() -> Iterator[None]:
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


def tick() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise PolicyViolation(
            f"templates ran longer than {MAX_SECONDS:g}s (the limit for one step, routing decision or "
            "run output); simplify them or use a code step"
        )


def spend(value: Any) -> Any:
    if (budget := _budget.get()) is not None:
        budget.work_left -= len(value) if isinstance(value, _SIZED) else 1
        if budget.work_left < 0:
            raise PolicyViolation(f"templates produced more than {MAX_WORK_CHARS:,} characters of values")
    return value


def refuse_size(size: int, what: str) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise PolicyViolation(
            f"{what} would build about {size:,} characters; templates may build at most {MAX_OUTPUT_CHARS:,}"
        )


def approx_size(value: Any, limit: int = MAX_OUTPUT_CHARS) -> int:
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


def value_size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes) else approx_size(value)


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
    return len(text) + len(specs) * (approx_size(values) + width)


def _replace_size(text: Any, old: Any, new: Any, count: Any) -> int:
    if not (isinstance(text, str | bytes) and type(old) is type(text) and type(new) is type(text)):
        return 0
    if not old:
        found = len(text) + 1
    elif isinstance(text, str) and isinstance(old, str):
        found = text.count(old)
    elif isinstance(text, bytes) and isinstance(old, bytes):
        found = text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def as_int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def estimate(name: str, text: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """Upper bound of the size a str method or text filter would build; 0 when it cannot amplify."""

    def arg(index: int, key: str, default: Any = None) -> Any:
        return args[index] if len(args) > index else kwargs.get(key, default)

    size = value_size(text)
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(size, as_int(arg(0, "width", 80)))
    if name == "replace":
        return _replace_size(text, arg(0, "old"), arg(1, "new"), arg(2, "count", -1))
    if name in ("expandtabs", "indent"):
        width = arg(0, "tabsize" if name == "expandtabs" else "width", 8 if name == "expandtabs" else 4)
        width = len(width) if isinstance(width, str) else as_int(width)
        return size + (str(text).count("\t" if name == "expandtabs" else "\n") + 1) * width
    if name == "wordwrap":
        lines = 2 * size // max(as_int(arg(0, "width", 79)), 1) + str(text).count("\n") + 1
        return size + lines * len(arg(2, "wrapstring") or "\n")
    if name == "urlize":
        return size * (4 + len(f"{arg(2, 'target') or ''}{arg(3, 'rel') or ''}") // 4)
    if name in ("batch", "slice"):
        return as_int(arg(0, "linecount" if name == "batch" else "slices"))
    if name == "join" and isinstance(items := arg(0, "iterable"), list | tuple):
        return sum(len(i) for i in items if isinstance(i, str | bytes)) + size * max(len(items) - 1, 0)
    if name == "translate" and isinstance(table := arg(0, "table"), Mapping):
        return size * max((len(v) for v in table.values() if isinstance(v, str)), default=1)
    if name in ("format", "format_map") and isinstance(text, str):
        return _format_size(text, (args, kwargs) if name == "format" else arg(0, "mapping"), percent=False)
    if name == "%":  # the 'format' filter is printf-style
        return _format_size(str(text), kwargs or args, percent=True)
    return 0


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse '*', '**', '+' and '%' whose result would be over a cap, before computing it."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, _SEQUENCES) and isinstance(times, int):
                refuse_size(value_size(seq) * max(times, 0), "'*'")
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise PolicyViolation(f"'*' would build an integer over {MAX_INT_BITS:,} bits")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if left.bit_length() * right > MAX_INT_BITS:
                raise PolicyViolation(f"'**' would build an integer over {MAX_INT_BITS:,} bits")
    elif operator == "+":
        if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
            refuse_size(value_size(left) + value_size(right), "'+'")
    elif operator == "%" and isinstance(left, str | bytes):
        refuse_size(_format_size(left, right, percent=True), "'%' formatting")


def refuse_codec(owner: str | bytes, method: str, encoding: Any) -> None:
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


def refuse_internal(obj: Any, name: str) -> None:
    if (name.startswith("__") or name in _INTERNAL_NAMES) and not (isinstance(obj, Mapping) and name in obj):
        raise SecurityError(f"access to attribute {name!r} of {type(obj).__name__!r} object is unsafe")


def capped_range(*args: int) -> range:
    """range() that refuses more than MAX_RANGE items."""
    numbers = range(*args)
    try:
        length = len(numbers)
    except OverflowError:
        length = MAX_RANGE + 1
    if length > MAX_RANGE:
        raise PolicyViolation(f"range() of {length:,} items is over the sandbox limit of {MAX_RANGE:,}")
    return numbers


def guarded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every {% for %} loop iterates through this, so long loops hit the deadline."""
    for item in iterable:
        tick()
        yield item


def checked_join(parts: Iterable[Any], what: str = "'~'") -> str:
    """Stringify and join (block buffers, '~'), sizing each part before str() builds it."""
    kept, total = [], 0
    for part in parts:
        total += len(part) if isinstance(part, str) else approx_size(part, MAX_OUTPUT_CHARS - total)
        refuse_size(total, what)
        kept.append(str(part))
    tick()
    return spend("".join(kept))


def finalize(value: Any) -> Any:
    tick()
    if not isinstance(value, str):
        refuse_size(approx_size(value), "output of '{{ }}'")
    return value

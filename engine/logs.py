"""Structured logs: one JSON object a line from every process, carrying the run, step, workflow and
trace it belongs to, at the level FLOWLOOM_LOG_LEVEL names, with secret values masked.

The ids come from context variables that the engine binds where it works on a run (`bound`): a
worker around each step, the run door around a start. Every line has every key (null when the
line belongs to no run). The trace id is the current span's when tracing is on, else the run's
own (engine.tracing derives a run's trace id from its id, so both agree).

Masking: each secret value a node receives (StepContext.secret / keep_secret) is remembered by the
process (`mask_secret`) and replaced by `***` in every later line, whichever logger wrote it
(httpx logging a URL, a node's own debug line, a traceback).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
import traceback
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from opentelemetry import trace

MASK = "***"
CONTEXT_KEYS = ("run_id", "step_id", "workflow_id", "node_id")
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words
_MAX_SECRETS = 4096

_NOTHING: Mapping[str, str | None] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, str | None]] = contextvars.ContextVar(
    "flowloom_log_context", default=_NOTHING
)


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Inside the block every log line carries these ids (added to the ones already bound)."""
    token = _context.set(
        MappingProxyType({**_context.get(), **{k: v for k, v in ids.items() if v is not None}})
    )
    try:
        yield
    finally:
        _context.reset(token)


def current_ids() -> dict[str, str | None]:
    """The ids bound here (run_id, step_id, workflow_id, node_id)."""
    return dict(_context.get())


class _SecretValues:
    """The secret values this process handed to nodes (bounded, oldest forgotten first)."""

    def __init__(self) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if len(value) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            self._values[value] = None
            self._values.move_to_end(value)
            while len(self._values) > _MAX_SECRETS:
                self._values.popitem(last=False)

    def mask(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)  # longest first: no partial leftovers
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        return text


_secrets = _SecretValues()


def mask_secret(value: str) -> None:
    """Never let `value` appear in this process's logs from now on."""
    if value:
        _secrets.add(value)


def masked(text: str) -> str:
    """`text` with every remembered secret value replaced by ***."""
    return _secrets.mask(text)


def trace_id_of_run(run_id: str | None) -> str | None:
    """The trace id a run's spans carry: its uuid as 32 hex digits (engine.tracing uses the same)."""
    if not run_id:
        return None
    return run_id.replace("-", "").lower() if len(run_id.replace("-", "")) == 32 else None


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, process, the bound ids, trace id, exception."""

    def __init__(self, process_role: str = "") -> None:
        super().__init__()
        self.process_role = process_role

    def format(self, record: logging.LogRecord) -> str:
        ids = _context.get()
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": masked(record.getMessage()),
            "process": self.process_role,
            "pid": record.process,
        }
        for key in CONTEXT_KEYS:
            entry[key] = ids.get(key)
        entry["trace_id"] = _trace_id(ids.get("run_id"))
        entry["span_id"] = _span_id()
        if record.exc_info:
            entry["exception"] = masked("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with the run and step when bound; secret values masked too."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = _context.get()
        if ids.get("run_id"):
            line += f" [run={ids['run_id']} step={ids.get('step_id') or '-'}]"
        return masked(line)


def _trace_id(run_id: str | None) -> str | None:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        return f"{context.trace_id:032x}"
    return trace_id_of_run(run_id)


def _span_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return f"{context.span_id:016x}" if context.is_valid else None


def configure(*, level: str = "INFO", fmt: str = "json", process_role: str = "") -> None:
    """Send every logger's lines through one stderr handler in `fmt`, at `level` (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        # ours from an earlier call, or basicConfig's (pytest's capture handlers stay)
        if getattr(handler, "_flowloom", False) or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._flowloom = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter(process_role) if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Servers that bring their own handlers (Celery, Granian, uvicorn) write through ours instead.
    for name in (
        "celery",
        "celery.task",
        "celery.worker",
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "_granian",
    ):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True

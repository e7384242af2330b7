"""OpenTelemetry traces: one trace per run, a span per step, a span per model call (GenAI
semantic conventions), exported over OTLP/HTTP (protobuf) when FLOWLOOM_OTLP_ENDPOINT is set.

Off, the tracer is the API's no-op tracer and the SDK is never imported: no thread, no export, a
few attribute-free calls per step.

One trace per run, whichever processes its steps run in: a run's trace id is its uuid, and its root
span ("flowloom.run", emitted when the run ends, from its creation to its end) has a span id
derived from the run id. Step messages carry the W3C `traceparent` of that root in their Celery
headers (`inject` on send, `extract` in the worker); a message without one (the sweeper's
resend) falls back to the same derived root, so a step always lands in its run's trace.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("flowloom.tracing")

TRACER_NAME = "flowloom"
RUN_SPAN = "flowloom.run"
_propagator = TraceContextTextMapPropagator()
_tracer: trace.Tracer = trace.NoOpTracer()
_provider: Any = None  # the SDK's TracerProvider when export is on
# Ids the next span must get (the run's root span); read by the SDK through _RunIds.
_forced_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "flowloom_forced_ids", default=None
)


def run_trace_id(run_id: str) -> int:
    return uuid.UUID(run_id).int


def run_span_id(run_id: str) -> int:
    span_id = int.from_bytes(hashlib.sha256(f"flowloom-run:{run_id}".encode()).digest()[:8], "big")
    return span_id or 1


def run_span_context(run_id: str) -> SpanContext:
    """The SpanContext of the run's root span (known before that span is emitted)."""
    return SpanContext(
        trace_id=run_trace_id(run_id), span_id=run_span_id(run_id), is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )  # fmt: skip


def run_context(run_id: str) -> otel_context.Context:
    return trace.set_span_in_context(NonRecordingSpan(run_span_context(run_id)))


def enabled() -> bool:
    return _provider is not None


def tracer() -> trace.Tracer:
    return _tracer


def configure(endpoint: str, *, service: str) -> None:
    """Export spans to `endpoint` (OTLP/HTTP, protobuf) as `service`; an empty endpoint turns tracing off."""
    global _tracer, _provider
    shutdown()
    if not endpoint:
        _tracer, _provider = trace.NoOpTracer(), None
        return
    # The SDK is loaded only when tracing is on.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class _RunIds(RandomIdGenerator):
        """Random ids, except for a run's root span, whose ids follow from the run id."""

        def generate_span_id(self) -> int:
            forced = _forced_ids.get()
            return forced[1] if forced else super().generate_span_id()

        def generate_trace_id(self) -> int:
            forced = _forced_ids.get()
            return forced[0] if forced else super().generate_trace_id()

    provider = TracerProvider(resource=Resource.create({"service.name": service}), id_generator=_RunIds())
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    _provider, _tracer = provider, provider.get_tracer(TRACER_NAME)
    log.info("tracing: exporting spans to %s/v1/traces", endpoint.rstrip("/"))


def flush(timeout_ms: int = 10_000) -> bool:
    """Export what is buffered now (before a process exits, or in a test)."""
    return bool(_provider.force_flush(timeout_ms)) if _provider is not None else True


def shutdown() -> None:
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
    _provider, _tracer = None, trace.NoOpTracer()


# ---------------------------------------------------------------------------------------------
# Celery headers


def inject_headers() -> dict[str, str]:
    """The current context as W3C headers for a message ({} with no span)."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


def extract_headers(headers: Any) -> otel_context.Context | None:
    """The context a message carried, or None."""
    if not isinstance(headers, dict) or "traceparent" not in headers:
        return None
    carrier = {k: v for k, v in headers.items() if k in ("traceparent", "tracestate") and isinstance(v, str)}
    ctx = _propagator.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


@contextmanager
def in_run(run_id: str) -> Iterator[None]:
    """Inside the block the current context is the run's root (messages sent here carry it)."""
    token = otel_context.attach(run_context(run_id))
    try:
        yield
    finally:
        otel_context.detach(token)


@contextmanager
def attached(ctx: otel_context.Context | None) -> Iterator[None]:
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


# ---------------------------------------------------------------------------------------------
# Spans


def _step_parent(run_id: str) -> otel_context.Context:
    """The propagated context when it belongs to this run, else the run's derived root."""
    current = trace.get_current_span().get_span_context()
    if current.is_valid and current.trace_id == run_trace_id(run_id):
        return otel_context.get_current()
    return run_context(run_id)


@contextmanager
def step_span(*, run_id: str, step_id: str, node_id: str, node_type: str, attempt: int,
              workflow_id: str | None) -> Iterator[trace.Span]:  # fmt: skip
    """A span for one step attempt, child of its run's root span."""
    if not enabled():
        yield trace.INVALID_SPAN
        return
    attributes: dict[str, str | int] = {
        "flowloom.run_id": run_id, "flowloom.step_id": step_id, "flowloom.node_id": node_id,
        "flowloom.node_type": node_type, "flowloom.attempt": attempt, "flowloom.workflow_id": workflow_id or "",
    }  # fmt: skip
    with _tracer.start_as_current_span(
        f"step {node_id}", context=_step_parent(run_id), kind=SpanKind.INTERNAL, attributes=attributes,
        record_exception=True,
    ) as span:  # fmt: skip
        yield span


def step_result(span: trace.Span, outcome: str, error: str | None) -> None:
    if not span.is_recording():
        return
    span.set_attribute("flowloom.outcome", outcome)
    if error:
        span.set_status(Status(StatusCode.ERROR, error[:500]))


def emit_run_span(*, run_id: str, workflow: str, workflow_id: str | None, status: str,
                  started_at: datetime | None, error: str | None = None) -> None:  # fmt: skip
    """The run's root span, from its creation to now (called when the run ends)."""
    if not enabled():
        return
    token = _forced_ids.set((run_trace_id(run_id), run_span_id(run_id)))
    try:
        span = _tracer.start_span(
            RUN_SPAN, context=otel_context.Context(), kind=SpanKind.INTERNAL,
            start_time=int(started_at.timestamp() * 1e9) if started_at else None,
            attributes={"flowloom.run_id": run_id, "flowloom.workflow": workflow,
                        "flowloom.workflow_id": workflow_id or "", "flowloom.status": status},
        )  # fmt: skip
    finally:
        _forced_ids.reset(token)
    if status == "failed":
        span.set_status(Status(StatusCode.ERROR, (error or "failed")[:500]))
    span.end()


@contextmanager
def llm_span(*, system: str, model: str, operation: str) -> Iterator[trace.Span]:
    """A client span for one model call with the GenAI semantic conventions' request attributes."""
    if not enabled():
        yield trace.INVALID_SPAN
        return
    attributes = {
        "gen_ai.operation.name": operation, "gen_ai.system": system, "gen_ai.provider.name": system,
        "gen_ai.request.model": model,
    }  # fmt: skip
    with _tracer.start_as_current_span(
        f"{operation} {model}", kind=SpanKind.CLIENT, attributes=attributes, record_exception=True
    ) as span:
        yield span

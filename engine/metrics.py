"""Prometheus metrics: counters and histograms the engine's processes record, gauges read from the
database at scrape time, and the one function that renders them all for `/metrics`.

Correct across Celery's prefork processes through prometheus-client's multiprocess mode: every
process (web, worker pool children, scheduler) writes its samples to files in the directory named
by PROMETHEUS_MULTIPROC_DIR, which must be in the environment before `prometheus_client` is first
imported (prometheus-client picks its value store at import). `flowloom up` points every child at
one fresh `<data dir>/metrics` and removes it on exit; a lone `flowloom worker` makes a directory
of its own (`prepare_worker_dir`) and may serve it on FLOWLOOM_METRICS_PORT. Without the variable
(tests, `flowloom run`) the samples stay in the process.

Circuit breakers (engine/circuit_breaker.py) are read from Redis at scrape time too: one
`flowloom_circuit_state` series per destination and state (1 for the current one).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from engine import circuit_breaker
from models.core_tables import table_of
from models.tables import Approval, Event, StepRun

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Step durations span a 1 ms condition to a minutes-long model call.
_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
_LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)

RUNS_STARTED = Counter(
    "flowloom_runs_started", "Runs started, by workflow and how they started", ["workflow", "started_via"]
)
RUNS_FINISHED = Counter(
    "flowloom_runs_finished", "Runs that ended, by workflow and final status", ["workflow", "status"]
)
STEP_DURATION = Histogram(
    "flowloom_step_duration_seconds",
    "Time a node ran for one step attempt, by node type and outcome",
    ["node_type", "outcome"],
    buckets=_STEP_BUCKETS,
)
LLM_CALLS = Counter(
    "flowloom_llm_calls", "Model calls, by provider, model and outcome", ["provider", "model", "outcome"]
)
LLM_TOKENS = Counter(
    "flowloom_llm_tokens", "Tokens of model calls, by provider, model and kind (input|output)",
    ["provider", "model", "kind"],
)  # fmt: skip
LLM_LATENCY = Histogram(
    "flowloom_llm_call_duration_seconds",
    "Latency of one model call",
    ["provider", "model"],
    buckets=_LLM_BUCKETS,
)
STEP_SENDS_DEFERRED = Counter(
    "flowloom_step_sends_deferred",
    "Step messages the broker did not take (down or hanging): recorded unsent, sent by the sweeper later",
)
TRIGGER_DELIVERIES = Counter(
    "flowloom_trigger_deliveries",
    "Trigger deliveries, by trigger kind and outcome (started | duplicate)",
    ["kind", "outcome"],
)


def run_started(workflow: str, started_via: str) -> None:
    RUNS_STARTED.labels(workflow=workflow or "(inline)", started_via=started_via or "api").inc()


def run_finished(workflow: str, status: str) -> None:
    RUNS_FINISHED.labels(workflow=workflow or "(inline)", status=status).inc()


def step_ran(node_type: str, outcome: str, seconds: float) -> None:
    STEP_DURATION.labels(node_type=node_type, outcome=outcome).observe(max(seconds, 0.0))


def llm_called(
    provider: str, model: str, *, ok: bool, seconds: float, input_tokens: int, output_tokens: int
) -> None:
    LLM_CALLS.labels(provider=provider, model=model, outcome="ok" if ok else "error").inc()
    LLM_LATENCY.labels(provider=provider, model=model).observe(max(seconds, 0.0))
    if input_tokens:
        LLM_TOKENS.labels(provider=provider, model=model, kind="input").inc(input_tokens)
    if output_tokens:
        LLM_TOKENS.labels(provider=provider, model=model, kind="output").inc(output_tokens)


def trigger_delivered(kind: str, *, duplicate: bool) -> None:
    TRIGGER_DELIVERIES.labels(kind=kind, outcome="duplicate" if duplicate else "started").inc()


# ---------------------------------------------------------------------------------------------
# Gauges read from PostgreSQL when scraped: the database knows them for every process at once.

_steps, _approvals, _events = table_of(StepRun), table_of(Approval), table_of(Event)
_READY = (_steps.c.status == "queued") & (_steps.c.not_before.is_(None) | (_steps.c.not_before <= func.now()))
_QUEUE = select(func.count(), func.extract("epoch", func.now() - func.min(_steps.c.queued_at))).where(_READY)
_APPROVALS = select(
    func.count(), func.extract("epoch", func.now() - func.min(_approvals.c.created_at))
).where(_approvals.c.status == "pending")
_OUTBOX = select(func.count(), func.extract("epoch", func.now() - func.min(_events.c.created_at))).where(
    _events.c.published_at.is_(None)
)


DATABASE_GAUGES = {
    "flowloom_queue_depth": "Steps queued and due, waiting for a worker",
    "flowloom_queue_oldest_age_seconds": "Age of the oldest queued due step",
    "flowloom_approvals_pending": "Approvals waiting for a decision",
    "flowloom_approvals_oldest_age_seconds": "Age of the oldest pending approval",
    "flowloom_outbox_lag_events": "Events written but not yet published to Kafka (with Kafka set)",
    "flowloom_outbox_oldest_age_seconds": "Age of the oldest unpublished event (with Kafka set)",
    "flowloom_scrape_timestamp_seconds": "When this scrape read the database",
}


class DatabaseGauges(Collector):
    """Queue depth and age, approvals waiting and their age, outbox lag (with Kafka): one read each."""

    def __init__(self, engine: Engine, *, outbox: bool) -> None:
        self.engine = engine
        self.outbox = outbox

    def collect(self) -> Iterator[Metric]:
        with self.engine.connect() as conn:
            queued, queue_age = conn.execute(_QUEUE).one()
            pending, pending_age = conn.execute(_APPROVALS).one()
            outbox = conn.execute(_OUTBOX).one() if self.outbox else None
        values = {
            "flowloom_queue_depth": queued,
            "flowloom_queue_oldest_age_seconds": queue_age or 0,
            "flowloom_approvals_pending": pending,
            "flowloom_approvals_oldest_age_seconds": pending_age or 0,
            "flowloom_scrape_timestamp_seconds": time.time(),
        }
        if outbox is not None:
            values["flowloom_outbox_lag_events"] = outbox[0]
            values["flowloom_outbox_oldest_age_seconds"] = outbox[1] or 0
        for name, value in values.items():
            yield GaugeMetricFamily(name, DATABASE_GAUGES[name], value=float(value))


CIRCUIT_STATES = ("closed", "half-open", "open")


class CircuitGauges(Collector):
    """The circuit breakers' states and failure counts, as every worker shares them (Redis)."""

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "flowloom_circuit_state",
            "Circuit breaker state per destination (1 = current)",
            labels=["destination", "state"],
        )
        failures = GaugeMetricFamily(
            "flowloom_circuit_failures",
            "Failures in a row counted by a destination's breaker",
            labels=["destination"],
        )
        for circuit in circuit_breaker.circuits():
            for name in CIRCUIT_STATES:
                state.add_metric([circuit.destination, name], 1.0 if circuit.state == name else 0.0)
            failures.add_metric([circuit.destination], float(circuit.failures))
        yield state
        yield failures


class _ThisProcess(Collector):
    """This process's own samples (without a multiprocess directory)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def render(engine: Engine | None, *, outbox: bool = False, multiproc_dir: str | None = None) -> bytes:
    """The exposition text: every process's samples (the multiprocess directory's, else this
    process's) and, with `engine`, the database gauges and the circuit breakers."""
    registry = CollectorRegistry(auto_describe=False)
    path = multiproc_dir or os.environ.get(MULTIPROC_ENV)
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_ThisProcess())
    if engine is not None:
        registry.register(DatabaseGauges(engine, outbox=outbox))
        registry.register(CircuitGauges())
    return generate_latest(registry)


# ---------------------------------------------------------------------------------------------
# The multiprocess directory's life.


def reset_dir(path: Path) -> Path:
    """An empty directory at `path` (samples of an earlier start removed)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def serve(port: int, host: str) -> None:
    """Serve every pool process's samples on http://host:port/metrics (a lone worker's exporter)."""
    registry = CollectorRegistry(auto_describe=False)
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_ThisProcess())
    start_http_server(port, addr=host, registry=registry)


def process_exited(pid: int) -> None:
    """Drop the live-gauge files of a pool process that exited (its counters stay counted)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path and Path(path).is_dir():
        mark_process_dead(pid, path)

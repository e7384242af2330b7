"""Celery tasks: run one step durably, run a node family's background job; the sweeper and lease
heartbeat run beside them.

The tasks are registered on the app `create_worker_app()` builds (what `flowloom worker` runs);
senders only need the task names (`dispatch.STEP_TASK`, `jobs.JOB_TASK`, `flowloom.ping`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from celery import Celery, Task, current_task
from celery.signals import (
    setup_logging,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from engine import (
    approvals,
    child_runs,
    dispatch,
    executor,
    guardrail_actions,
    health_events,
    jobs,
    leases,
    logs,
    metrics,
    retention,
    run_slots,
    tracing,
    waiting,
)
from engine.celery_app import create_celery
from engine.contract import load_plugins
from engine.definition import RetryPolicy
from engine.observability import observe_process
from engine.settings import get_settings
from engine.step_runner import Outcome, run_node
from models.db import get_engine

log = logging.getLogger("flowloom.worker")

PING_TASK = "flowloom.ping"

# Load every node plug-in in the parent so forked worker processes start warm.
load_plugins()


def _db():
    return get_engine(get_settings().database_url)


def create_worker_app(redis_url: str | None = None) -> Celery:
    """The app a worker runs: on the settings' Redis (or `redis_url`), current, the engine's tasks on it."""
    return register_tasks(create_celery(redis_url))


def register_tasks(app: Celery) -> Celery:
    """Register the engine's tasks on `app` (only there) and the worker's sweeper and heartbeat hooks."""
    app.task(name=PING_TASK, ignore_result=False, shared=False)(ping)
    app.task(
        name=dispatch.STEP_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True, shared=False
    )(run_step)
    # A job's progress and outcome go to the result backend; a job whose worker dies is reported
    # failed rather than redelivered (a model too big for the machine would kill every worker in turn).
    app.task(
        name=jobs.JOB_TASK, bind=True, acks_late=True, reject_on_worker_lost=False, track_started=True,
        ignore_result=False, shared=False,
    )(run_job)  # fmt: skip
    # Receivers are kept by identity, so registering on a second app does not connect them twice.
    worker_ready.connect(_start_sweeper)
    worker_shutdown.connect(_stop_sweeper)
    worker_ready.connect(health_events.start_worker_reporter)  # system.health_check from the main process
    worker_shutdown.connect(health_events.stop_worker_reporter)
    worker_process_init.connect(_reset_after_fork)
    worker_process_shutdown.connect(_pool_process_exits)
    setup_logging.connect(_configure_logging)  # Celery then leaves logging to us (JSON lines)
    worker_ready.connect(_serve_metrics)
    return app


def ping() -> str:
    """A no-op: health checks and the benchmark's baseline."""
    return "pong"


def run_step(step_id: str) -> None:
    """Run one step; a redelivered message for a finished or owned step does nothing."""
    with tracing.attached(tracing.extract_headers(_message_headers())):
        execute_step(step_id)


def _message_headers() -> dict[str, Any]:
    """The step message's headers (the trace context dispatch.send put there)."""
    request = getattr(current_task, "request", None)
    found = dict(getattr(request, "headers", None) or {})
    for key in ("traceparent", "tracestate"):
        value = getattr(request, key, None)
        if isinstance(value, str):
            found.setdefault(key, value)
    return found


def run_job(task: Task, name: str, params: dict) -> dict:
    """Run a node family's background job by name, reporting its progress (engine/jobs.py)."""
    return jobs.run(task, name, params)


def execute_step(step_id: str) -> str:
    """Claim, run and record one step; returns what happened (for logs and tests).

    When exactly one step becomes ready and nothing else is, this process runs it next instead of
    sending it through the broker (up to FLOWLOOM_INLINE_STEPS in a row), claiming it in the same
    transaction that records the step before it: if this process dies, the claim's lease expires
    and the sweeper sends it as usual. Fan-outs and delayed retries always go through Celery, so
    parallel branches still spread over the workers.
    """
    inline_left = get_settings().inline_steps
    result, sent, claimed = _execute_once(step_id, None, inline=inline_left > 0)
    while claimed is not None:
        inline_left -= 1
        _, sent, claimed = _execute_once(claimed.step_id, claimed, inline=inline_left > 0)
    dispatch.send(sent)
    return result


def _execute_once(
    step_id: str, claimed: executor.ClaimedStep | None, *, inline: bool
) -> tuple[str, list[executor.Dispatch], executor.ClaimedStep | None]:
    """Run one step (claimed here, or already by the transaction before); what happened, what to
    send, and the next step when this process claimed it to run inline."""
    settings = get_settings()
    engine = _db()
    with engine.begin() if claimed is None else engine.connect() as conn:
        step = claimed or executor.claim_step(
            conn, step_id, lease_s=settings.step_lease_s, worker=_worker_name()
        )
        if step is None:
            return (*_resume_timer_if_due(step_id), None)
        run = executor.load_run(conn, step.run_id)  # cached: no statement for a run seen before
    ids = {"run_id": step.run_id, "step_id": step_id, "node_id": step.node_id, "workflow_id": run.workflow_id}
    with logs.bound(**ids), tracing.step_span(
        run_id=step.run_id, step_id=step_id, node_id=step.node_id, node_type=step.node_type,
        attempt=step.attempt, workflow_id=run.workflow_id,
    ) as span:  # fmt: skip
        result, sent, outcome, following = _run_claimed(step, run, settings, inline=inline)
        tracing.step_result(span, result, outcome.error)
        log.debug("step %s (%s) %s", step.node_id, step.node_type, result)
    metrics.step_ran(step.node_type, result, outcome.metrics.get("duration_ms", 0) / 1000)
    return result, sent, following


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _run_claimed(
    step: executor.ClaimedStep, run: executor.RunContext, settings: Any, *, inline: bool = False
) -> tuple[str, list[executor.Dispatch], Outcome, executor.ClaimedStep | None]:
    """Run a claimed step's node and record what happened; with `inline`, a lone step that became
    ready without a delay is claimed in the same transaction (returned last, not to be sent)."""
    engine = _db()
    steps = executor.LazyMapping(lambda: _load_step_outputs(step.run_id))
    step_id = step.step_id
    guard = guardrail_actions.load_guard(engine, step, run)
    _heartbeat.add(step_id)
    try:
        outcome = run_node(
            step,
            run,
            steps,
            max_payload_bytes=settings.max_payload_bytes,
            sql_connection=_sql_connection,
            guard=guard,
        )
    finally:
        _heartbeat.discard(step_id)
    with engine.begin() as conn:
        if outcome.masked:
            guardrail_actions.record_masked(conn, step, outcome.masked)
        if outcome.violation is not None:
            result, sent = guardrail_actions.record_violation(
                conn, step, outcome.violation, metrics=outcome.metrics
            )
        elif outcome.suspend is not None:
            sent = waiting.suspend_step(
                conn, step, kind=outcome.suspend.kind, request=outcome.suspend.request
            )
            result = "waiting"
        elif outcome.child is not None:
            sent = child_runs.start_child(conn, step, run, outcome.child)
            result = "waiting"
        elif outcome.error is None:
            sent = executor.finish_step(conn, step, outputs=outcome.outputs, metrics=outcome.metrics)
            result = "succeeded"
        else:
            node = run.graph.nodes[step.node_id]
            retry: RetryPolicy = node.retry or run.defn.error_handling.retry
            if outcome.retryable and step.attempt < retry.max_attempts:
                delay = retry.backoff_for(step.attempt)
                if outcome.retry_after_s:  # the server's Retry-After, or an open circuit's time left
                    delay = max(delay, outcome.retry_after_s)
                sent = waiting.schedule_retry(conn, step, delay_s=delay, error=outcome.error)
                result = "retrying"
            else:
                sent = executor.finish_step(
                    conn,
                    step,
                    outputs={"error": _error_output(outcome)},
                    error=outcome.error,
                    error_code=outcome.error_code,
                    error_field=outcome.error_field,
                    metrics=outcome.metrics,
                )
                result = "failed"
        following = None
        if inline and len(sent) == 1 and not sent[0].countdown:
            following = executor.claim_step(
                conn, sent[0].step_id, lease_s=settings.step_lease_s, worker=_worker_name()
            )
            if following is not None:
                sent = []
    return result, sent, outcome, following


def _error_output(outcome: Outcome) -> dict[str, Any]:
    """What a failed step's `error` port carries: the message, and the code and field when known."""
    error: dict[str, Any] = {"message": outcome.error}
    if outcome.error_code:
        error["code"] = outcome.error_code
    if outcome.error_field:
        error["field"] = outcome.error_field
    return error


def _load_step_outputs(run_id: str) -> dict:
    with _db().connect() as conn:
        return executor.step_outputs(conn, run_id)


def _resume_timer_if_due(step_id: str) -> tuple[str, list[executor.Dispatch]]:
    """A delay node's timer fired: finish the waiting step with its input passed through."""
    with _db().begin() as conn:
        step = waiting.due_timer_step(conn, step_id)
        if step is None:
            return "skipped", []
        sent = executor.finish_step(
            conn, step, outputs={"out": step.inputs.get("in")}, expected_status="waiting"
        )
    return "resumed", sent


def _sql_connection(name: str) -> str:
    urls = get_settings().sql_connections
    if name not in urls:
        raise KeyError(name)
    return urls[name]


class _Heartbeat:
    """Extends the lease of every step this process is running, from one thread."""

    def __init__(self) -> None:
        self._steps: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, step_id: str) -> None:
        with self._lock:
            self._steps.add(step_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="flowloom-heartbeat", daemon=True)
                self._thread.start()

    def discard(self, step_id: str) -> None:
        with self._lock:
            self._steps.discard(step_id)

    def _loop(self) -> None:
        lease = get_settings().step_lease_s
        while True:
            time.sleep(lease / 3)
            with self._lock:
                ids = list(self._steps)
            if not ids:
                continue
            try:
                with _db().begin() as conn:
                    leases.extend_leases(conn, ids, lease_s=lease)
            except Exception:  # the database is briefly away: the next beat tries again
                log.warning("lease heartbeat failed", exc_info=True)


_heartbeat = _Heartbeat()


class _Sweeper(threading.Thread):
    """Resends steps whose worker died or whose message never left (runs in each worker)."""

    def __init__(self) -> None:
        super().__init__(name="flowloom-sweeper", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        settings = get_settings()
        while not self.stopping.wait(settings.sweep_interval_s):
            try:
                sweep_once()
            except Exception:
                log.warning("sweep failed", exc_info=True)


def sweep_once() -> int:
    """One sweep: resend lost steps, admit runs waiting for a slot, apply approval deadlines and
    sub-workflow steps' timeouts; returns how many steps were resent."""
    settings = get_settings()
    with _db().begin() as conn:
        lost = leases.lost_steps(conn, resend_after_s=settings.step_lease_s)
    if lost:
        log.info("resending %d lost step(s)", len(lost))
    dispatch.send(lost)
    admit_waiting()
    expired = approvals.expire_due()
    if expired:
        log.info("applied the deadline of %d approval(s)", expired)
    timed_out = child_runs.expire_due()
    if timed_out:
        log.info("timed out %d sub-workflow step(s) and cancelled their child runs", timed_out)
    return len(lost)


def admit_waiting() -> int:
    """Admit the runs a free slot lets start in every workspace (a worker that died between ending a
    run and admitting the next leaves nothing waiting for longer than a sweep); how many steps left."""
    with _db().connect() as conn:
        waiting_in = run_slots.workspaces_waiting(conn)
    sent = 0
    for workspace_id in waiting_in:
        with _db().begin() as conn:
            ready = run_slots.admit(conn, workspace_id)
        dispatch.send(ready)
        sent += len(ready)
    return sent


class _Pruner(threading.Thread):
    """Applies every workspace's retention every FLOWLOOM_PRUNE_INTERVAL_S (one worker at a time)."""

    def __init__(self) -> None:
        super().__init__(name="flowloom-pruner", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(get_settings().prune_interval_s):
            try:
                retention.prune_all()
            except Exception:  # a lock timeout or the database briefly away: the next pass retries
                log.warning("prune failed", exc_info=True)


_sweeper: _Sweeper | None = None
_pruner: _Pruner | None = None


def _start_sweeper(**_: object) -> None:
    global _sweeper, _pruner
    _sweeper = _Sweeper()
    _sweeper.start()
    _pruner = _Pruner()
    _pruner.start()
    log.info(
        "sweeper started: every %ss, resending steps lost for %ss",
        get_settings().sweep_interval_s,
        get_settings().step_lease_s,
    )


def _stop_sweeper(**_: object) -> None:
    if _sweeper is not None:
        _sweeper.stopping.set()
    if _pruner is not None:
        _pruner.stopping.set()


def _reset_after_fork(**_: object) -> None:
    # Connections and threads do not survive fork: each child builds its own (the span exporter too).
    global _heartbeat
    _heartbeat = _Heartbeat()
    observe_process("worker")


def _configure_logging(**_: object) -> None:
    settings = get_settings()
    logs.configure(level=settings.log_level, fmt=settings.log_format, process_role="worker")


def _serve_metrics(**_: object) -> None:
    """With FLOWLOOM_METRICS_PORT, this worker's own exporter (for workers on other machines)."""
    settings = get_settings()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.host)
        log.info("this worker's metrics at http://%s:%s/metrics", settings.host, settings.metrics_port)


def _pool_process_exits(pid: int | None = None, **_: object) -> None:
    tracing.flush()
    metrics.process_exited(pid or os.getpid())

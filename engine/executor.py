"""Durable step transitions: every change of a run or step is one short transaction.

Functions here take an open connection (inside a transaction) and return the step ids
whose Celery messages must be sent after the commit. They never talk to Celery.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, text

from engine import events, expressions
from engine.definition import WorkflowDefinition
from engine.errors import FlowloomError
from engine.run_state import (
    ClaimedStep,
    Dispatch,
    LazyMapping,
    RunContext,
    load_run,
    primary_output,
    step_outputs,
    to_json,
)
from engine.scheduler import TERMINAL, Graph, NodeState, dag_decide, fired_edges, port_inputs
from engine.settings import get_settings


def create_run(
    conn: Connection,
    defn: WorkflowDefinition,
    inputs: dict[str, Any],
    *,
    workflow_id: str | None = None,
    version_id: str | None = None,
    created_by: str | None = None,
    started_by: str = "",
    started_via: str = "",
) -> tuple[str, list[Dispatch]]:
    """Insert a running run and its start step; returns the run id and the start step to send."""
    run_id = str(uuid.uuid4())
    conn.execute(
        text(
            "INSERT INTO runs (id, workflow_id, version_id, definition, status, inputs, cancel_requested,"
            " created_by, started_by, started_via, created_at, started_at) VALUES (:id, :wf, :ver,"
            " CAST(:d AS jsonb), 'running', CAST(:inputs AS jsonb), false, :by, :started_by, :via, now(), now())"
        ),
        {
            "id": run_id,
            "wf": workflow_id,
            "ver": version_id,
            "d": defn.model_dump_json(),
            "inputs": to_json(inputs),
            "by": created_by,
            "started_by": started_by[:120],
            "via": started_via[:20],
        },
    )
    graph = Graph(defn)
    events.emit(conn, events.WORKFLOW_STARTED, run_id, workflow=defn.id, name=defn.name, inputs=inputs)
    step_id = _insert_step(conn, run_id, graph, graph.start, 1, {})
    return run_id, [Dispatch(step_id)]


def _insert_step(conn: Connection, run_id: str, graph: Graph, node_id: str, visit: int, inputs: dict) -> str:
    step_id = str(uuid.uuid4())
    conn.execute(
        text(
            "INSERT INTO step_runs (id, run_id, node_id, node_type, visit, status, attempt, inputs, queued_at,"
            " sent_at) VALUES (:id, :run, :node, :type, :visit, 'queued', 0, CAST(:inputs AS jsonb), now(), now())"
        ),
        {
            "id": step_id,
            "run": run_id,
            "node": node_id,
            "type": graph.nodes[node_id].type,
            "visit": visit,
            "inputs": to_json(inputs),
        },
    )
    return step_id


_CLAIM = text(
    "UPDATE step_runs s SET status = 'running', attempt = s.attempt + 1,"
    " lease_until = now() + make_interval(secs => :lease), started_at = coalesce(s.started_at, now()),"
    " worker = :worker FROM runs r"
    " WHERE s.id = :id AND r.id = s.run_id AND r.status = 'running' AND s.attempt < :max_attempts AND ("
    "  (s.status = 'queued' AND (s.not_before IS NULL OR s.not_before <= now()))"
    "  OR (s.status = 'running' AND s.lease_until < now()))"
    " RETURNING s.run_id, s.node_id, s.node_type, s.visit, s.attempt, s.inputs"
)


def claim_step(conn: Connection, step_id: str, *, lease_s: float, worker: str) -> ClaimedStep | None:
    """Take a queued step (or one whose lease expired); None if it is not ours to run."""
    max_attempts = get_settings().max_step_attempts  # past it, lost_steps fails the step
    row = conn.execute(
        _CLAIM, {"id": step_id, "lease": lease_s, "worker": worker, "max_attempts": max_attempts}
    ).first()
    if row is None:
        return None
    run_id = str(row.run_id)
    events.emit(conn, events.STEP_STARTED, run_id, step_id=step_id, node_id=row.node_id, attempt=row.attempt)
    return ClaimedStep(step_id, run_id, row.node_id, row.node_type, row.visit, row.attempt, row.inputs or {})


def _lock_run(conn: Connection, run_id: str) -> str:
    return conn.execute(
        text("SELECT status FROM runs WHERE id = :id FOR UPDATE"), {"id": run_id}
    ).scalar_one()


def _node_states(conn: Connection, run_id: str) -> dict[str, NodeState]:
    rows = conn.execute(
        text(
            "SELECT DISTINCT ON (node_id) node_id, status, fired_edges FROM step_runs"
            " WHERE run_id = :run ORDER BY node_id, visit DESC"
        ),
        {"run": run_id},
    )
    return {r.node_id: NodeState(r.status, r.fired_edges or []) for r in rows}


def finish_step(
    conn: Connection,
    step: ClaimedStep,
    *,
    outputs: dict[str, Any] | None,
    error: str | None = None,
    expected_status: str = "running",
    metrics: dict[str, Any] | None = None,
) -> list[Dispatch]:
    """Store a step's result, route to what is ready next, and finish the run when it is done."""
    run = load_run(conn, step.run_id)
    if _lock_run(conn, step.run_id) != "running":
        conn.execute(
            text(
                "UPDATE step_runs SET status = 'cancelled', finished_at = now(), lease_until = NULL"
                " WHERE id = :id AND status IN ('queued', 'running', 'waiting')"
            ),
            {"id": step.step_id},
        )
        return []
    failed = error is not None
    variables = {"input": run.inputs, "steps": LazyMapping(lambda: step_outputs(conn, step.run_id))}
    try:
        with expressions.evaluation_budget():  # one budget for all of this step's edge conditions
            fired = fired_edges(run.graph, step.node_id, outputs, failed=failed, variables=variables)
    except FlowloomError as exc:
        failed, error, fired, outputs = True, str(exc), [], {"error": {"message": str(exc)}}
    done = conn.execute(
        text(
            "UPDATE step_runs SET status = :status, outputs = CAST(:outputs AS jsonb), error = :error,"
            " fired_edges = CAST(:fired AS jsonb), finished_at = now(), lease_until = NULL,"
            " metrics = CAST(:metrics AS jsonb)"
            " WHERE id = :id AND status = :expected AND attempt = :attempt RETURNING id"
        ),
        {
            "status": "failed" if failed else "succeeded",
            "outputs": to_json(outputs),
            "error": error,
            "fired": to_json(fired),
            "metrics": to_json(metrics),
            "id": step.step_id,
            "expected": expected_status,
            "attempt": step.attempt,
        },
    ).first()
    if done is None:  # our lease expired and another worker owns the step now
        return []
    if failed:
        events.emit(
            conn, events.STEP_FAILED, step.run_id, step_id=step.step_id, node_id=step.node_id, error=error
        )
    else:
        events.emit(
            conn,
            events.STEP_COMPLETED,
            step.run_id,
            step_id=step.step_id,
            node_id=step.node_id,
            fired_edges=fired,
        )
    if failed and not fired and run.defn.error_handling.on_error == "fail":
        _end_run(conn, run, "failed", error=f'node "{step.node_id}" failed: {error}')
        return []
    if run.defn.mode == "state_machine":
        return _next_state(conn, run, step, fired, outputs or {})
    return _next_dag_steps(conn, run, step, outputs or {})


def _next_dag_steps(conn: Connection, run: RunContext, step: ClaimedStep, outputs: dict) -> list[Dispatch]:
    states = _node_states(conn, step.run_id)
    candidates = [e.target for e in run.graph.out[step.node_id]]
    decision = dag_decide(run.graph, candidates, states)
    for node_id in decision.skipped:
        conn.execute(
            text(
                "INSERT INTO step_runs (id, run_id, node_id, node_type, visit, status, attempt, queued_at,"
                " finished_at) VALUES (:id, :run, :node, :type, 1, 'skipped', 0, now(), now())"
                " ON CONFLICT DO NOTHING"
            ),
            {
                "id": str(uuid.uuid4()),
                "run": step.run_id,
                "node": node_id,
                "type": run.graph.nodes[node_id].type,
            },
        )
        events.emit(conn, events.STEP_SKIPPED, step.run_id, node_id=node_id)
    dispatches = []
    for node_id in decision.ready:
        sources = [e.source for e in run.graph.inc[node_id] if e.source != step.node_id]
        outs = _outputs_of(conn, step.run_id, sources)
        outs[step.node_id] = outputs
        fired = {src: states[src].fired_edges for src in states}
        inputs = port_inputs(run.graph, node_id, fired, outs)
        dispatches.append(Dispatch(_insert_step(conn, step.run_id, run.graph, node_id, 1, inputs)))
    if not dispatches and not _has_active_steps(conn, step.run_id):
        _complete_run(conn, run)
    return dispatches


def _outputs_of(conn: Connection, run_id: str, node_ids: list[str]) -> dict[str, Any]:
    if not node_ids:
        return {}
    rows = conn.execute(
        text(
            "SELECT DISTINCT ON (node_id) node_id, outputs FROM step_runs WHERE run_id = :run"
            " AND node_id = ANY(:ids) ORDER BY node_id, visit DESC"
        ),
        {"run": run_id, "ids": node_ids},
    )
    return {r.node_id: r.outputs for r in rows}


def _has_active_steps(conn: Connection, run_id: str) -> bool:
    return bool(
        conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM step_runs WHERE run_id = :run"
                " AND status IN ('queued', 'running', 'waiting'))"
            ),
            {"run": run_id},
        ).scalar()
    )


def _next_state(
    conn: Connection, run: RunContext, step: ClaimedStep, fired: list[str], outputs: dict
) -> list[Dispatch]:
    node = run.graph.nodes[step.node_id]
    if not fired:
        if node.type == "end":
            _complete_run(conn, run)
        else:
            _end_run(conn, run, "failed", error=f'state "{step.node_id}": no transition matched its output')
        return []
    edge = next(e for e in run.graph.out[step.node_id] if e.id == fired[0])
    target = run.graph.nodes[edge.target]
    visit = (
        1
        + conn.execute(
            text("SELECT coalesce(max(visit), 0) FROM step_runs WHERE run_id = :run AND node_id = :node"),
            {"run": step.run_id, "node": target.id},
        ).scalar_one()
    )
    limit = target.max_visits or run.defn.policy.max_visits
    if visit > limit:
        _end_run(
            conn,
            run,
            "failed",
            error=f'state "{target.id}" would be visited {visit} times; the limit is {limit} (max_visits)',
        )
        return []
    inputs = {edge.target_port: outputs.get(edge.source_port)}
    return [Dispatch(_insert_step(conn, step.run_id, run.graph, target.id, visit, inputs))]


def _complete_run(conn: Connection, run: RunContext) -> None:
    rows = conn.execute(
        text(
            "SELECT node_id, node_type, status, outputs FROM step_runs WHERE run_id = :run ORDER BY finished_at"
        ),
        {"run": run.run_id},
    ).all()
    ends = [r for r in rows if r.node_type == "end" and r.status == "succeeded"]
    if not ends:
        failed = [r.node_id for r in rows if r.status == "failed"]
        reason = f"failed nodes: {', '.join(failed)}" if failed else "every path was skipped"
        _end_run(conn, run, "failed", error=f"no end node was reached ({reason})")
        return
    if run.defn.outputs:
        variables = {"input": run.inputs, "steps": step_outputs(conn, run.run_id)}
        outputs = {}
        with expressions.evaluation_budget():  # one budget for all of the run's outputs
            for key, template in run.defn.outputs.items():
                try:
                    outputs[key] = expressions.render_value(template, variables)
                except FlowloomError as exc:
                    error = f'run output "{key}" (outputs.{key}) failed: {exc}; fix that template'
                    _end_run(conn, run, "failed", error=error)
                    return
    else:
        last = primary_output(ends[-1].outputs)
        outputs = last if isinstance(last, dict) else {"out": last}
    _end_run(conn, run, "succeeded", outputs=outputs)


def _end_run(
    conn: Connection, run: RunContext, status: str, *, error: str | None = None, outputs: dict | None = None
) -> None:
    conn.execute(
        text(
            "UPDATE runs SET status = :status, error = :error, outputs = CAST(:outputs AS jsonb),"
            " finished_at = now() WHERE id = :id AND status = 'running'"
        ),
        {"status": status, "error": error, "outputs": to_json(outputs), "id": run.run_id},
    )
    conn.execute(
        text(
            "UPDATE step_runs SET status = 'cancelled', finished_at = now(), lease_until = NULL"
            " WHERE run_id = :run AND status IN ('queued', 'waiting')"
        ),
        {"run": run.run_id},
    )
    conn.execute(
        text("UPDATE approvals SET status = 'cancelled' WHERE run_id = :run AND status = 'pending'"),
        {"run": run.run_id},
    )
    kind = {"succeeded": events.WORKFLOW_COMPLETED, "failed": events.WORKFLOW_FAILED}.get(
        status, events.WORKFLOW_CANCELLED
    )
    events.emit(conn, kind, run.run_id, status=status, error=error, outputs=outputs)


def schedule_retry(conn: Connection, step: ClaimedStep, *, delay_s: float, error: str) -> list[Dispatch]:
    """Put a failed step back in the queue after `delay_s` (backoff); fail it at the attempt cap."""
    max_attempts = get_settings().max_step_attempts
    if step.attempt >= max_attempts:  # whatever the node's retry policy says
        error = f"{error} (gave up after {step.attempt} attempts: FLOWLOOM_MAX_STEP_ATTEMPTS)"
        return finish_step(conn, step, outputs={"error": {"message": error}}, error=error)
    row = conn.execute(
        text(
            "UPDATE step_runs SET status = 'queued', error = :error, lease_until = NULL,"
            " not_before = now() + make_interval(secs => :delay), sent_at = now()"
            " WHERE id = :id AND status = 'running' AND attempt = :attempt RETURNING id"
        ),
        {"error": error, "delay": delay_s, "id": step.step_id, "attempt": step.attempt},
    ).first()
    if row is None:
        return []
    events.emit(
        conn,
        events.STEP_RETRYING,
        step.run_id,
        step_id=step.step_id,
        node_id=step.node_id,
        attempt=step.attempt,
        delay_s=delay_s,
        error=error,
    )
    return [Dispatch(step.step_id, countdown=delay_s)]


def suspend_step(
    conn: Connection, step: ClaimedStep, *, kind: str, request: dict[str, Any]
) -> list[Dispatch]:
    """Park a step that waits for a human (approval) or a timer; no worker is held."""
    resume_after = float(request.get("resume_after_s") or 0) if kind == "timer" else 0.0
    row = conn.execute(
        text(
            "UPDATE step_runs SET status = 'waiting', lease_until = NULL,"
            " not_before = CASE WHEN :after > 0 THEN now() + make_interval(secs => :after) END"
            " WHERE id = :id AND status = 'running' AND attempt = :attempt RETURNING id"
        ),
        {"after": resume_after, "id": step.step_id, "attempt": step.attempt},
    ).first()
    if row is None:
        return []
    events.emit(conn, events.STEP_WAITING, step.run_id, step_id=step.step_id, node_id=step.node_id, kind=kind)
    if kind == "approval":
        deadline_s = request.get("deadline_s")
        approval_id = str(uuid.uuid4())
        conn.execute(
            text(
                "INSERT INTO approvals (id, run_id, step_id, node_id, status, title, body, request, deadline,"
                " created_at) VALUES (:id, :run, :step, :node, 'pending', :title, :body, CAST(:req AS jsonb),"
                " CASE WHEN CAST(:dl AS float8) IS NULL THEN NULL"
                " ELSE now() + make_interval(secs => CAST(:dl AS float8)) END, now())"
            ),
            {
                "id": approval_id,
                "run": step.run_id,
                "step": step.step_id,
                "node": step.node_id,
                "title": str(request.get("title", ""))[:300],
                "body": str(request.get("body", "")),
                "req": to_json(request),
                "dl": deadline_s,
            },
        )
        events.emit(
            conn,
            events.APPROVAL_REQUESTED,
            step.run_id,
            approval_id=approval_id,
            step_id=step.step_id,
            node_id=step.node_id,
            title=request.get("title", ""),
        )
    return []


def waiting_step(conn: Connection, step_id: str) -> ClaimedStep | None:
    """A waiting step, locked, ready to be resumed with the outside world's answer."""
    row = conn.execute(
        text(
            "SELECT id, run_id, node_id, node_type, visit, attempt, inputs FROM step_runs"
            " WHERE id = :id AND status = 'waiting' FOR UPDATE"
        ),
        {"id": step_id},
    ).first()
    if row is None:
        return None
    return ClaimedStep(
        str(row.id), str(row.run_id), row.node_id, row.node_type, row.visit, row.attempt, row.inputs or {}
    )


def cancel_run(conn: Connection, run_id: str) -> bool:
    """Cancel a running run; queued and waiting steps are cancelled, running ones are discarded."""
    if _lock_run(conn, run_id) != "running":
        return False
    conn.execute(text("UPDATE runs SET cancel_requested = true WHERE id = :id"), {"id": run_id})
    _end_run(conn, load_run(conn, run_id), "cancelled", error="cancelled by request")
    conn.execute(
        text(
            "UPDATE step_runs SET status = 'cancelled', finished_at = now(), lease_until = NULL"
            " WHERE run_id = :run AND status = 'running'"
        ),
        {"run": run_id},
    )
    return True


def _fail_exhausted_steps(conn: Connection, limit: int) -> list[Dispatch]:
    """Fail steps that used up FLOWLOOM_MAX_STEP_ATTEMPTS (claim_step no longer takes them)."""
    max_attempts = get_settings().max_step_attempts
    rows = conn.execute(
        text(
            "SELECT s.id, s.run_id, s.node_id, s.node_type, s.visit, s.attempt, s.inputs, s.status"
            " FROM step_runs s JOIN runs r ON r.id = s.run_id AND r.status = 'running'"
            " WHERE s.attempt >= :max AND ((s.status = 'running' AND s.lease_until < now())"
            "  OR (s.status = 'queued' AND (s.not_before IS NULL OR s.not_before <= now())))"
            " LIMIT :limit"
        ),
        {"max": max_attempts, "limit": limit},
    ).all()
    sent: list[Dispatch] = []
    for row in rows:
        step = ClaimedStep(
            str(row.id), str(row.run_id), row.node_id, row.node_type, row.visit, row.attempt, row.inputs or {}
        )
        error = (
            f"started {row.attempt} times without finishing (its worker stopped or it outlived its"
            f" lease every time); the limit is {max_attempts} attempts (FLOWLOOM_MAX_STEP_ATTEMPTS)"
        )
        outputs = {"error": {"message": error}}
        sent += finish_step(conn, step, outputs=outputs, error=error, expected_status=row.status)
    return sent


def lost_steps(conn: Connection, *, resend_after_s: float, limit: int = 500) -> list[Dispatch]:
    """Steps to send again: leases that expired (worker died) or messages never delivered.

    Steps that already had FLOWLOOM_MAX_STEP_ATTEMPTS attempts are failed instead (their error
    edges, if any, are what is sent); no step is redelivered forever.
    """
    exhausted = _fail_exhausted_steps(conn, limit)
    rows = conn.execute(
        text(
            "UPDATE step_runs s SET sent_at = now() FROM runs r WHERE s.id IN ("
            "  SELECT s2.id FROM step_runs s2 WHERE"
            "  (s2.status = 'running' AND s2.lease_until < now())"
            "  OR (s2.status = 'queued' AND s2.sent_at < now() - make_interval(secs => :after)"
            "      AND (s2.not_before IS NULL OR s2.not_before <= now()))"
            "  OR (s2.status = 'waiting' AND s2.not_before IS NOT NULL AND s2.not_before <= now()"
            "      AND s2.sent_at < now() - make_interval(secs => :after))"
            "  LIMIT :limit FOR UPDATE SKIP LOCKED)"
            " AND r.id = s.run_id AND r.status = 'running' RETURNING s.id"
        ),
        {"after": resend_after_s, "limit": limit},
    )
    return exhausted + [Dispatch(str(r.id)) for r in rows]


__all__ = [
    "TERMINAL",
    "ClaimedStep",
    "Dispatch",
    "LazyMapping",
    "RunContext",
    "load_run",
    "step_outputs",
]

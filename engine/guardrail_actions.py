"""What the worker does around a guarded step: build its guard, and act on a violation.

`load_guard` reads what the checks need (the run's step count, age and LLM totals, and the rules a
person waived for this step) in the claim's transaction. `record_violation` writes the
`workflow.guardrail.violated` event and the audit entry and then applies the rule set's action:
`fail` fails the step and ends the run, `error_branch` fails the step so its error edges (or the
workflow's error handling) take over, `human_review` parks the step in the approval inbox.
A reviewer's decision comes back through `engine.approvals.decide` to `decide_review`: approving
an input or execution violation runs the node again with that rule waived; approving an output
violation passes the held outputs on; rejecting fails the step like `error_branch`.
"""

from __future__ import annotations

import sys
from typing import Any

from sqlalchemy import Connection, Engine, Float, Integer, bindparam, cast, func, select, update

from engine import agent_store, audit, events, executor, waiting
from engine.errors import ErrorCode
from engine.guardrail_checks import RunTotals, StepGuard, Violation
from engine.guardrails import GuardrailsInvalid, Resolved, resolve
from engine.run_state import ClaimedStep, Dispatch, RunContext, status_literal
from engine.settings import get_settings
from models.core_tables import table_of
from models.tables import Approval, Run, StepRun

REVIEW_KIND = "guardrail_review"
ACTOR = "system:guardrails"
_steps, _runs, _approvals = table_of(StepRun), table_of(Run), table_of(Approval)

_STEPS_STARTED = select(func.count()).where(
    _steps.c.run_id == bindparam("run"), _steps.c.started_at.is_not(None)
)
_RUN_AGE = select(func.extract("epoch", func.now() - _runs.c.started_at)).where(
    _runs.c.id == bindparam("run")
)


def _metric(name: str, kind: Any):
    return func.coalesce(func.sum(cast(_steps.c.metrics[name].astext, kind)), 0)


_LLM_TOTALS = select(
    _metric("llm_calls", Integer),
    _metric("llm_input_tokens", Integer) + _metric("llm_output_tokens", Integer),
    _metric("llm_cost_usd", Float),
).where(_steps.c.run_id == bindparam("run"), _steps.c.id != bindparam("step"))
_WAIVERS = select(_approvals.c.request).where(
    _approvals.c.step_id == bindparam("step"),
    _approvals.c.status == status_literal("approved"),
    _approvals.c.request["kind"].astext == REVIEW_KIND,
)


def resolved_for(run: RunContext, node_id: str) -> Resolved | None:
    """The node's merged guardrails (instance setting, workflow policy, node), None if none are set."""
    node = run.graph.nodes[node_id]
    return resolve(
        get_settings().guardrails, run.defn.policy.guardrails, node.guardrails, _agent_guardrails(node)
    )


def _agent_guardrails(node: Any) -> dict[str, Any] | None:
    """The guardrails of the saved agent a node names by `agent_id` (not one picked by capability
    at run time: that one is known only inside the step)."""
    agent_id = (node.config or {}).get("agent_id") if isinstance(node.config, dict) else None
    if not isinstance(agent_id, str) or not agent_id.strip():
        return None
    saved = agent_store.get(agent_id.strip())
    return dict(saved.guardrails) if saved is not None and saved.guardrails else None


def load_guard(db: Engine, step: ClaimedStep, run: RunContext) -> StepGuard:
    """The claimed step's guard, with the run's totals so far and the rules waived for this step.

    The database is asked only for what a rule needs: a DAG runs each node at most once, so its
    steps are counted only when it has more nodes than the step budget (a state machine always).
    """
    try:
        resolved, invalid = resolved_for(run, step.node_id), ""
    except GuardrailsInvalid as exc:
        resolved, invalid = None, str(exc)
    limits = resolved.config.execution_limits if resolved is not None else None
    budget = min(run.defn.policy.max_steps, (limits.max_steps_per_run if limits else None) or sys.maxsize)
    count_steps = run.defn.mode == "state_machine" or len(run.graph.nodes) > budget
    llm = limits is not None and any(
        v is not None
        for v in (limits.max_llm_calls_per_run, limits.max_llm_tokens_per_run, limits.max_llm_cost_per_run)
    )
    age = limits is not None and limits.max_run_time is not None
    totals, waived = RunTotals(), set[str]()
    if count_steps or llm or age or step.attempt > 1:
        with db.connect() as conn:
            if count_steps:
                totals.steps = conn.execute(_STEPS_STARTED, {"run": step.run_id}).scalar_one()
            if age:
                totals.age_s = float(conn.execute(_RUN_AGE, {"run": step.run_id}).scalar() or 0)
            if llm:
                calls, tokens, cost = conn.execute(
                    _LLM_TOTALS, {"run": step.run_id, "step": step.step_id}
                ).one()
                totals.llm_calls, totals.llm_tokens, totals.llm_cost = int(calls), int(tokens), float(cost)
            if step.attempt > 1:  # maybe a step a reviewer sent back to run again
                for request in conn.execute(_WAIVERS, {"step": step.step_id}).scalars():
                    waived.update(request.get("rule_ids") or [])
    return StepGuard(
        step.node_id, resolved, totals, frozenset(waived), rate_key=f"{run.workflow_id or run.defn.id}:{step.node_id}",
        invalid=invalid,
    )  # fmt: skip


def _emit(conn: Connection, step: ClaimedStep, violation: Violation, status: str) -> None:
    described = violation.describe()
    events.emit_step(
        conn, events.GUARDRAIL_VIOLATED, step,
        attempt=step.attempt, status=status, error=violation.message, **described,
    )  # fmt: skip
    audit.record(conn, actor=ACTOR, action="guardrail.violated", target_type="run", target_id=step.run_id,
                 details={"node_id": step.node_id, "step_id": step.step_id, **described})  # fmt: skip


def record_masked(conn: Connection, step: ClaimedStep, masked: list[Violation]) -> None:
    """A masking rule changed the outputs: the event and audit entry, the step goes on."""
    for violation in masked:
        violation.action = "mask"  # type: ignore[assignment]  # masking is its own outcome, not a rule-set action
        _emit(conn, step, violation, "succeeded")


def record_violation(
    conn: Connection, step: ClaimedStep, violation: Violation, *, metrics: dict[str, Any] | None = None
) -> tuple[str, list[Dispatch]]:
    """Write the event and audit entry, then fail, branch or park the step; (result, steps to send)."""
    if violation.action == "human_review":
        _emit(conn, step, violation, "waiting")
        return "waiting", waiting.suspend_step(
            conn, step, kind="approval", request=_review_request(step, violation)
        )
    _emit(conn, step, violation, "failed")
    return "failed", _fail(conn, step, violation, end_run=violation.action == "fail", metrics=metrics)


def _fail(
    conn: Connection, step: ClaimedStep, violation: Violation, *, end_run: bool, expected: str = "running",
    metrics: dict[str, Any] | None = None,
) -> list[Dispatch]:  # fmt: skip
    message = violation.error(step.node_id).args[0]
    error: dict[str, Any] = {"message": message, "code": ErrorCode.GUARDRAIL_VIOLATED.value,
                             "guardrail": violation.describe()}  # fmt: skip
    if violation.field:
        error["field"] = violation.field
    return executor.finish_step(
        conn, step, outputs={"error": error}, error=message, error_code=ErrorCode.GUARDRAIL_VIOLATED.value,
        error_field=violation.field, expected_status=expected, metrics=metrics, end_run=end_run,
    )  # fmt: skip


def _review_request(step: ClaimedStep, violation: Violation) -> dict[str, Any]:
    what = f"**{violation.rule}** fired on node `{step.node_id}`" + (
        f", at `{violation.field}`" if violation.field else ""
    )
    body = f"{what}: {violation.message}."
    if violation.excerpt:
        body += f"\n\nExcerpt (redacted): `{violation.excerpt}`"
    body += (
        "\n\nAllow: the step goes on as if the rule had not fired. Block: the step fails with the "
        "guardrail's error (its error branch, if any, is taken)."
    )
    request: dict[str, Any] = {
        "kind": REVIEW_KIND,
        "title": f"Guardrail review: {violation.rule} on {step.node_id}"[:300],
        "body": body,
        "guardrail": violation.describe(),
        "rule_ids": [violation.rule],
        "actions": [{"name": "approved", "label": "Allow"}, {"name": "rejected", "label": "Block"}],
        "fields": [],
        "quorum": 1,
        "data": {"guardrail": violation.describe(), "outputs": violation.held_outputs},
    }
    if violation.held_outputs is not None:
        request["held_outputs"] = violation.held_outputs
    return request


def is_review(request: dict[str, Any] | None) -> bool:
    """Whether an approval's request is a guardrail review (not a node's own approval)."""
    return bool(request) and request.get("kind") == REVIEW_KIND  # type: ignore[union-attr]


_REQUEUE = (
    update(_steps)
    .values(status="queued", not_before=None, lease_until=None, sent_at=func.now())
    .where(_steps.c.id == bindparam("step"), _steps.c.status == status_literal("waiting"))
    .returning(_steps.c.id)
)


def decide_review(
    conn: Connection, approval: Any, step: ClaimedStep, *, voter: str, action: str, comment: str = ""
) -> tuple[str, list[Dispatch]]:
    """Apply a reviewer's decision on a guardrail review; (the approval's status, steps to send)."""
    if action not in ("approved", "rejected"):
        raise ValueError(f"action {action!r}: a guardrail review is approved or rejected")
    request = approval.request or {}
    decision = {"action": action, "comment": comment, "decided_by": voter, "voters": [voter]}
    conn.execute(
        update(_approvals)
        .values(status=action, decision=decision, decided_by=voter, decided_at=func.now())
        .where(_approvals.c.id == approval.id)
    )
    events.emit(conn, events.APPROVAL_DECIDED, step.run_id, approval_id=str(approval.id), action=action,
                decided_by=voter, status=action, step_id=step.step_id, node_id=step.node_id)  # fmt: skip
    if action == "approved" and "held_outputs" in request:
        return action, executor.finish_step(
            conn, step, outputs=request["held_outputs"], expected_status="waiting"
        )
    if action == "approved":
        done = conn.execute(_REQUEUE, {"step": step.step_id}).first()
        return action, [Dispatch(step.step_id)] if done else []
    info = request.get("guardrail") or {}
    violation = Violation(
        str(info.get("rule", "guardrail")), f"{info.get('message', 'refused')} (blocked by {voter})",
        info.get("phase", "input"), "error_branch", level=str(info.get("level", "default")),
        field=info.get("field"), excerpt=str(info.get("excerpt", "")), detector=info.get("detector"),
    )  # fmt: skip
    return action, _fail(conn, step, violation, end_run=False, expected="waiting")

"""Runs one node for one claimed step: render config, call the node, cap time and size."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import pydantic

from engine import expressions, guardrail_scope
from engine.config_fields import fixed_fields
from engine.contract import ChildRun, NodeType, StepContext, Suspend, get_node_type
from engine.errors import ErrorCode, FlowloomError, GuardrailViolation, PolicyViolation, StepError
from engine.guardrail_checks import StepGuard, Violation
from engine.run_state import ClaimedStep, RunContext


@dataclass
class Outcome:
    """What happened when the node ran: outputs, a suspension, a child run to wait for, or an error."""

    outputs: dict[str, Any] | None = None
    suspend: Suspend | None = None
    child: ChildRun | None = None
    error: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None  # the least wait before a retry (Retry-After, an open circuit)
    # The error's ErrorCode value and the config field it names, when the node said (StepError(code=, field=)).
    error_code: str | None = None
    error_field: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    # A guardrail that fired (engine.guardrail_checks.Violation), and the masking rules that changed outputs.
    violation: Violation | None = None
    masked: list[Violation] = field(default_factory=list)


_loop: asyncio.AbstractEventLoop | None = None


def _event_loop() -> asyncio.AbstractEventLoop:
    """One event loop per worker process, reused by every async node."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop


def render_config(
    config: dict[str, Any], variables: dict[str, Any], fixed: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Render templated config values; the fields in `fixed` stay as written.

    `fixed` holds the config model's fixed fields (powers, secret names) and the node type's
    `unrendered_fields` (expressions it evaluates itself, SQL whose values travel as parameters).
    """
    return {k: v if k in fixed else expressions.render_value(v, variables) for k, v in config.items()}


def run_node(
    step: ClaimedStep,
    run: RunContext,
    steps: Mapping[str, Any],
    *,
    max_payload_bytes: int,
    sql_connection: Callable[[str], str] | None = None,
    guard: StepGuard | None = None,
) -> Outcome:
    """Run the step's node and classify the result; never raises for node failures.

    With a `guard`, the step's guardrails are enforced around the node: the run's limits and the
    input rules before it runs, network and LLM limits while it runs, output filters after.
    """
    started = time.perf_counter()
    node = run.graph.nodes[step.node_id]
    node_type = get_node_type(node.type)
    ctx = StepContext(
        run_id=step.run_id,
        step_id=step.step_id,
        node_id=step.node_id,
        node_type=node.type,
        attempt=step.attempt,
        visit=step.visit,
        run_inputs=run.inputs,
        steps=steps,
        ports=step.inputs,
        egress_policy=run.defn.policy.egress,
        sql_connection=sql_connection,
        workspace_id=run.workspace_id,
    )
    try:
        if node_type is None:
            raise StepError(f"unknown node type {node.type!r}", retryable=False)
        timeout = node.timeout_s or run.defn.policy.step_timeout_s
        if guard is not None:
            guard.check_run(run.defn.policy.max_steps)
            timeout = guard.timeout(timeout)
        # One time and work budget for every template and expression of this step (config and node).
        with expressions.evaluation_budget():
            rendered = render_config(node.config, ctx.variables, _fields_as_written(node_type))
            if guard is not None:
                _check_input(guard, step, run, node.config, rendered)
            try:
                cfg = node_type.config_model.model_validate(rendered)
            except pydantic.ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                raise StepError(
                    f"config.{loc}: {first['msg']}", retryable=False, code=ErrorCode.CONFIG_INVALID,
                    field=f"config.{loc}",
                ) from exc  # fmt: skip
            with guardrail_scope.guarding(guard):
                result = _event_loop().run_until_complete(
                    _call(node_type.run, ctx, cfg, dict(step.inputs), timeout)
                )
        outcome = _classify(result, node.id, max_payload_bytes)
    except TimeoutError:
        outcome = _timed_out(guard, timeout)
    except GuardrailViolation as exc:
        outcome = Outcome(error=str(exc), violation=exc.violation, **_where(exc))  # type: ignore[arg-type]
    except PolicyViolation as exc:
        outcome = Outcome(error=f"policy violation: {exc}", retryable=False, **_where(exc))
    except StepError as exc:
        outcome = Outcome(
            error=str(exc), retryable=exc.retryable, retry_after_s=exc.retry_after_s, **_where(exc)
        )
    except FlowloomError as exc:
        outcome = Outcome(error=str(exc), retryable=False, **_where(exc))
    except Exception as exc:  # a node's own bug or an I/O error: report it on the step, retry if allowed
        outcome = Outcome(
            error=f"{type(exc).__name__}: {exc}", retryable=True, error_code=ErrorCode.STEP_FAILED.value
        )
    finally:
        _event_loop().run_until_complete(ctx.aclose())
    if guard is not None:
        outcome = _guarded(guard, outcome)
    outcome.metrics["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return _redacted(outcome, ctx)


def _check_input(
    guard: StepGuard, step: ClaimedStep, run: RunContext, written: Mapping[str, Any], rendered: dict[str, Any]
) -> None:
    """The input rules on the ports, the config values templates filled and (first step) the run inputs."""
    ports: dict[str, Any] = dict(step.inputs)
    if step.node_id == run.graph.start:
        ports = {"input": run.inputs, **ports}
    templated = {k: v for k, v in rendered.items() if written.get(k) != v}
    guard.check_input(ports, templated)


def _timed_out(guard: StepGuard | None, timeout: float) -> Outcome:
    limit = guard.config.execution_limits.max_execution_time if guard and guard.config else None
    if limit is not None and timeout == limit:  # the guardrail, not the node's timeout_s, cut it short
        violation = guard._violation(  # type: ignore[union-attr]
            "execution_limits.max_execution_time", f"the step ran past {limit:g}s", "execution",
            guard.config.execution_limits.on_violation,  # type: ignore[union-attr]
        )  # fmt: skip
        error = violation.error(guard.node_id)  # type: ignore[union-attr]
        return Outcome(error=str(error), violation=violation, **_where(error))
    return Outcome(error=f"timed out after {timeout:g}s (timeout_s)", retryable=True,
                   error_code=ErrorCode.STEP_TIMEOUT.value, error_field="timeout_s")  # fmt: skip


def _guarded(guard: StepGuard, outcome: Outcome) -> Outcome:
    """Apply the output rules to a success; a refusal the node swallowed still counts."""
    outcome.metrics.update(guard.llm_metrics())
    if outcome.violation is None and guard.fired is not None:
        error = guard.fired.error(guard.node_id)
        return dataclasses.replace(
            outcome, outputs=None, suspend=None, child=None, error=str(error), retryable=False,
            violation=guard.fired, **_where(error),
        )  # fmt: skip
    if outcome.outputs is None or outcome.error is not None or outcome.violation is not None:
        return outcome
    outputs, masked, violation = guard.check_output(outcome.outputs)
    outcome = dataclasses.replace(outcome, outputs=outputs, masked=masked)
    if violation is not None:
        error = violation.error(guard.node_id)
        outcome = dataclasses.replace(
            outcome, outputs=None, error=str(error), violation=violation, **_where(error)
        )
    return outcome


class _ErrorWhere(TypedDict):
    error_code: str | None
    error_field: str | None


def _where(exc: FlowloomError) -> _ErrorWhere:
    """The code and field an error names, for the step's stored error."""
    return {"error_code": exc.code.value, "error_field": exc.field}


def _fields_as_written(node_type: NodeType) -> frozenset[str]:
    return fixed_fields(node_type.config_model) | node_type.unrendered_fields


def _redacted(outcome: Outcome, ctx: StepContext) -> Outcome:
    """The outcome with every secret value the node used replaced, before anything is stored."""
    if not ctx.secret_values:
        return outcome
    suspend, child = outcome.suspend, outcome.child
    if suspend is not None:
        suspend = dataclasses.replace(suspend, request=ctx.redact(suspend.request))
    if child is not None:
        child = dataclasses.replace(child, inputs=ctx.redact(child.inputs))
    return dataclasses.replace(
        outcome,
        outputs=ctx.redact(outcome.outputs),
        suspend=suspend,
        child=child,
        error=ctx.redact(outcome.error),
        metrics=ctx.redact(outcome.metrics),
    )


async def _call(fn: Callable[..., Any], ctx: StepContext, cfg: Any, inputs: dict, timeout: float) -> Any:
    if asyncio.iscoroutinefunction(fn):
        return await asyncio.wait_for(fn(ctx, cfg, inputs), timeout)
    return await asyncio.wait_for(asyncio.to_thread(fn, ctx, cfg, inputs), timeout)


def _classify(result: Any, node_id: str, max_payload_bytes: int) -> Outcome:
    if isinstance(result, Suspend):
        return Outcome(suspend=result)
    if isinstance(result, ChildRun):
        try:
            size = len(json.dumps(result.inputs, default=str))
        except (TypeError, ValueError) as exc:
            return Outcome(error=f"the child run's inputs are not JSON-serialisable: {exc}")
        if size > max_payload_bytes:
            return Outcome(error=f"the child run's inputs are {size} bytes; the limit is {max_payload_bytes} "
                           "(FLOWLOOM_MAX_PAYLOAD_BYTES)")  # fmt: skip
        inputs = json.loads(json.dumps(result.inputs, default=str))
        return Outcome(child=dataclasses.replace(result, inputs=inputs))
    if result is None:
        result = {}
    if not isinstance(result, dict):
        return Outcome(error=f"node returned {type(result).__name__}, expected a dict of output ports")
    try:
        size = len(json.dumps(result, default=str))
    except (TypeError, ValueError) as exc:
        return Outcome(error=f"outputs are not JSON-serialisable: {exc}")
    if size > max_payload_bytes:
        return Outcome(
            error=f"outputs are {size} bytes; the limit is {max_payload_bytes} (FLOWLOOM_MAX_PAYLOAD_BYTES)"
        )
    outputs = json.loads(json.dumps(result, default=str))
    # A node's "metrics" port (model load and inference times, ...) is also kept on the step row.
    metrics = outputs.get("metrics") if isinstance(outputs.get("metrics"), dict) else {}
    return Outcome(outputs=outputs, metrics=dict(metrics))

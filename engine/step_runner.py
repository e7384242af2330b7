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

from engine import expressions
from engine.config_fields import fixed_fields
from engine.contract import NodeType, StepContext, Suspend, get_node_type
from engine.errors import ErrorCode, FlowloomError, PolicyViolation, StepError
from engine.run_state import ClaimedStep, RunContext


@dataclass
class Outcome:
    """What happened when the node ran: outputs, a suspension or an error."""

    outputs: dict[str, Any] | None = None
    suspend: Suspend | None = None
    error: str | None = None
    retryable: bool = False
    # The error's ErrorCode value and the config field it names, when the node said (StepError(code=, field=)).
    error_code: str | None = None
    error_field: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


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
) -> Outcome:
    """Run the step's node and classify the result; never raises for node failures."""
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
    )
    try:
        if node_type is None:
            raise StepError(f"unknown node type {node.type!r}", retryable=False)
        timeout = node.timeout_s or run.defn.policy.step_timeout_s
        # One time and work budget for every template and expression of this step (config and node).
        with expressions.evaluation_budget():
            try:
                cfg = node_type.config_model.model_validate(
                    render_config(node.config, ctx.variables, _fields_as_written(node_type))
                )
            except pydantic.ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                raise StepError(
                    f"config.{loc}: {first['msg']}", retryable=False, code=ErrorCode.CONFIG_INVALID,
                    field=f"config.{loc}",
                ) from exc  # fmt: skip
            result = _event_loop().run_until_complete(
                _call(node_type.run, ctx, cfg, dict(step.inputs), timeout)
            )
        outcome = _classify(result, node.id, max_payload_bytes)
    except TimeoutError:
        outcome = Outcome(error=f"timed out after {timeout:g}s (timeout_s)", retryable=True,
                          error_code=ErrorCode.STEP_TIMEOUT.value, error_field="timeout_s")  # fmt: skip
    except PolicyViolation as exc:
        outcome = Outcome(error=f"policy violation: {exc}", retryable=False, **_where(exc))
    except StepError as exc:
        outcome = Outcome(error=str(exc), retryable=exc.retryable, **_where(exc))
    except FlowloomError as exc:
        outcome = Outcome(error=str(exc), retryable=False, **_where(exc))
    except Exception as exc:  # a node's own bug or an I/O error: report it on the step, retry if allowed
        outcome = Outcome(
            error=f"{type(exc).__name__}: {exc}", retryable=True, error_code=ErrorCode.STEP_FAILED.value
        )
    finally:
        _event_loop().run_until_complete(ctx.aclose())
    outcome.metrics["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return _redacted(outcome, ctx)


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
    suspend = outcome.suspend
    if suspend is not None:
        suspend = dataclasses.replace(suspend, request=ctx.redact(suspend.request))
    return dataclasses.replace(
        outcome,
        outputs=ctx.redact(outcome.outputs),
        suspend=suspend,
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

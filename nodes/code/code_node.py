"""The `tool.code` node: a Python function written in the workflow, run in the sandbox.

The code defines `main(data)` (or sets `result`); `data` is `{"in": <the in port's value>, **args}`
with `args` rendered from templates first; what `main` returns must be JSON and is the `out` port;
what it prints is the `logs` port. It runs in nodes/code/sandbox.py: no network, no files of the
app, no environment, capped memory, CPU time, wall time and output. Only editors save definitions,
so only editors create or change code nodes; the code itself never takes templates.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.contract import FIXED, ErrorCode, PolicyViolation, Port, StepContext, StepError, register
from nodes.code.sandbox import Limits, SandboxFailure, SandboxUnavailable, run_code

MAX_CODE_CHARS = 100_000
MAX_ARGS_BYTES = 1024 * 1024


class CodeConfig(BaseModel):
    """Config of `tool.code`."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1,
        max_length=MAX_CODE_CHARS,
        description="Python defining main(data) -> JSON (data = {'in': ..., **args}), or setting `result`",
        json_schema_extra={"format": "multiline", FIXED: True},
    )
    args: dict[str, Any] = Field(
        default_factory=dict, description="Values passed in `data` (templates allowed: {{ input.x }})"
    )
    timeout_s: float = Field(10.0, gt=0, le=300, description="Wall-clock limit")
    cpu_s: int = Field(5, ge=1, le=300, description="CPU-time limit")
    memory_mb: int = Field(256, ge=32, le=4096, description="Memory (address space) limit")
    max_output_kb: int = Field(256, ge=1, le=10_240, description="Largest result, as JSON")

    @field_validator("code")
    @classmethod
    def _compiles(cls, code: str) -> str:
        try:
            compile(code, "<tool.code>", "exec", dont_inherit=True)
        except SyntaxError as exc:
            raise ValueError(f"line {exc.lineno}: {exc.msg}") from None
        return code


_KIND_CODES = {
    "timeout": ErrorCode.STEP_TIMEOUT,
    "memory": ErrorCode.SANDBOX_LIMIT,
    "cpu": ErrorCode.SANDBOX_LIMIT,
    "output": ErrorCode.SANDBOX_LIMIT,
}


@register(
    "tool.code",
    category="tool",
    label="Python code",
    config=CodeConfig,
    inputs={"in": Port("any", required=False, description="passed to main(data) as data['in']")},
    outputs={
        "out": Port("any", description="what main(data) returned (JSON)"),
        "logs": Port("text", description="what the code printed"),
    },
    icon="code",
    unrendered_fields={"code"},
)
async def code_node(ctx: StepContext, cfg: CodeConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run the configured code in the sandbox with the in port's value and the rendered args."""
    data = {"in": inputs.get("in"), **cfg.args}
    try:
        size = len(json.dumps(data, default=str))
    except (TypeError, ValueError) as exc:
        raise StepError(f"args: not JSON ({exc})", retryable=False, field="args") from None
    if size > MAX_ARGS_BYTES:
        raise StepError(f"args: {size} bytes of input, more than {MAX_ARGS_BYTES}", retryable=False)
    limits = Limits(
        timeout_s=cfg.timeout_s,
        cpu_s=cfg.cpu_s,
        memory_mb=cfg.memory_mb,
        output_bytes=cfg.max_output_kb * 1024,
    )
    try:
        outcome = await run_code(cfg.code, json.loads(json.dumps(data, default=str)), limits)
    except SandboxUnavailable as exc:
        raise StepError(str(exc), retryable=False, code=ErrorCode.SANDBOX_UNAVAILABLE) from None
    except SandboxFailure as exc:
        if exc.kind == "refused":
            raise PolicyViolation(str(exc)) from None
        code = _KIND_CODES.get(exc.kind, ErrorCode.CODE_FAILED)
        raise StepError(f"code: {exc}", retryable=False, code=code) from None
    return {"out": outcome.result, "logs": outcome.logs}

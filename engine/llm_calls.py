"""What one model call leaves behind: a GenAI span (engine.tracing) and the LLM metrics (engine.metrics).

Node families reach it through the contract (`engine.contract.llm_call`):

    with llm_call(provider="openai", model=cfg.model) as call:
        result = await provider.chat(...)
        call.usage(input_tokens=..., output_tokens=...)
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import trace

from engine import guardrail_scope, metrics, tracing


@dataclass
class LlmCall:
    """The counters of one call; `usage` records the tokens the provider reported."""

    span: trace.Span
    input_tokens: int = 0
    output_tokens: int = 0
    response_model: str = ""

    def usage(self, *, input_tokens: int = 0, output_tokens: int = 0, response_model: str = "") -> None:
        self.input_tokens += max(int(input_tokens or 0), 0)
        self.output_tokens += max(int(output_tokens or 0), 0)
        self.response_model = response_model or self.response_model

    def usage_from(self, usage: Mapping[str, int]) -> None:
        """Tokens from an OpenAI-style (`prompt_tokens`/`completion_tokens`) or Anthropic-style usage dict."""
        self.usage(
            input_tokens=usage.get("prompt_tokens", usage.get("input_tokens", 0)),
            output_tokens=usage.get("completion_tokens", usage.get("output_tokens", 0)),
        )


@contextmanager
def llm_call(*, provider: str, model: str, operation: str = "chat") -> Iterator[LlmCall]:
    """Time one model call, trace it as a GenAI client span and count it (an exception counts as an error)."""
    guard = guardrail_scope.active.get()
    if guard is not None:  # the run's LLM-call budget: refused before the provider is asked
        guard.before_llm_call(provider, model)
    started = time.perf_counter()
    ok = False
    with tracing.llm_span(system=provider, model=model, operation=operation) as span:
        call = LlmCall(span)
        try:
            yield call
            ok = True
        finally:
            if span.is_recording():
                span.set_attribute("gen_ai.usage.input_tokens", call.input_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", call.output_tokens)
                if call.response_model:
                    span.set_attribute("gen_ai.response.model", call.response_model)
            if guard is not None:
                guard.after_llm_call(provider, model, call.input_tokens, call.output_tokens)
            metrics.llm_called(
                provider, model, ok=ok, seconds=time.perf_counter() - started,
                input_tokens=call.input_tokens, output_tokens=call.output_tokens,
            )  # fmt: skip

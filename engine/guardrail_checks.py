"""The checks of one step's guardrails: before the node runs, while it runs, and on its outputs.

`StepGuard` is built by the worker for a claimed step (engine/guardrail_actions.py reads what it
needs from the database: the run's step count, age and LLM totals so far, and which rules a
person waived for this step). The step runner calls `check_input` once the config is rendered,
makes the guard the step's `guardrail_scope` while the node runs (network and LLM checks) and
passes the result through `check_output`. A rule that fires raises (or returns) a `Violation`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine import guardrail_filters, rate_limit
from engine.errors import GuardrailViolation
from engine.guardrails import Action, GuardrailsConfig, Resolved
from engine.json_schemas import instance_problems

Phase = Literal["input", "execution", "output"]
_FILE_KEYS = frozenset({"filename", "file_name", "file", "path", "file_path", "url"})


@dataclass
class Violation:
    """Which rule fired, where (port or field), what it saw (redacted) and what happens now."""

    rule: str  # e.g. input_validation.content_filters.pii, policy.max_steps
    message: str
    phase: Phase
    action: Action
    level: str = "default"  # instance | workflow | node | definition: who set the rule
    field: str | None = None  # the port or config field, dotted into the value
    excerpt: str = ""
    detector: str | None = None  # the detector that matched (pii.email, malicious_code.sql_injection)
    held_outputs: dict[str, Any] | None = None  # an output violation's (masked) outputs, for human review

    def describe(self) -> dict[str, Any]:
        """The violation as events, audit entries and the approval request carry it."""
        found = {
            "rule": self.rule, "message": self.message, "phase": self.phase, "action": self.action,
            "level": self.level, "field": self.field, "excerpt": self.excerpt, "detector": self.detector,
        }  # fmt: skip
        return {k: v for k, v in found.items() if v not in (None, "")}

    def error(self, node_id: str) -> GuardrailViolation:
        return GuardrailViolation(
            f"guardrail {self.rule} fired{f' on {self.field}' if self.field else ''}: {self.message}",
            violation=self, node_id=node_id, field=self.field,
        )  # fmt: skip


@dataclass
class RunTotals:
    """What the run used before this step: steps started, seconds since it started, LLM usage."""

    steps: int = 0
    age_s: float = 0.0
    llm_calls: int = 0
    llm_tokens: int = 0
    llm_cost: float = 0.0


@dataclass
class StepGuard:
    """One step's guardrails: the merged rules, the run's totals so far, the waived rules."""

    node_id: str
    resolved: Resolved | None
    totals: RunTotals = field(default_factory=RunTotals)
    waived: frozenset[str] = frozenset()
    rate_key: str = ""
    # This step's own LLM usage, counted by engine.llm_calls while the node runs.
    llm_calls: int = 0
    llm_input_tokens: int = 0
    llm_output_tokens: int = 0
    llm_cost: float = 0.0
    # A violation the node may have swallowed (a refused connection an agent turned into a tool error).
    fired: Violation | None = None
    invalid: str = ""  # why the merged guardrails do not parse (the step then fails, nothing runs unguarded)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def config(self) -> GuardrailsConfig | None:
        return self.resolved.config if self.resolved else None

    def _violation(self, rule: str, message: str, phase: Phase, action: Action, **where: Any) -> Violation:
        level = self.resolved.origin(rule) if self.resolved else "default"
        return Violation(rule, message, phase, action, level=level, **where)

    # -- before the node runs ----------------------------------------------------------------

    def timeout(self, node_timeout_s: float) -> float:
        """The step's timeout: the node's (or the workflow's) unless max_execution_time is shorter."""
        limit = self.config.execution_limits.max_execution_time if self.config else None
        return min(node_timeout_s, limit) if limit else node_timeout_s

    def check_input(self, ports: Mapping[str, Any], templated: Mapping[str, Any]) -> None:
        """Input rules on the ports and on the config values templates filled; raise on the first that fires."""
        cfg = self.config
        if cfg is None:
            return
        rules = cfg.input_validation
        values = {**{f"{k}": v for k, v in ports.items()}, **{f"config.{k}": v for k, v in templated.items()}}
        for violation in self._input_violations(rules, values):
            if violation.rule not in self.waived:
                raise violation.error(self.node_id)

    def _input_violations(self, rules: Any, values: dict[str, Any]):
        act: Action = rules.on_violation
        if rules.max_input_size is not None:
            for name, value in values.items():
                size = len(json.dumps(value, default=str).encode())
                if size > rules.max_input_size:
                    yield self._violation(
                        "input_validation.max_input_size", f"{size} bytes; the limit is {rules.max_input_size}",
                        "input", act, field=name,
                    )  # fmt: skip
        if rules.allowed_file_types is not None:
            for path, ext in _file_names(values):
                if ext not in rules.allowed_file_types:
                    yield self._violation(
                        "input_validation.allowed_file_types",
                        f"a {ext or 'extension-less'} file; allowed: {', '.join(rules.allowed_file_types)}",
                        "input", act, field=path,
                    )  # fmt: skip
        for name in rules.content_filters:
            detect = guardrail_filters.CONTENT_FILTERS[name]
            extra = {"extra_words": tuple(rules.profanity_words)} if name == "profanity" else {}
            for key, value in values.items():
                findings = detect(value, key, **extra)
                if findings:
                    hit = findings[0]
                    yield self._violation(
                        f"input_validation.content_filters.{name}", f"{hit.detector} found", "input", act,
                        field=hit.path, excerpt=hit.excerpt, detector=hit.detector,
                    )  # fmt: skip
                    break
        if rules.rate_limits is not None and self.rate_key:
            yield from self._rate_violations(rules)

    def _rate_violations(self, rules: Any):
        limits = rules.rate_limits
        for rule, limit, period in (
            ("requests_per_minute", limits.requests_per_minute, 60.0),
            ("requests_per_hour", limits.requests_per_hour, 3600.0),
        ):
            if limit is None or f"input_validation.rate_limits.{rule}" in self.waived:
                continue
            wait = rate_limit.take_within(f"guardrail:{self.rate_key}:{rule}", limit, period)
            if wait > 0:
                yield self._violation(
                    f"input_validation.rate_limits.{rule}",
                    f"more than {limit} runs of this node in {period / 60:g} min; the next is allowed in {wait:.0f} s",
                    "input", rules.on_violation,
                )  # fmt: skip

    def check_run(self, max_steps: int) -> None:
        """The run's step budget (policy.max_steps and max_steps_per_run) and its time limit."""
        if self.invalid:
            raise Violation("guardrails", f"the guardrails do not parse: {self.invalid}", "execution", "fail",
                            level="definition").error(self.node_id)  # fmt: skip
        if self.totals.steps > max_steps and "policy.max_steps" not in self.waived:
            raise Violation(
                "policy.max_steps", f"this would be step {self.totals.steps} of the run; the limit is {max_steps}",
                "execution", "fail", level="definition",
            ).error(self.node_id)  # fmt: skip
        cfg = self.config
        if cfg is None:
            return
        limits = cfg.execution_limits
        found = []
        if limits.max_steps_per_run is not None and self.totals.steps > limits.max_steps_per_run:
            found.append(("execution_limits.max_steps_per_run",
                          f"this would be step {self.totals.steps}; the limit is {limits.max_steps_per_run}"))  # fmt: skip
        if limits.max_run_time is not None and self.totals.age_s > limits.max_run_time:
            found.append(("execution_limits.max_run_time",
                          f"the run has run {self.totals.age_s:.1f} s; the limit is {limits.max_run_time:g} s"))  # fmt: skip
        for rule, message in found:
            if rule not in self.waived:
                raise self._violation(rule, message, "execution", limits.on_violation).error(self.node_id)

    # -- while the node runs (engine.guardrail_scope) ----------------------------------------

    def check_destination(self, host: str, port: int) -> None:
        cfg = self.config
        restrictions = cfg.execution_limits.network_restrictions if cfg else None
        if cfg is None or restrictions is None:
            return
        reason = restrictions.refusal(host, port)
        if reason is not None:
            rule = "execution_limits.network_restrictions." + (
                "blocked_ports" if port in restrictions.blocked_ports else "allowed_domains"
            )
            self._fire(self._violation(rule, reason, "execution", cfg.execution_limits.on_violation,
                                       field=f"{host}:{port}"))  # fmt: skip

    def before_llm_call(self, provider: str, model: str) -> None:
        cfg = self.config
        if cfg is None:
            return
        limits = cfg.execution_limits
        with self._lock:
            calls = self.totals.llm_calls + self.llm_calls
            tokens = self.totals.llm_tokens + self.llm_input_tokens + self.llm_output_tokens
            cost = self.totals.llm_cost + self.llm_cost
        checks = (
            ("max_llm_calls_per_run", limits.max_llm_calls_per_run, calls + 1, "this would be LLM call"),
            ("max_llm_tokens_per_run", limits.max_llm_tokens_per_run, tokens, "the run has used tokens:"),
            ("max_llm_cost_per_run", limits.max_llm_cost_per_run, cost, "the run has spent USD"),
        )
        for rule, limit, used, what in checks:
            if limit is not None and (used > limit or (rule != "max_llm_calls_per_run" and used >= limit)):
                self._fire(self._violation(
                    f"execution_limits.{rule}", f"{what} {used:g}; the limit is {limit:g}", "execution",
                    limits.on_violation, field=f"{provider}:{model}",
                ))  # fmt: skip

    def after_llm_call(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> None:
        price = self.config.execution_limits.price_of(model) if self.config else None
        with self._lock:
            self.llm_calls += 1
            self.llm_input_tokens += input_tokens
            self.llm_output_tokens += output_tokens
            if price is not None:
                self.llm_cost += (
                    input_tokens * price.input_per_1m + output_tokens * price.output_per_1m
                ) / 1e6

    def _fire(self, violation: Violation) -> None:
        if violation.rule in self.waived:
            return
        with self._lock:
            if self.fired is None:
                self.fired = violation
        raise violation.error(self.node_id)

    def llm_metrics(self) -> dict[str, Any]:
        """This step's LLM usage, kept on the step row (what the run's totals add up)."""
        if not self.llm_calls:
            return {}
        used: dict[str, Any] = {"llm_calls": self.llm_calls, "llm_input_tokens": self.llm_input_tokens,
                "llm_output_tokens": self.llm_output_tokens}  # fmt: skip
        if self.llm_cost:
            used["llm_cost_usd"] = round(self.llm_cost, 6)
        return used

    # -- after the node ran ------------------------------------------------------------------

    def check_output(
        self, outputs: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Violation], Violation | None]:
        """(outputs with PII/secrets masked, what was masked, the violation that stops them or None)."""
        cfg = self.config
        if cfg is None:
            return outputs, [], None
        rules = cfg.output_filtering
        masked: list[Violation] = []
        for rule, pii, secrets in (("pii_removal", True, False), ("sensitive_data_masking", False, True)):
            if getattr(rules, rule) and f"output_filtering.{rule}" not in self.waived:
                findings = (guardrail_filters.find_pii if pii else guardrail_filters.find_secrets)(outputs)
                if findings:
                    outputs, count = guardrail_filters.mask(outputs, pii=pii, secrets=secrets)
                    hit = findings[0]
                    masked.append(self._violation(
                        f"output_filtering.{rule}", f"{count} value(s) masked", "output", rules.on_violation,
                        field=hit.path, excerpt=hit.excerpt, detector=hit.detector,
                    ))  # fmt: skip
        if self.fired is not None:  # a refused connection or LLM call the node caught and went on
            return outputs, masked, self.fired
        limits = cfg.execution_limits
        total_tokens = self.totals.llm_tokens + self.llm_input_tokens + self.llm_output_tokens
        for rule, limit, used in (
            ("max_llm_tokens_per_run", limits.max_llm_tokens_per_run, total_tokens),
            ("max_llm_cost_per_run", limits.max_llm_cost_per_run, self.totals.llm_cost + self.llm_cost),
        ):
            if limit is not None and used > limit and f"execution_limits.{rule}" not in self.waived:
                violation = self._violation(f"execution_limits.{rule}", f"the run used {used:g}; the limit is {limit:g}",
                                            "execution", limits.on_violation)  # fmt: skip
                return outputs, masked, _holding(violation, outputs)
        return outputs, masked, self._output_violation(rules, outputs)

    def _output_violation(self, rules: Any, outputs: dict[str, Any]) -> Violation | None:
        if rules.size_limits is not None and "output_filtering.size_limits" not in self.waived:
            size = len(json.dumps(outputs, default=str).encode())
            if size > rules.size_limits:
                violation = self._violation("output_filtering.size_limits",
                                            f"outputs are {size} bytes; the limit is {rules.size_limits}", "output",
                                            rules.on_violation)  # fmt: skip
                return _holding(violation, outputs)
        if rules.output_schema is not None and "output_filtering.format_validation" not in self.waived:
            port = rules.output_port
            value = outputs.get(port) if port else outputs
            problems = instance_problems(rules.output_schema, value)
            if problems:
                where = ".".join(p for p in (port, problems[0].path) if p) or None
                violation = self._violation("output_filtering.format_validation",
                                            f"does not match output_schema: {problems[0].message}", "output",
                                            rules.on_violation, field=where)  # fmt: skip
                return _holding(violation, outputs)
        return None


def _holding(violation: Violation, outputs: dict[str, Any]) -> Violation:
    violation.held_outputs = outputs
    return violation


def _file_names(values: Mapping[str, Any], path: str = ""):
    """(path, extension) of every value that names a file: under a file-ish key, or a file:// URL."""
    for key, value in values.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(value, Mapping):
            yield from _file_names(value, where)
        elif isinstance(value, list):
            yield from _file_names({str(i): v for i, v in enumerate(value)}, where)
        elif isinstance(value, str) and (str(key).lower() in _FILE_KEYS or value.startswith("file://")):
            name = value.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            if str(key).lower() == "url" and "." not in name:
                continue  # a page URL or a plain name, not a file
            ext = f".{name.rsplit('.', 1)[-1].lower()}" if "." in name else ""
            yield where, ext

"""The guardrails configuration: the design's GUARDRAILS_CONFIG as typed models, and its three levels.

A rule set is set at the instance (`FLOWLOOM_GUARDRAILS`), per workflow (`policy.guardrails`) and
per node (`guardrails` on the node). The levels are raw JSON objects merged field by field, the
narrowest winning (a node's `output_filtering.size_limits` overrides the workflow's, the rest of
the workflow's output_filtering still applies; `null` switches a rule off); only the merged
object is parsed into `GuardrailsConfig`. The engine enforces the result around every step
(engine/guardrail_checks.py, engine/guardrail_actions.py); no node does it itself.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from engine.errors import ErrorCode, Issue
from engine.json_schemas import schema_problems

Action = Literal["fail", "error_branch", "human_review"]
ContentFilter = Literal["profanity", "pii", "malicious_code"]
LEVELS = ("instance", "workflow", "agent", "node")  # widest first; a saved agent sits under its node
# Objects whose keys are data, not rule names: a narrower level replaces them whole.
_LEAF_OBJECTS = frozenset({"output_schema", "llm_prices"})

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}  # fmt: skip
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_size(value: Any) -> int:
    """Bytes from a number or a size such as "10MB", "512KiB" (KB/MB/GB are 1000-based, KiB/MiB 1024)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 10MB, not true/false")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return int(value)
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a size; write bytes as a number or e.g. 10MB, 512KiB, 1GB")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "B").upper()])


def parse_duration(value: Any) -> float:
    """Seconds from a number or a duration such as "5m", "30s", "1h", "250ms"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 5m, not true/false")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration; write seconds as a number or e.g. 250ms, 30s, 5m, 1h"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()]
    if seconds <= 0:
        raise ValueError("a duration must be more than 0")
    return seconds


def _parse_percent(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _PERCENT.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a percentage such as 80%")
    return float(match.group(1))


Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Percent = Annotated[float, BeforeValidator(_parse_percent), Field(gt=0, le=100)]


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RateLimits(_Rules):
    """How often the node may run, counted across all runs of the workflow (per node)."""

    requests_per_minute: int | None = Field(None, ge=1)
    requests_per_hour: int | None = Field(None, ge=1)


class InputValidation(_Rules):
    """Checked before the node runs, on its port inputs and on the config values its templates filled."""

    max_input_size: Size | None = None
    allowed_file_types: list[str] | None = None  # extensions, ".txt"; None = any
    content_filters: list[ContentFilter] = Field(default_factory=list)
    profanity_words: list[str] = Field(default_factory=list, description="words added to the built-in list")
    rate_limits: RateLimits | None = None
    on_violation: Action = "fail"

    @field_validator("allowed_file_types")
    @classmethod
    def _extensions(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = []
        for ext in value:
            text = ext.strip().lower()
            if not re.fullmatch(r"\.?[a-z0-9][a-z0-9._-]{0,15}", text):
                raise ValueError(f"{ext!r} is not a file extension such as .txt")
            cleaned.append(text if text.startswith(".") else f".{text}")
        return cleaned


class NetworkRestrictions(_Rules):
    """On top of the egress policy: only these domains (and wildcards), never these ports."""

    allowed_domains: list[str] | None = (
        None  # "api.openai.com", "*.trusted.com"; None = any the egress policy allows
    )
    blocked_ports: list[int] = Field(default_factory=list)

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for entry in value:
            if not re.fullmatch(r"(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?", entry.strip().lower()):
                raise ValueError(f"{entry!r} is not a domain or *.domain")
        return [e.strip().lower().rstrip(".") for e in value]

    @field_validator("blocked_ports")
    @classmethod
    def _ports(cls, value: list[int]) -> list[int]:
        bad = [p for p in value if not 0 < p < 65536]
        if bad:
            raise ValueError(f"{bad[0]} is not a port (1-65535)")
        return value

    def refusal(self, host: str, port: int) -> str | None:
        """Why a connection to host:port is refused, or None."""
        if port in self.blocked_ports:
            return f"port {port} is blocked (execution_limits.network_restrictions.blocked_ports)"
        if self.allowed_domains is not None and not any(
            _domain_matches(d, host) for d in self.allowed_domains
        ):
            return (
                f"{host} is not in execution_limits.network_restrictions.allowed_domains "
                f"({', '.join(self.allowed_domains) or 'empty: no domain'})"
            )
        return None


def _domain_matches(entry: str, host: str) -> bool:
    host = host.lower().rstrip(".")
    if entry.startswith("*."):
        return host.endswith(entry[1:])
    return host == entry


class LlmPrice(_Rules):
    """US dollars per million tokens of a model (for max_llm_cost_per_run)."""

    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(ge=0)


class ExecutionLimits(_Rules):
    """Checked while the step and the run go on."""

    max_execution_time: Duration | None = None  # per step (the smaller of it and the node's timeout_s wins)
    max_run_time: Duration | None = None  # from the run's start to this step
    max_steps_per_run: int | None = Field(None, ge=1)
    max_llm_calls_per_run: int | None = Field(None, ge=0)
    max_llm_tokens_per_run: int | None = Field(None, ge=0)
    max_llm_cost_per_run: float | None = Field(None, ge=0)  # US dollars, priced by llm_prices
    llm_prices: dict[str, LlmPrice] = Field(default_factory=dict)  # model name or glob ("gpt-4o*") -> price
    # The design names them; an in-process node cannot be capped this way (tool.code has its own caps).
    max_memory_usage: Size | None = None
    max_cpu_usage: Percent | None = None
    network_restrictions: NetworkRestrictions | None = None
    on_violation: Action = "fail"

    @model_validator(mode="after")
    def _priced(self) -> ExecutionLimits:
        if self.max_llm_cost_per_run is not None and not self.llm_prices:
            raise ValueError("max_llm_cost_per_run needs llm_prices (model -> input_per_1m, output_per_1m)")
        return self

    def price_of(self, model: str) -> LlmPrice | None:
        """The price of `model`: an exact entry, else the first glob that matches."""
        if model in self.llm_prices:
            return self.llm_prices[model]
        return next(
            (p for pattern, p in self.llm_prices.items() if fnmatch.fnmatchcase(model, pattern)), None
        )


class OutputFiltering(_Rules):
    """Applied to the node's outputs before they are stored or passed on."""

    pii_removal: bool = False  # mask e-mails, phones, IBANs, cards, SSNs with "[email removed]" ...
    sensitive_data_masking: bool = False  # mask API keys, tokens, private keys, password=...
    size_limits: Size | None = None
    format_validation: bool = False  # check the outputs against output_schema
    output_schema: dict[str, Any] | None = None  # a JSON Schema for output_port (or all outputs)
    output_port: str | None = None
    on_violation: Action = "fail"

    @model_validator(mode="after")
    def _schema(self) -> OutputFiltering:
        if self.format_validation and self.output_schema is None:
            raise ValueError("format_validation needs output_schema (a JSON Schema)")
        if self.output_schema is not None:
            problems = schema_problems(self.output_schema)
            if problems:
                raise ValueError(f"output_schema: {problems[0]}")
        return self


class Compliance(_Rules):
    """The design's compliance block: accepted and kept, enforced elsewhere or not at all (see docs)."""

    data_retention_days: int | None = Field(None, ge=1)
    audit_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None
    encryption_at_rest: bool | None = None
    encryption_in_transit: bool | None = None


class GuardrailsConfig(_Rules):
    """The merged rules of one step (instance, workflow and node levels, the narrowest winning)."""

    input_validation: InputValidation = Field(default_factory=InputValidation)
    execution_limits: ExecutionLimits = Field(default_factory=ExecutionLimits)
    output_filtering: OutputFiltering = Field(default_factory=OutputFiltering)
    compliance: Compliance = Field(default_factory=Compliance)


def merge(*levels: Mapping[str, Any] | None) -> dict[str, Any]:
    """The levels (widest first) merged field by field; a narrower value wins, objects merge deeply."""
    merged: dict[str, Any] = {}
    for level in levels:
        if level:
            merged = _merge_two(merged, level)
    return merged


def _merge_two(wide: Mapping[str, Any], narrow: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(wide)
    for key, value in narrow.items():
        if value is None:  # null: back to the default (for most rules, off)
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and key not in _LEAF_OBJECTS:
            out[key] = _merge_two(out[key], value)
        else:
            out[key] = value
    return out


def _origin(path: tuple[str, ...], levels: tuple[Mapping[str, Any] | None, ...]) -> str:
    """Which level set the rule at `path` (the narrowest that has it)."""
    for name, level in reversed(list(zip(LEVELS, levels, strict=True))):
        if _sets(level or {}, path):
            return name
    return "default"


def _sets(level: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    """Whether `level` has a value on `path` (a path may go on past a list, e.g. content_filters.pii)."""
    current: Any = level
    for part in path:
        if not isinstance(current, Mapping):
            return True
        if part not in current:
            return False
        current = current[part]
    return True


@dataclass(frozen=True)
class Resolved:
    """A step's effective rules and the raw levels they came from (to say which level set a rule)."""

    config: GuardrailsConfig
    levels: tuple[Mapping[str, Any] | None, ...]

    def origin(self, rule: str) -> str:
        """instance, workflow, agent or node: the level whose value of `rule` (dotted) applies."""
        return _origin(tuple(rule.split(".")), self.levels)


class GuardrailsInvalid(ValueError):
    """A guardrails object that does not parse; `field` is the dotted path, `message` the reason."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def parse(data: Mapping[str, Any] | None) -> GuardrailsConfig:
    """A guardrails object as the typed model; GuardrailsInvalid names the first bad field."""
    try:
        return GuardrailsConfig.model_validate(dict(data or {}))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise GuardrailsInvalid(loc, message) from exc


@lru_cache(maxsize=512)
def _resolve_text(text: str) -> GuardrailsConfig | None:
    levels = json.loads(text)
    merged = merge(*levels)
    return parse(merged) if merged else None


def resolve(
    instance: Mapping[str, Any] | None,
    workflow: Mapping[str, Any] | None,
    node: Mapping[str, Any] | None,
    agent: Mapping[str, Any] | None = None,
) -> Resolved | None:
    """The step's effective rules; None when no level sets any (the engine then checks nothing).

    `agent` is the guardrails of the saved agent the node runs (between the workflow and the node)."""
    if not (instance or workflow or node or agent):
        return None
    levels = (instance or None, workflow or None, agent or None, node or None)
    config = _resolve_text(json.dumps(levels, sort_keys=True, default=str))
    return None if config is None else Resolved(config, levels)


_UNENFORCED = {
    "execution_limits.max_memory_usage": "not enforced for in-process nodes (tool.code has its own memory cap)",
    "execution_limits.max_cpu_usage": "not enforced (a step's time is capped by max_execution_time instead)",
    "compliance.encryption_at_rest": "not enforced by guardrails: the database's storage decides",
    "compliance.encryption_in_transit": "not enforced by guardrails: set TLS on the database and Redis URLs",
}


def issues(
    instance: Mapping[str, Any] | None,
    workflow: Mapping[str, Any] | None,
    nodes: Mapping[str, Mapping[str, Any] | None],
) -> list[Issue]:
    """Every bad guardrails object (the workflow's, each node's, and each node's merged rules)."""
    found: list[Issue] = []
    checked = [("FLOWLOOM_GUARDRAILS", None, instance), ("policy.guardrails", None, workflow)] + [
        ("guardrails", node_id, level) for node_id, level in nodes.items()
    ]
    for prefix, node_id, level in checked:
        if level:
            _add_parse_issue(found, prefix, node_id, level)
    if any(i.severity == "error" for i in found):
        return found
    if instance and workflow:
        _add_parse_issue(found, "policy.guardrails", None, merge(instance, workflow))
    for node_id, level in nodes.items():
        merged = merge(instance, workflow, level)
        if merged and level:  # the merge can fail where each level alone parses (cost without prices)
            _add_parse_issue(found, "guardrails", node_id, merged)
    for rule, why in _UNENFORCED.items():
        section, key = rule.split(".")
        if (workflow or {}).get(section, {}).get(key) is not None:
            found.append(Issue(why, code=ErrorCode.GUARDRAIL_INVALID,
                               field=f"policy.guardrails.{rule}", severity="warning"))  # fmt: skip
    return found


def _add_parse_issue(found: list[Issue], prefix: str, node_id: str | None, level: Mapping[str, Any]) -> None:
    try:
        parse(level)
    except GuardrailsInvalid as exc:
        field = f"{prefix}.{exc.field}" if exc.field else prefix
        found.append(Issue(exc.message, code=ErrorCode.GUARDRAIL_INVALID, node_id=node_id,
                           field=field))  # fmt: skip

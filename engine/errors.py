"""The small error hierarchy every Flowloom layer raises."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


class FlowloomError(Exception):
    """Base of every error Flowloom raises on purpose."""


class ConfigError(FlowloomError):
    """A setting is missing or wrong; the message names the setting to fix."""


class DefinitionError(FlowloomError):
    """A workflow definition cannot be parsed; says where (path/line, node id)."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        node_id: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.node_id = node_id
        where = []
        if node_id:
            where.append(f'node "{node_id}"')
        if path:
            where.append(path)
        if line is not None:
            where.append(f"line {line}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass(frozen=True)
class Issue:
    """One problem found by validation, located by node/edge id and field."""

    message: str
    code: str = "invalid"
    node_id: str | None = None
    edge_id: str | None = None
    field: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = []
        if self.node_id:
            where.append(f'node "{self.node_id}"')
        if self.edge_id:
            where.append(f'edge "{self.edge_id}"')
        if self.field:
            where.append(self.field)
        prefix = f"{': '.join(where)}: " if where else ""
        return f"{self.severity}: {prefix}{self.message}"

    def to_dict(self) -> dict:
        return asdict(self)


class ValidationError(FlowloomError):
    """A definition parsed but is wrong; carries every issue found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues) or "invalid workflow")


class StepError(FlowloomError):
    """A step failed; `retryable` tells the engine whether retrying may help."""

    def __init__(self, message: str, *, retryable: bool = True, node_id: str | None = None) -> None:
        self.retryable = retryable
        self.node_id = node_id
        super().__init__(f'node "{node_id}": {message}' if node_id else message)


class PolicyViolation(FlowloomError):
    """A guardrail (egress policy, expression sandbox, size cap) refused an action."""

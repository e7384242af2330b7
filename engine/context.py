"""What a running node sees: the step context handed to every node's run function."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine import expressions

if TYPE_CHECKING:
    from engine.egress import EgressClient, EgressPolicy


@dataclass
class StepContext:
    """Everything a node may use while it runs one step of one run.

    Nodes do their I/O through this object: `http` passes the workflow's egress policy,
    `render`/`evaluate` run in the Jinja2 sandbox, `idempotency_key` is stable across
    retries and redeliveries of the same step so receivers can drop duplicates.
    """

    run_id: str
    step_id: str
    node_id: str
    node_type: str
    attempt: int = 1
    visit: int = 1
    run_inputs: Mapping[str, Any] = field(default_factory=dict)
    steps: Mapping[str, Any] = field(default_factory=dict)  # node_id -> {"output": {...}, "status": ...}
    ports: Mapping[str, Any] = field(default_factory=dict)  # this step's input port values
    egress_policy: EgressPolicy | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("flowloom.step"))
    # Resolves a named SQL connection to a database URL (set by the worker from settings).
    sql_connection: Callable[[str], str] | None = None
    _http: EgressClient | None = field(default=None, repr=False)

    @property
    def idempotency_key(self) -> str:
        """Same for every attempt and redelivery of this step (run, node, visit)."""
        return f"{self.run_id}:{self.node_id}:{self.visit}"

    @property
    def variables(self) -> dict[str, Any]:
        """Names visible to templates and expressions."""
        return {
            "input": self.run_inputs,
            "steps": self.steps,  # may load lazily: only templates that use it pay for it
            "ports": self.ports,
            "run": {"id": self.run_id, "attempt": self.attempt, "visit": self.visit},
            "node": {"id": self.node_id, "type": self.node_type},
        }

    def render(self, template: str, **extra: Any) -> str:
        """Render a Jinja2 template string in the sandbox with the step's variables."""
        return expressions.render_template(template, {**self.variables, **extra})

    def evaluate(self, expression: str, **extra: Any) -> Any:
        """Evaluate a Jinja2 expression (no braces) in the sandbox."""
        return expressions.evaluate(expression, {**self.variables, **extra})

    @property
    def http(self) -> EgressClient:
        """An async HTTP client whose every request and redirect passes the egress policy."""
        if self._http is None:
            from engine.egress import EgressClient, EgressPolicy

            self._http = EgressClient(self.egress_policy or EgressPolicy())
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

"""What a running node sees: the step context handed to every node's run function."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from engine import events, expressions, logs, secret_policy, secrets
from engine.contract.environment import NodeEnvironment, database, node_environment
from engine.egress import EgressClient, EgressPolicy
from engine.errors import PolicyViolation, StepError
from engine.settings import get_settings
from models.db import get_engine

log = logging.getLogger("flowloom.step")

PROGRESS_INTERVAL_S = 0.5  # between a step's first and last progress report, at most one event this often
PROGRESS_NOTE_CHARS = 200


@dataclass
class StepContext:
    """Everything a node may use while it runs one step of one run.

    Nodes do their I/O through this object: `http` passes the workflow's egress policy,
    `render`/`evaluate` run in the Jinja2 sandbox, `idempotency_key` is stable across
    retries and redeliveries of the same step so receivers can drop duplicates, and `secret`
    is the only way to a credential: it checks the secret's bindings and remembers the value
    so the engine redacts it from everything the step stores. `emit` writes an event to the
    outbox, `progress` reports how far a long step got, `environment` holds the settings a node
    may read, `database()` reaches the node family's own tables.
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
    # The run's workspace ("" = the default one): secrets, knowledge and memory are that workspace's.
    workspace_id: str = ""
    _http: EgressClient | None = field(default=None, repr=False)
    _secret_http: EgressClient | None = field(default=None, repr=False)
    _secret_values: list[str] = field(default_factory=list, repr=False)
    _secrets_refused: str = field(default="", repr=False)
    _progress_at: float | None = field(default=None, repr=False)  # monotonic time of the last report

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
            self._http = EgressClient(self.egress_policy or EgressPolicy())
        return self._http

    @property
    def secret_http(self) -> EgressClient:
        """Like `http`, for requests that carry a secret: redirects are refused, never followed.

        A redirect could lead the credential to a path or host its bindings do not allow.
        """
        if self._secret_http is None:
            policy = (self.egress_policy or EgressPolicy()).model_copy(update={"max_redirects": 0})
            self._secret_http = EgressClient(policy)
        return self._secret_http

    def secret(self, name: str, *, field: str, destination: str | None = None) -> str:
        """The value of secret `name` for config field `field`, to be sent to URL `destination`.

        Refused (PolicyViolation naming node, field and secret) unless the secret's bindings allow
        this node type and destination; checked before anything is sent. The value is redacted
        from the step's outputs, error, metrics and events.
        """
        where = f'node "{self.node_id}" ({self.node_type}): {field}'
        if self._secrets_refused:
            raise PolicyViolation(f"{where}: {self._secrets_refused}")
        if not name:
            raise StepError(f"{where}: no secret named; enter a secret's name", retryable=False)
        value = secrets.resolve_for_node(
            name, node_id=self.node_id, node_type=self.node_type, field=field, destination=destination,
            workspace_id=self.workspace_id or None,
        )  # fmt: skip
        self.keep_secret(value)
        return value

    def keep_secret(self, value: str) -> None:
        """Redact `value` too (a form derived from a secret, e.g. a Basic auth token)."""
        if value and value not in self._secret_values:
            self._secret_values.append(value)
            logs.mask_secret(value)  # and from this process's log lines

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The values handed out through `secret` (and `keep_secret`) during this step."""
        return tuple(self._secret_values)

    def redact(self, value: Any) -> Any:
        """`value` with every secret value this step used replaced by [redacted]."""
        return secret_policy.redact_value(value, self._secret_values)

    @contextmanager
    def secrets_refused(self, reason: str) -> Iterator[None]:
        """Inside the block `secret` refuses every name with `reason` (e.g. for model-chosen tool calls)."""
        previous, self._secrets_refused = self._secrets_refused, reason
        try:
            yield
        finally:
            self._secrets_refused = previous

    @property
    def environment(self) -> NodeEnvironment:
        """The settings a node may read (data directory, ...)."""
        return node_environment()

    @property
    def data_dir(self) -> Path:
        """Where node files (model caches, ...) live: FLOWLOOM_DATA_DIR."""
        return self.environment.data_dir

    def database(self) -> Engine:
        """Flowloom's database, for the node family's own tables; StepError when none is configured."""
        return database()

    def emit(self, event_type: str, **data: Any) -> None:
        """Write one event (e.g. agent.started) for this step's run to the outbox, in its own transaction.

        The step's node, step id and attempt are added; every secret the step used is redacted. A
        failed write is logged, never fatal to the step: the events are a view of it, its outputs
        are the record.
        """
        url = get_settings().database_url
        if not url:
            return
        data = self.redact(
            {"node_id": self.node_id, "step_id": self.step_id, "attempt": self.attempt, **data}
        )
        try:
            with get_engine(url).begin() as conn:
                events.emit(conn, event_type, self.run_id, **data)
        except Exception:
            log.warning("could not write %s for step %s", event_type, self.step_id, exc_info=True)

    def progress(self, done: float, total: float | None = None, note: str = "") -> bool:
        """Report how far this step got ("40 of 120 documents"): a `workflow.step.progress` event
        with `done`, `total` (None when unknown) and a short `note`, which the run page shows.

        Cheap to call in a loop: the first report and the last (done >= total) are always written,
        the others at most one per PROGRESS_INTERVAL_S. True when an event was written.
        """
        where = f'node "{self.node_id}" ({self.node_type}): progress'
        if not _finite(done) or done < 0:
            raise ValueError(f"{where}: done must be a number >= 0, not {done!r}")
        if total is not None and (not _finite(total) or total <= 0):
            raise ValueError(f"{where}: total must be a number > 0 or None, not {total!r}")
        now = time.monotonic()
        last = total is not None and done >= total
        if self._progress_at is not None and not last and now - self._progress_at < PROGRESS_INTERVAL_S:
            return False
        self._progress_at = now
        self.emit(events.STEP_PROGRESS, done=done, total=total, note=str(note)[:PROGRESS_NOTE_CHARS])
        return True

    async def aclose(self) -> None:
        for client in (self._http, self._secret_http):
            if client is not None:
                await client.aclose()
        self._http = self._secret_http = None


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

"""What a worker knows of a run: its cached definition, claimed steps and earlier outputs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, text

from engine.definition import WorkflowDefinition
from engine.scheduler import Graph


@dataclass(frozen=True)
class Dispatch:
    """A step whose Celery message leaves after the commit."""

    step_id: str
    countdown: float = 0.0


@dataclass
class ClaimedStep:
    """A step this worker now owns until its lease expires."""

    step_id: str
    run_id: str
    node_id: str
    node_type: str
    visit: int
    attempt: int
    inputs: dict[str, Any]


@dataclass(frozen=True)
class RunContext:
    """The immutable parts of a run: its definition, graph and inputs (cached per process)."""

    run_id: str
    workflow_id: str | None
    defn: WorkflowDefinition
    graph: Graph
    inputs: dict[str, Any]


def to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


@lru_cache(maxsize=256)
def _parse_definition(raw: str) -> tuple[WorkflowDefinition, Graph]:
    defn = WorkflowDefinition.model_validate_json(raw)
    return defn, Graph(defn)


_run_cache: dict[str, RunContext] = {}


def load_run(conn: Connection, run_id: str) -> RunContext:
    """The run's definition and inputs; immutable, so cached in the process."""
    cached = _run_cache.get(run_id)
    if cached is not None:
        return cached
    row = conn.execute(
        text("SELECT definition::text AS d, inputs, workflow_id FROM runs WHERE id = :id"), {"id": run_id}
    ).one()
    defn, graph = _parse_definition(row.d)
    ctx = RunContext(run_id, str(row.workflow_id) if row.workflow_id else None, defn, graph, row.inputs or {})
    if len(_run_cache) > 1000:
        _run_cache.clear()
    _run_cache[run_id] = ctx
    return ctx


class LazyMapping(Mapping[str, Any]):
    """A mapping loaded on first use: most steps never look at earlier steps' outputs."""

    def __init__(self, loader: Callable[[], dict[str, Any]]) -> None:
        self._loader = loader
        self._data: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._loader()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def step_outputs(conn: Connection, run_id: str) -> dict[str, Any]:
    """Latest outputs of every finished node of the run, for templates (`steps.x.output`)."""
    rows = conn.execute(
        text(
            "SELECT DISTINCT ON (node_id) node_id, status, outputs FROM step_runs"
            " WHERE run_id = :run AND status IN ('succeeded', 'failed') ORDER BY node_id, visit DESC"
        ),
        {"run": run_id},
    )
    return {
        r.node_id: {"output": primary_output(r.outputs), "outputs": r.outputs, "status": r.status}
        for r in rows
    }


def primary_output(outputs: dict | None) -> Any:
    """The value templates see as `steps.x.output`: the "out" port, else the whole dict."""
    if isinstance(outputs, dict) and set(outputs) == {"out"}:
        return outputs["out"]
    return outputs

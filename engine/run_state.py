"""What a worker knows of a run: its cached definition, claimed steps and what its steps recorded.

The reads here are SQLAlchemy Core over the model tables, built once at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    String,
    Text,
    any_,
    bindparam,
    cast,
    exists,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import distinct_on

from engine.definition import WorkflowDefinition
from engine.scheduler import TERMINAL, Graph, NodeState
from models.core_tables import table_of
from models.tables import Run, StepRun

_runs, _steps = table_of(Run), table_of(StepRun)


def status_literal(name: str) -> ColumnElement[str]:
    """A status written into the statement, not bound: PostgreSQL plans `status = 'running'` from
    its statistics, while a bound status gets a generic plan once psycopg prepares the statement,
    and that plan takes the (status, lease_until) index: five times slower per step."""
    if not name.isidentifier():
        raise ValueError(f"not a status name: {name!r}")
    return literal_column(f"'{name}'", String)


def status_literals(*names: str) -> list[ColumnElement[str]]:
    """`status_literal` of each name, for `column.in_(...)`."""
    return [status_literal(n) for n in names]


ACTIVE = status_literals("queued", "running", "waiting")  # a step that is not done


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


# The columns `claimed` reads.
STEP_COLUMNS = (
    _steps.c.id,
    _steps.c.run_id,
    _steps.c.node_id,
    _steps.c.node_type,
    _steps.c.visit,
    _steps.c.attempt,
    _steps.c.inputs,
)


def claimed(row: Any) -> ClaimedStep:
    """A ClaimedStep from a row of STEP_COLUMNS."""
    return ClaimedStep(
        str(row.id), str(row.run_id), row.node_id, row.node_type, row.visit, row.attempt, row.inputs or {}
    )


@dataclass(frozen=True)
class RunContext:
    """The immutable parts of a run: its definition, graph and inputs (cached per process)."""

    run_id: str
    workflow_id: str | None
    defn: WorkflowDefinition
    graph: Graph
    inputs: dict[str, Any]
    # Set on a child run of a sub-workflow step: the run and step waiting for it.
    parent_run_id: str | None = None
    parent_step_id: str | None = None
    workspace_id: str = ""  # the run's workspace: its steps read that workspace's secrets and knowledge


@lru_cache(maxsize=256)
def _parse_definition(raw: str) -> tuple[WorkflowDefinition, Graph]:
    defn = WorkflowDefinition.model_validate_json(raw)
    return defn, Graph(defn)


_run_cache: dict[str, RunContext] = {}
# The definition as JSON text: pydantic parses it directly, and the text is the parse cache's key.
_LOAD_RUN = select(
    cast(_runs.c.definition, Text).label("d"),
    _runs.c.inputs,
    _runs.c.workflow_id,
    _runs.c.parent_run_id,
    _runs.c.parent_step_id,
    _runs.c.workspace_id,
).where(_runs.c.id == bindparam("run"))


def load_run(conn: Connection, run_id: str) -> RunContext:
    """The run's definition and inputs; immutable, so cached in the process."""
    cached = _run_cache.get(run_id)
    if cached is not None:
        return cached
    row = conn.execute(_LOAD_RUN, {"run": run_id}).one()
    defn, graph = _parse_definition(row.d)
    ctx = RunContext(
        run_id,
        str(row.workflow_id) if row.workflow_id else None,
        defn,
        graph,
        row.inputs or {},
        parent_run_id=str(row.parent_run_id) if row.parent_run_id else None,
        parent_step_id=str(row.parent_step_id) if row.parent_step_id else None,
        workspace_id=str(row.workspace_id) if row.workspace_id else "",
    )
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


def _latest_per_node(*columns: Any) -> Any:
    """The latest visit of each node of run :run (DISTINCT ON node_id)."""
    return (
        select(_steps.c.node_id, *columns)
        .where(_steps.c.run_id == bindparam("run"))
        .ext(distinct_on(_steps.c.node_id))
        .order_by(_steps.c.node_id, _steps.c.visit.desc())
    )


_FINISHED_OUTPUTS = _latest_per_node(_steps.c.status, _steps.c.outputs).where(
    _steps.c.status.in_(status_literals("succeeded", "failed"))
)


def step_outputs(conn: Connection, run_id: str) -> dict[str, Any]:
    """Latest outputs of every finished node of the run, for templates (`steps.x.output`)."""
    rows = conn.execute(_FINISHED_OUTPUTS, {"run": run_id})
    return {
        r.node_id: {"output": primary_output(r.outputs), "outputs": r.outputs, "status": r.status}
        for r in rows
    }


def primary_output(outputs: dict | None) -> Any:
    """The value templates see as `steps.x.output`: the "out" port, else the whole dict."""
    if isinstance(outputs, dict) and set(outputs) == {"out"}:
        return outputs["out"]
    return outputs


_NODE_STATES = _latest_per_node(_steps.c.status, _steps.c.fired_edges)


_STATES_OF = _NODE_STATES.where(_steps.c.node_id == any_(bindparam("nodes", type_=ARRAY(String))))
# DAG runs have one step row per node (visit 1), so counting rows counts nodes.
_RESOLVED = select(func.count()).where(
    _steps.c.run_id == bindparam("run"),
    _steps.c.node_id == any_(bindparam("nodes", type_=ARRAY(String))),
    _steps.c.status.in_(status_literals(*TERMINAL)),
)


_RESOLVED_OUTSIDE = select(func.count()).where(
    _steps.c.run_id == bindparam("run"),
    ~(_steps.c.node_id == any_(bindparam("nodes", type_=ARRAY(String)))),
    _steps.c.status.in_(status_literals(*TERMINAL)),
)


class RunStates(dict[str, NodeState]):
    """The states of a DAG run's nodes, read from its step rows a batch at a time as the scheduler
    asks (engine/scheduler.py StateLookup), instead of every node's row at each step's end."""

    def __init__(self, conn: Connection, run_id: str, graph_nodes: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self._conn, self._run_id = conn, run_id
        self._nodes = graph_nodes
        self._read: set[str] = set()

    def prefetch(self, node_ids: Iterable[str]) -> None:
        wanted = [n for n in dict.fromkeys(node_ids) if n not in self._read and n not in self]
        if not wanted:
            return
        self._read.update(wanted)
        for r in self._conn.execute(_STATES_OF, {"run": self._run_id, "nodes": wanted}):
            self[r.node_id] = NodeState(r.status, r.fired_edges or [])

    def count_resolved(self, node_ids: list[str]) -> int:
        done, unknown = 0, []
        for n in node_ids:
            state = self.get(n)
            if state is not None:
                done += state.status in TERMINAL
            elif n not in self._read:
                unknown.append(n)
        if not unknown:
            return done
        # Name the smaller side in the statement: a wide join's sources are most of the graph, and a
        # list of thousands is costly to send and is searched once per row scanned.
        outside = self._nodes.difference(unknown) if self._nodes.issuperset(unknown) else None
        if outside is not None and len(outside) < len(unknown):
            statement, nodes = _RESOLVED_OUTSIDE, sorted(outside)
        else:
            statement, nodes = _RESOLVED, unknown
        return done + int(self._conn.execute(statement, {"run": self._run_id, "nodes": nodes}).scalar_one())


_OUTPUTS_OF = _latest_per_node(_steps.c.outputs).where(
    _steps.c.node_id == any_(bindparam("nodes", type_=ARRAY(String)))
)


def outputs_of(conn: Connection, run_id: str, node_ids: list[str]) -> dict[str, Any]:
    """The latest outputs of the given nodes."""
    if not node_ids:
        return {}
    rows = conn.execute(_OUTPUTS_OF, {"run": run_id, "nodes": node_ids})
    return {r.node_id: r.outputs for r in rows}


_HAS_ACTIVE = select(exists().where(_steps.c.run_id == bindparam("run"), _steps.c.status.in_(ACTIVE)))


def has_active_steps(conn: Connection, run_id: str) -> bool:
    """Whether a step of the run is still queued, running or waiting."""
    return bool(conn.execute(_HAS_ACTIVE, {"run": run_id}).scalar())


_LAST_VISIT = select(func.coalesce(func.max(_steps.c.visit), 0)).where(
    _steps.c.run_id == bindparam("run"), _steps.c.node_id == bindparam("node")
)


def last_visit(conn: Connection, run_id: str, node_id: str) -> int:
    """How many times the run has visited `node_id` so far (0: never)."""
    return conn.execute(_LAST_VISIT, {"run": run_id, "node": node_id}).scalar_one()


_RUN_STEPS = (
    select(_steps.c.node_id, _steps.c.node_type, _steps.c.status, _steps.c.outputs)
    .where(_steps.c.run_id == bindparam("run"))
    .order_by(_steps.c.finished_at)
)


def finished_order(conn: Connection, run_id: str) -> list[Any]:
    """Every step of the run (node_id, node_type, status, outputs) in the order they finished."""
    return list(conn.execute(_RUN_STEPS, {"run": run_id}).all())

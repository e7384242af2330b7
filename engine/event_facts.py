"""What the relay adds to outbox events from the run and step rows, read in one query each per batch."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from engine.event_schema import RunFacts, StepFacts
from models.core_tables import table_of
from models.tables import Run, StepRun

_runs = table_of(Run)
_steps = table_of(StepRun)
_RUN_COLUMNS = (
    _runs.c.id,
    _runs.c.workflow_id,
    _runs.c.definition,
    _runs.c.created_by,
    _runs.c.started_by,
    _runs.c.session_id,
    _runs.c.started_at,
    _runs.c.finished_at,
)
_STEP_COLUMNS = (
    _steps.c.id,
    _steps.c.node_type,
    _steps.c.inputs,
    _steps.c.outputs,
    _steps.c.metrics,
    _steps.c.started_at,
    _steps.c.finished_at,
    _steps.c.status,
)
_FINISHED = ("succeeded", "failed", "cancelled")


class RunFactsCache:
    """Run facts by run id; a definition never changes, so an entry is only replaced when the run ends."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._facts: OrderedDict[str, RunFacts] = OrderedDict()

    def load(
        self, conn: Connection, run_ids: Iterable[str], ended: Iterable[str] = ()
    ) -> dict[str, RunFacts]:
        """Facts of `run_ids`, reading the rows of those not cached and of the `ended` ones (run time)."""
        wanted = set(run_ids)
        stale = (wanted - self._facts.keys()) | (set(ended) & wanted)
        if stale:
            for row in conn.execute(select(*_RUN_COLUMNS).where(_runs.c.id.in_(sorted(stale)))):
                self._remember(str(row.id), run_facts(row))
        return {run_id: self._facts[run_id] for run_id in wanted if run_id in self._facts}

    def _remember(self, run_id: str, facts: RunFacts) -> None:
        self._facts[run_id] = facts
        self._facts.move_to_end(run_id)
        while len(self._facts) > self.size:
            self._facts.popitem(last=False)


def run_facts(row: Any) -> RunFacts:
    """RunFacts from a row of `runs` (its copied definition is read as plain JSON)."""
    defn = row.definition or {}
    nodes = {
        n["id"]: (str(n.get("type", "")), str(n.get("label") or ""))
        for n in defn.get("nodes", [])
        if isinstance(n, dict) and "id" in n
    }
    edges = {e["id"]: e["target"] for e in defn.get("edges", []) if isinstance(e, dict) and "id" in e}
    elapsed = None
    if row.started_at is not None and row.finished_at is not None:
        elapsed = round((row.finished_at - row.started_at).total_seconds() * 1000, 3)
    return RunFacts(
        workflow_id=str(defn.get("id", "")),
        workflow_name=str(defn.get("name", "")),
        saved_workflow_id=str(row.workflow_id) if row.workflow_id else None,
        user_id=str(row.created_by) if row.created_by else None,
        started_by=row.started_by or "",
        session_id=str(row.session_id) if row.session_id else None,
        nodes=nodes,
        edge_targets=edges,
        execution_time_ms=elapsed,
    )


def load_step_facts(conn: Connection, step_ids: Iterable[str]) -> dict[str, StepFacts]:
    """Facts of the step rows `step_ids` (missing rows are left out)."""
    wanted = sorted(set(step_ids))
    if not wanted:
        return {}
    rows = conn.execute(select(*_STEP_COLUMNS).where(_steps.c.id.in_(wanted)))
    return {str(row.id): step_facts(row) for row in rows}


def step_facts(row: Any) -> StepFacts:
    """StepFacts from a row of `step_runs`: outputs and time only once the step has finished."""
    finished = row.status in _FINISHED
    elapsed = (row.metrics or {}).get("duration_ms") if finished else None
    if finished and elapsed is None and row.started_at is not None and row.finished_at is not None:
        elapsed = round((row.finished_at - row.started_at).total_seconds() * 1000, 3)
    return StepFacts(
        node_type=row.node_type,
        inputs=row.inputs,
        outputs=row.outputs if finished else None,
        execution_time_ms=elapsed,
    )

"""Re-run a past run from one of its steps, or fork it with new inputs: a new run of the same version.

A re-run reuses what the past run recorded before the chosen step: each of those steps is copied
into the new run with its status, inputs, outputs, fired edges and timings (and `reused_from`, the
step it copies), and never executes again. The chosen step runs anew with the inputs it had, and so
does everything after it. "Before" is, in a DAG, every node that is not the chosen one nor
downstream of it (a parallel branch that had finished keeps its result, failed ones included; one
that had been cancelled runs again); in a state machine, every step queued before the chosen visit.

A fork starts the same version with other inputs, checked against the workflow's inputs schema.

Both are started through `engine.runs.start_run_in` (validated, audited as `run.started`, plus
`run.rerun` or `run.forked` naming the source) and record their source run on the new run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

from sqlalchemy import Connection, delete, func, insert, select, update

from engine import audit, dispatch
from engine.definition import WorkflowDefinition
from engine.errors import ErrorCode, FlowloomError
from engine.ids import parse_id
from engine.run_state import Dispatch
from engine.runs import StartOptions, start_run_in
from engine.scheduler import Graph
from engine.settings import get_settings
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Run, StepRun

_runs, _steps = table_of(Run), table_of(StepRun)
ENDED = ("succeeded", "failed", "cancelled")
# A step of the past run with one of these keeps its result in a DAG re-run; others run again.
KEPT = ("succeeded", "failed", "skipped")
SourceKind = Literal["rerun", "fork"]

_COPIED = (
    "node_id", "node_type", "visit", "status", "attempt", "inputs", "outputs", "fired_edges", "error",
    "queued_at", "started_at", "finished_at", "metrics",
)  # fmt: skip


class RestartOptions(TypedDict, total=False):
    """Who starts the new run and from where (as `engine.runs.start_run`); never which version."""

    created_by: str | None
    started_by: str
    started_via: str
    actor: str
    workspace_id: str | None  # the source's workspace: where a copy of an inline definition's run goes


@dataclass(frozen=True)
class SourceRun:
    """The past run a re-run or fork starts from."""

    id: str
    status: str
    definition: WorkflowDefinition
    inputs: dict[str, Any]
    workflow_id: str | None
    version_id: str | None

    @property
    def saved(self) -> bool:
        """Whether it ran a saved version (else an inline definition, which only editors may run)."""
        return self.version_id is not None


def source_run(run_id: str, *, database_url: str | None = None) -> SourceRun:
    """The run to re-run or fork; RUN_NOT_FOUND when there is none."""
    rid = parse_id(run_id)
    row = None
    if rid is not None:
        with _db(database_url).connect() as conn:
            row = conn.execute(
                select(_runs.c.id, _runs.c.status, _runs.c.definition, _runs.c.inputs, _runs.c.workflow_id,
                       _runs.c.version_id).where(_runs.c.id == rid)
            ).first()  # fmt: skip
    if row is None:
        raise FlowloomError(f"run {run_id} not found", code=ErrorCode.RUN_NOT_FOUND)
    return SourceRun(
        str(row.id), row.status, WorkflowDefinition.model_validate(row.definition), dict(row.inputs or {}),
        str(row.workflow_id) if row.workflow_id else None, str(row.version_id) if row.version_id else None,
    )  # fmt: skip


def rerun_from(
    run_id: str,
    node_id: str,
    *,
    visit: int = 1,
    database_url: str | None = None,
    **options: Unpack[RestartOptions],
) -> str:
    """Start a new run of `run_id`'s version that reuses the steps before `node_id` (its `visit`)
    and runs that step and what follows anew; returns the new run's id.

    `options` are `start_run`'s (started_by, started_via, actor, created_by); workflow and version
    are the source run's. The source must have ended (RUN_NOT_ENDED) and have run the step
    (RERUN_STEP_INVALID otherwise).
    """
    source = source_run(run_id, database_url=database_url)
    _must_have_ended(source)
    with _db(database_url).begin() as conn:
        new_id, sent = _start_copy(conn, source, source.inputs, "rerun", options, node_id=node_id)
        sent = _reuse_before(conn, source, new_id, node_id, visit) or sent
        audit.record(
            conn, actor=options.get("actor") or options.get("started_by", "system"), action="run.rerun",
            source=options.get("started_via", ""),
            target_type="run", target_id=new_id,
            details={"source_run_id": source.id, "from_node": node_id, "visit": visit},
        )  # fmt: skip
    dispatch.send(sent)
    return new_id


def fork(
    run_id: str,
    inputs: dict[str, Any],
    *,
    database_url: str | None = None,
    **options: Unpack[RestartOptions],
) -> str:
    """Start `run_id`'s version again with `inputs` (checked against its inputs schema); the new id.

    The source may still be going: a fork shares nothing with it but the version.
    """
    source = source_run(run_id, database_url=database_url)
    with _db(database_url).begin() as conn:
        new_id, sent = _start_copy(conn, source, dict(inputs), "fork", options)
        audit.record(
            conn, actor=options.get("actor") or options.get("started_by", "system"), action="run.forked",
            source=options.get("started_via", ""),
            target_type="run", target_id=new_id, details={"source_run_id": source.id},
        )  # fmt: skip
    dispatch.send(sent)
    return new_id


def _db(database_url: str | None):
    return get_engine(database_url or get_settings().database_url)


def _must_have_ended(source: SourceRun) -> None:
    if source.status not in ENDED:
        raise FlowloomError(
            f"run {source.id} is still {source.status}; re-run it from a step once it has ended "
            "(or cancel it first)",
            code=ErrorCode.RUN_NOT_ENDED,
        )


def _start_copy(
    conn: Connection,
    source: SourceRun,
    inputs: dict[str, Any],
    kind: SourceKind,
    options: RestartOptions,
    *,
    node_id: str | None = None,
) -> tuple[str, list[Dispatch]]:
    """Start the source's version (validated, inputs checked, audited) and link the new run to it."""
    start = StartOptions(workflow_id=source.workflow_id, version_id=source.version_id, **options)
    new_id, sent = start_run_in(conn, source.definition, inputs, **start)
    conn.execute(
        update(_runs)
        .where(_runs.c.id == new_id)
        .values(source_run_id=source.id, source_kind=kind, source_node_id=node_id)
    )
    return new_id, sent


def _reuse_before(
    conn: Connection, source: SourceRun, new_id: str, node_id: str, visit: int
) -> list[Dispatch]:
    """Copy the source's steps before (node_id, visit) into the new run; queue what runs anew."""
    graph = Graph(source.definition)
    if node_id not in graph.nodes:
        raise FlowloomError(
            f'run {source.id} has no node "{node_id}"', code=ErrorCode.RERUN_STEP_INVALID,
            node_id=node_id, field="node_id",
        )  # fmt: skip
    rows = conn.execute(
        select(_steps.c.id, *(_steps.c[name] for name in _COPIED))
        .where(_steps.c.run_id == source.id)
        .order_by(_steps.c.queued_at, _steps.c.visit, _steps.c.id)
    ).all()
    chosen = next((r for r in rows if r.node_id == node_id and r.visit == visit), None)
    if chosen is None or chosen.status == "skipped":
        why = "was skipped" if chosen is not None else f"never ran visit {visit} of it"
        raise FlowloomError(
            f'run {source.id} {why} for node "{node_id}"; re-run from a step that ran',
            code=ErrorCode.RERUN_STEP_INVALID, node_id=node_id, field="node_id",
        )  # fmt: skip
    if node_id == graph.start and visit == 1:
        return []  # from the start is running it all again: start_run_in queued the start step
    conn.execute(delete(_steps).where(_steps.c.run_id == new_id))  # the fresh start step: reused instead
    again: list[Any] = [chosen]
    if source.definition.mode == "state_machine":
        kept = rows[: rows.index(chosen)]
    else:
        after = _downstream(graph, node_id)
        before = [r for r in rows if r.node_id not in after]
        kept = [r for r in before if r.status in KEPT]
        again += [r for r in before if r.status not in KEPT]
    for row in kept:
        values = {name: getattr(row, name) for name in _COPIED}
        conn.execute(
            insert(_steps).values(
                id=uuid.uuid4(), run_id=new_id, reused_from=row.id, sent_at=row.queued_at, **values
            )
        )
    dispatches = []
    for row in again:
        step_id = uuid.uuid4()
        conn.execute(
            insert(_steps).values(
                id=step_id, run_id=new_id, node_id=row.node_id, node_type=row.node_type, visit=row.visit,
                status="queued", attempt=0, inputs=row.inputs, queued_at=func.now(), sent_at=func.now(),
            )
        )  # fmt: skip
        dispatches.append(Dispatch(str(step_id)))
    return dispatches


def _downstream(graph: Graph, node_id: str) -> set[str]:
    """`node_id` and every node reachable from it."""
    seen = {node_id}
    todo = [node_id]
    while todo:
        for edge in graph.out[todo.pop()]:
            if edge.target not in seen:
                seen.add(edge.target)
                todo.append(edge.target)
    return seen

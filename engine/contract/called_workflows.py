"""Saved workflow versions another workflow calls: what a pinned version takes and gives.

A node that runs another saved workflow (it returns `ChildRun`) reads the called version here to
derive its ports from the version's inputs schema and run outputs; the engine reads it to start
the child run and to follow calls when validating (engine/workflow_calls.py). Saved versions
never change, so what was read is kept per process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from engine.definition import WorkflowDefinition
from engine.errors import DefinitionError, ErrorCode, FlowloomError
from engine.ids import parse_id
from engine.parse import parse_dict
from engine.settings import get_settings
from models.core_tables import table_of
from models.db import get_engine
from models.tables import Workflow, WorkflowVersion

_versions, _workflows = table_of(WorkflowVersion), table_of(Workflow)
_cache: dict[tuple[str, str, int], CalledWorkflow] = {}
_lock = threading.Lock()
# The workspace a caller acts in, while `calls_within` sets it: another workspace's workflow is no
# called workflow then, so nothing derived from it (a sub-workflow node's ports) reaches the caller.
_within: ContextVar[str | None] = ContextVar("called_workflows_within", default=None)


@dataclass(frozen=True)
class CalledWorkflow:
    """A saved workflow version another workflow calls: its ids, name and definition."""

    workflow_id: str
    version: int
    version_id: str
    name: str  # the workflow's name when it was read
    definition: WorkflowDefinition
    workspace_id: str = ""  # a workflow may call only workflows of its own workspace

    @property
    def inputs_schema(self) -> dict[str, Any]:
        """The JSON Schema its run inputs must match ({} when it takes any)."""
        return dict(self.definition.inputs)

    @property
    def output_names(self) -> list[str]:
        """The names of its run outputs (`outputs:`), in order; [] when it declares none."""
        return list(self.definition.outputs)


@contextmanager
def calls_within(workspace_id: str | None) -> Iterator[None]:
    """Inside, `called_workflow` finds workflows of workspace `workspace_id` only (None: any)."""
    token = _within.set(str(workspace_id) if workspace_id else None)
    try:
        yield
    finally:
        _within.reset(token)


def called_workflow(workflow_id: str, version: int) -> CalledWorkflow | None:
    """The saved `version` of workflow `workflow_id`; None when there is no such version (or,
    inside `calls_within`, when it is another workspace's).

    FlowloomError (database_unavailable) when the database cannot be read.
    """
    found = _read(workflow_id, version)
    within = _within.get()
    return None if found is None or (within is not None and found.workspace_id != within) else found


def _read(workflow_id: str, version: int) -> CalledWorkflow | None:
    wanted = parse_id(workflow_id)
    if wanted is None or not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return None
    url = get_settings().database_url
    key = (url, str(wanted), version)
    with _lock:
        found = _cache.get(key)
    if found is not None:
        return found
    query = (
        select(_versions.c.id, _versions.c.definition, _workflows.c.name, _workflows.c.workspace_id)
        .join(_workflows, _workflows.c.id == _versions.c.workflow_id)
        .where(_versions.c.workflow_id == wanted, _versions.c.version == version)
    )
    try:
        with get_engine(url).connect() as conn:
            row = conn.execute(query).first()
    except Exception as exc:  # no database configured or reachable: say so, never guess
        raise FlowloomError(
            f"cannot read workflow {workflow_id} version {version}: {exc}",
            code=ErrorCode.DATABASE_UNAVAILABLE,
        ) from exc
    if row is None:
        return None
    try:
        defn = parse_dict(row.definition)
    except DefinitionError:
        return None
    found = CalledWorkflow(str(wanted), version, str(row.id), row.name, defn, str(row.workspace_id))
    with _lock:
        if len(_cache) > 1000:
            _cache.clear()
        _cache[key] = found
    return found

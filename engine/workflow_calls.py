"""Workflows that call workflows: the validator's checks of the calls.

A node type that runs another saved workflow says which one its config calls
(`NodeType.calls_workflow`, a (workflow id, version) pair). The validator follows those calls at
their pinned versions (`call_issues`) and refuses a chain that reaches a workflow already in it
(A calls B calls A): such a run could only end at the depth cap. The called versions are read
through `engine.contract.called_workflow` (engine/contract/called_workflows.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from engine.contract import CalledWorkflow, called_workflow, get_node_type
from engine.definition import NodeSpec, WorkflowDefinition
from engine.errors import ErrorCode, FlowloomError, Issue
from engine.ids import parse_id
from engine.settings import get_settings
from models.db import get_engine
from models.tables import Workflow

# A chain of calls longer than this is reported as it is, without following it further.
MAX_FOLLOWED = 50


def calls_of(node: NodeSpec | Mapping[str, Any]) -> tuple[str, int] | None:
    """The (workflow id, version) a node calls, when its type calls workflows and its config says."""
    node_type_name = node.type if isinstance(node, NodeSpec) else str(node.get("type", ""))
    config = node.config if isinstance(node, NodeSpec) else node.get("config") or {}
    node_type = get_node_type(node_type_name)
    return None if node_type is None else node_type.workflow_called(config)


def resolvable(node: NodeSpec, workspace_id: str | uuid.UUID | None = None) -> bool:
    """Whether what a node's ports depend on can be read: it calls no workflow, or the version it
    calls exists (when not, its ports are unknown and `call_issues` says why). A workflow of another
    workspace than `workspace_id` (when given) does not exist: its inputs and outputs stay unread."""
    target = calls_of(node)
    if target is None:
        return True
    try:
        return callable_from(called_workflow(*target), workspace_id) is not None
    except FlowloomError:
        return False


def workspace_of(workflow_id: str | uuid.UUID) -> str | None:
    """The workspace of saved workflow `workflow_id` (None when unknown or no database is configured)."""
    wanted = parse_id(workflow_id)
    url = get_settings().database_url
    if wanted is None or not url:
        return None
    try:
        with get_engine(url).connect() as conn:
            found = conn.execute(
                select(col(Workflow.workspace_id)).where(col(Workflow.id) == wanted)
            ).scalar()
    except Exception as exc:  # no database reachable: say so, never guess
        raise FlowloomError(
            f"cannot read workflow {workflow_id}: {exc}", code=ErrorCode.DATABASE_UNAVAILABLE
        ) from exc
    return None if found is None else str(found)


def callable_from(
    called: CalledWorkflow | None, workspace_id: str | uuid.UUID | None
) -> CalledWorkflow | None:
    """`called` when a workflow of workspace `workspace_id` may call it (None: any), else None: a
    workflow of another workspace does not exist for the caller."""
    if called is None or workspace_id is None or called.workspace_id == str(workspace_id):
        return called
    return None


def call_issues(
    defn: WorkflowDefinition,
    *,
    workflow_id: str | None = None,
    workspace_id: str | uuid.UUID | None = None,
) -> list[Issue]:
    """One issue per calling node whose pinned call cannot be made: an unknown version (a workflow
    of another workspace than `workspace_id` is unknown), or a chain of calls (followed at the
    pinned versions) that reaches a workflow already in it.

    `workflow_id` is the workflow `defn` is a version of, when it is saved: a call that leads back
    to it is recursion too.
    """
    issues: list[Issue] = []
    root = [(str(parse_id(workflow_id)), defn.name)] if workflow_id and parse_id(workflow_id) else []
    for node in defn.nodes:
        target = calls_of(node)
        if target is None:
            continue
        where = f'node "{node.id}" ({node.type})'
        try:
            problem = _follow(target, root, [], workspace_id)
        except FlowloomError as exc:
            issues.append(
                Issue(f"{where}: {exc}", code=exc.code, node_id=node.id, field="config.workflow_id")
            )
            continue
        if problem is not None:
            message, code, field = problem
            issues.append(Issue(f"{where}: {message}", code=code, node_id=node.id, field=field))
    return issues


def _follow(
    target: tuple[str, int],
    root: list[tuple[str, str]],
    called_so_far: list[tuple[str, str]],
    workspace_id: str | uuid.UUID | None = None,
) -> tuple[str, ErrorCode, str] | None:
    """Why the call to `target` cannot be made, after the calls `called_so_far` ((workflow id,
    name) each) from `root` (the workflow being checked, when it is saved)."""
    workflow_id, version = target
    called = callable_from(called_workflow(workflow_id, version), workspace_id)
    chain = [*root, *called_so_far]
    if called is None:
        if called_so_far:  # deeper in the chain: the called workflow's own call is broken
            names = " -> ".join(f'"{name}"' for _, name in called_so_far)
            message = f"{names} calls workflow {workflow_id} version {version}, which does not exist"
        else:
            message = f"workflow {workflow_id} has no saved version {version}; pick a saved version"
        return message, ErrorCode.VERSION_NOT_FOUND, "config.version"
    path = [*chain, (called.workflow_id, f"{called.name} v{version}")]
    if any(wid == called.workflow_id for wid, _ in chain):
        names = " -> ".join(f'"{name}"' for _, name in path)
        message = (
            f"recursion: {names} calls a workflow that is already in the chain; a workflow may not "
            "call itself, directly or through others"
        )
        return message, ErrorCode.SUBWORKFLOW_RECURSION, "config.workflow_id"
    if len(path) > MAX_FOLLOWED:
        return None
    for node in called.definition.nodes:
        inner = calls_of(node)
        if inner is not None:
            found = _follow(inner, root, [*called_so_far, path[-1]], workspace_id)
            if found is not None:
                return found
    return None

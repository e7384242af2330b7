"""Saved agents' rows: reading them, moving them along the lifecycle, and their executions.

Every state change of a saved agent is written with its `agent.transitioned` event in one
transaction (the outbox), after `engine.agent_lifecycle.check_transition` allowed it. An agent
takes work while READY or EXECUTING: the row lists the step ids executing it (`active_steps`),
goes READY -> EXECUTING with the first and EXECUTING -> COMPLETED | FAILED -> READY when the
last one ends. Steps that ended without saying so (a killed worker) are dropped from the list
whenever it is read for an update, so an agent is never stuck in EXECUTING.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from engine import events
from engine.agent_lifecycle import AVAILABLE, CHECKS, AgentState, check_transition
from engine.errors import ErrorCode, FlowloomError
from engine.ids import parse_id
from engine.settings import get_settings
from models.agents import SavedAgent
from models.core_tables import table_of
from models.db import get_engine
from models.tables import StepRun
from models.workspace_column import DEFAULT_WORKSPACE_ID

agents_table = table_of(SavedAgent)
_steps = table_of(StepRun)
AGENT_TRANSITIONED = events.AGENT_TRANSITIONED
_LIVE_STEP = ("queued", "running", "retrying")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class AgentRecord:
    """A saved agent as the engine and nodes read it."""

    id: str
    name: str
    description: str
    state: AgentState
    config: dict[str, Any]
    guardrails: dict[str, Any]
    capabilities: list[str]
    memory: dict[str, Any]
    pricing: dict[str, Any]
    state_reason: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    active_steps: list[str] = field(default_factory=list)
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    state_changed_at: datetime | None = None
    workspace_id: str = ""

    @property
    def available(self) -> bool:
        return self.state in AVAILABLE


def record_of(row: Any) -> AgentRecord:
    return AgentRecord(
        id=row.id, name=row.name, description=row.description, state=AgentState(row.state),
        config=dict(row.config or {}), guardrails=dict(row.guardrails or {}),
        capabilities=list(row.capabilities or []), memory=dict(row.memory or {}), pricing=dict(row.pricing or {}),
        state_reason=row.state_reason or "", checks=list(row.checks or []),
        active_steps=list(row.active_steps or []), created_by=row.created_by or "",
        created_at=row.created_at, updated_at=row.updated_at, state_changed_at=row.state_changed_at,
        workspace_id=str(row.workspace_id),
    )  # fmt: skip


def workspace_key(workspace_id: str | uuid.UUID | None) -> uuid.UUID:
    """The workspace to look agents up in: None or "" is the default one; a malformed id matches nothing."""
    if workspace_id is None or workspace_id == "":
        return DEFAULT_WORKSPACE_ID
    return parse_id(workspace_id) or uuid.UUID(int=0)


def db(database_url: str | None = None):
    url = database_url or get_settings().database_url
    if not url:
        raise FlowloomError(
            "no database configured (FLOWLOOM_DATABASE_URL)", code=ErrorCode.DATABASE_UNAVAILABLE
        )
    return get_engine(url)


def not_found(agent_id: str) -> FlowloomError:
    return FlowloomError(f"no agent {agent_id}", code=ErrorCode.AGENT_NOT_FOUND, field="agent_id")


def read(conn: Connection, agent_id: str, *, lock: bool = False) -> AgentRecord | None:
    query = select(agents_table).where(agents_table.c.id == str(agent_id))
    row = conn.execute(query.with_for_update() if lock else query).first()
    return None if row is None else record_of(row)


def get(
    agent_id: str, *, database_url: str | None = None, workspace_id: str | uuid.UUID | None = None
) -> AgentRecord | None:
    """The saved agent `agent_id`, or None; with `workspace_id` (a caller's or a run's) also None when
    it belongs to another workspace."""
    with db(database_url).connect() as conn:
        found = read(conn, agent_id)
    if (
        found is not None
        and workspace_id is not None
        and found.workspace_id != str(workspace_key(workspace_id))
    ):
        return None
    return found


def transition(
    conn: Connection,
    agent: AgentRecord,
    target: AgentState,
    *,
    trigger: str,
    reason: str = "",
    run_id: str | None = None,
    step_id: str | None = None,
    node_id: str | None = None,
    user_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> AgentRecord:
    """Move `agent` (read under lock in `conn`) to `target` and write its event; IllegalTransition if not allowed."""
    wanted = check_transition(agent.id, agent.state, target)
    now = datetime.now(UTC)
    values: dict[str, Any] = {"state": wanted.value, "state_changed_at": now, **(extra or {})}
    if wanted in (AgentState.FAILED, AgentState.TERMINATED) or reason:
        values["state_reason"] = reason[:4000]
    elif wanted is AgentState.READY:
        values["state_reason"] = ""
    conn.execute(update(agents_table).where(agents_table.c.id == agent.id).values(**values))
    data: dict[str, Any] = {
        "agent_id": agent.id,
        "agent_name": agent.name,
        "from_state": agent.state.value,
        "to_state": wanted.value,
        "trigger": trigger,
        "check": CHECKS.get(
            (agent.state, wanted), "cleanup triggered" if wanted is AgentState.TERMINATED else ""
        ),
    }
    if reason and wanted in (AgentState.FAILED, AgentState.TERMINATED):
        data["error" if wanted is AgentState.FAILED else "reason"] = reason
    if step_id:
        data.update(step_id=step_id, node_id=node_id)
    if user_id:
        data["user_id"] = user_id
    events.emit(conn, AGENT_TRANSITIONED, run_id, **data)
    changed = {k: v for k, v in values.items() if k in AgentRecord.__dataclass_fields__}
    return AgentRecord(**{**agent.__dict__, **changed, "state": wanted})


def _live_steps(conn: Connection, step_ids: list[str]) -> list[str]:
    """Those of `step_ids` whose step row is still queued or running."""
    ids = [i for i in (parse_id(s) for s in step_ids) if i is not None]
    if not ids:
        return []
    rows = conn.execute(select(_steps.c.id).where(_steps.c.id.in_(ids), _steps.c.status.in_(_LIVE_STEP)))
    live = {str(r.id) for r in rows}
    return [s for s in step_ids if s in live]


def _set_active(conn: Connection, agent: AgentRecord, active: list[str]) -> AgentRecord:
    conn.execute(update(agents_table).where(agents_table.c.id == agent.id).values(active_steps=active))
    return AgentRecord(**{**agent.__dict__, "active_steps": active})


def begin_execution(agent_id: str, *, run_id: str, step_id: str, node_id: str) -> AgentRecord:
    """Count step `step_id` as executing the agent (READY -> EXECUTING for the first one).

    AGENT_NOT_READY when the agent is in any other state; AGENT_NOT_FOUND when it does not exist.
    A retried attempt of the same step counts once.
    """
    with db().begin() as conn:
        agent = read(conn, agent_id, lock=True)
        if agent is None:
            raise not_found(agent_id)
        if not agent.available:
            hint = (
                "validate it on the Agents page"
                if agent.state is not AgentState.TERMINATED
                else "it was terminated"
            )
            raise FlowloomError(
                f"agent {agent.name} ({agent.id}) is {agent.state.value}, not READY; {hint}"
                + (f" ({agent.state_reason})" if agent.state_reason else ""),
                code=ErrorCode.AGENT_NOT_READY, field="agent_id",
            )  # fmt: skip
        active = [s for s in _live_steps(conn, agent.active_steps) if s != step_id]
        if agent.state is AgentState.EXECUTING and not active:
            # Every earlier execution ended without saying so: finish that pass first.
            agent = transition(conn, agent, AgentState.COMPLETED, trigger="executions ended", run_id=run_id)
            agent = transition(conn, agent, AgentState.READY, trigger="ready for next task", run_id=run_id)
        agent = _set_active(conn, agent, [*active, step_id])
        if agent.state is AgentState.READY:
            agent = transition(conn, agent, AgentState.EXECUTING, trigger="agent.execute()", run_id=run_id,
                               step_id=step_id, node_id=node_id)  # fmt: skip
        return agent


def end_execution(
    agent_id: str, *, run_id: str, step_id: str, node_id: str, error: str = ""
) -> AgentRecord | None:
    """Step `step_id` stopped executing the agent; the last one out moves it to COMPLETED (or FAILED, with
    `error`) and back to READY. None when the agent is gone."""
    with db().begin() as conn:
        agent = read(conn, agent_id, lock=True)
        if agent is None:
            return None
        active = [s for s in _live_steps(conn, agent.active_steps) if s != step_id]
        agent = _set_active(conn, agent, active)
        if active or agent.state is not AgentState.EXECUTING:
            return agent  # others still executing it, or it was terminated meanwhile
        where: dict[str, Any] = {"run_id": run_id, "step_id": step_id, "node_id": node_id}
        if error:
            agent = transition(
                conn, agent, AgentState.FAILED, trigger="execution error", reason=error, **where
            )
            return transition(conn, agent, AgentState.READY, trigger="recovery complete", **where)
        agent = transition(conn, agent, AgentState.COMPLETED, trigger="execution success", **where)
        return transition(conn, agent, AgentState.READY, trigger="ready for next task", **where)


def with_capability(
    capability: str, *, database_url: str | None = None, workspace_id: str | uuid.UUID | None = None
) -> list[AgentRecord]:
    """Saved agents of workspace `workspace_id` (a run's; None: the default one) that declare
    `capability` and can take work: READY first, then the least busy, oldest first."""
    query = select(agents_table).where(
        agents_table.c.state.in_([s.value for s in AVAILABLE]),
        agents_table.c.capabilities.contains([capability]),
        agents_table.c.workspace_id == workspace_key(workspace_id),
    )
    with db(database_url).connect() as conn:
        found = [record_of(r) for r in conn.execute(query)]
    found.sort(key=lambda a: (a.state is not AgentState.READY, len(a.active_steps), a.created_at or _EPOCH))
    return found

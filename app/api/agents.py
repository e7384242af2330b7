"""/api/agents: saved agents (the Agent Manager): list, create, read, edit, validate to READY, terminate.

Viewers read; editors change. Creating or editing an agent validates it straight away (its
lifecycle runs CREATED -> INITIALIZING -> VALIDATING -> VALIDATED -> READY, or stops at FAILED
with the check that failed), unless `validate=false` is asked for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from app.api.callers import client_ip, requires
from app.auth.policy import Role
from app.auth.principal import Principal
from engine import agent_sessions, agents, audit
from engine.agent_lifecycle import AgentState
from engine.agent_sessions import MemoryPolicy
from engine.agent_store import AgentRecord
from engine.agents import AgentSpec, Pricing
from engine.contract import agent_runtime

router = APIRouter(tags=["agents"])
Viewer = Annotated[Principal, Depends(requires(Role.VIEWER))]
Editor = Annotated[Principal, Depends(requires(Role.EDITOR))]


class AgentUpdate(BaseModel):
    """The fields to change; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    config: dict[str, Any] | None = None
    guardrails: dict[str, Any] | None = None
    capabilities: list[str] | None = Field(None, max_length=50)
    memory: MemoryPolicy | None = None
    pricing: Pricing | None = None


class AgentPublic(BaseModel):
    """A saved agent, its lifecycle state and the result of its last validation."""

    id: str = Field(description="AGENT-YYYYMMDD-HHMMSS-NNNN-XXXX")
    name: str
    description: str
    state: str
    state_reason: str
    config: dict[str, Any]
    guardrails: dict[str, Any]
    capabilities: list[str]
    memory: dict[str, Any]
    pricing: dict[str, Any]
    checks: list[dict[str, Any]]
    active_executions: int
    memory_size: dict[str, int] = Field(description="sessions, messages and characters kept")
    recent_executions: list[agents.Execution]
    created_by: str
    created_at: datetime | None
    updated_at: datetime | None
    state_changed_at: datetime | None


class CapabilityPublic(BaseModel):
    name: str
    description: str
    agents: list[dict[str, str]]


def _public(agent: AgentRecord, size: dict[str, int] | None, runs: list[agents.Execution]) -> AgentPublic:
    return AgentPublic(
        id=agent.id, name=agent.name, description=agent.description, state=agent.state.value,
        state_reason=agent.state_reason, config=agent.config, guardrails=agent.guardrails,
        capabilities=agent.capabilities, memory=agent.memory, pricing=agent.pricing, checks=agent.checks,
        active_executions=len(agent.active_steps),
        memory_size=size or {"sessions": 0, "messages": 0, "chars": 0},
        recent_executions=runs, created_by=agent.created_by,
        created_at=agent.created_at, updated_at=agent.updated_at, state_changed_at=agent.state_changed_at,
    )  # fmt: skip


def _described(found: list[AgentRecord]) -> list[AgentPublic]:
    ids = [a.id for a in found]
    sizes, runs = agent_sessions.sizes(ids), agents.recent_executions(ids)
    return [_public(a, sizes.get(a.id), runs.get(a.id, [])) for a in found]


def _one(agent: AgentRecord) -> AgentPublic:
    return _described([agent])[0]


def _actor(principal: Principal) -> str:
    return f"user:{principal.user_id}"


def _mine(agent_id: str, principal: Principal) -> AgentRecord:
    """The agent of the caller's workspace; another workspace's answers like an unknown id."""
    return agents.get(agent_id, workspace_id=principal.workspace_id)


def _audit(principal: Principal, request: Request, action: str, agent: AgentRecord, **details: Any) -> None:
    audit.record_now(actor=principal.actor, action=action, target_type="agent", target_id=agent.id,
                     details={"name": agent.name, "state": agent.state.value, **details}, ip=client_ip(request))  # fmt: skip


@router.get("/agents", response_model=list[AgentPublic])
def list_agents(principal: Viewer, state: str | None = None) -> list[AgentPublic]:
    """Saved agents by name, with state, capabilities, memory size and recent executions."""
    return _described(agents.list_agents(state=state, workspace_id=principal.workspace_id))


@router.get("/agents/capabilities", response_model=list[CapabilityPublic])
def list_capabilities(principal: Viewer) -> list[CapabilityPublic]:
    """The capabilities registry: each capability and the saved agents that have it."""
    return [
        CapabilityPublic(name=c.name, description=c.description, agents=c.agents)
        for c in agents.capability_registry(workspace_id=principal.workspace_id)
    ]


@router.get("/agents/schema")
def agent_schema(principal: Viewer) -> dict[str, Any]:
    """The JSON schema of a saved agent's config (the agent node's fields that make the agent)."""
    return agent_runtime().agent_schema()


@router.post("/agents", response_model=AgentPublic, status_code=201)
async def create_agent(
    spec: AgentSpec, principal: Editor, request: Request, validate: bool = Query(True)
) -> AgentPublic:
    """Register an agent (CREATED) and, unless `validate=false`, take it through its checks to READY."""
    agent = await run_in_threadpool(
        agents.create, spec, actor=_actor(principal), owner_id=principal.user_id,
        workspace_id=principal.workspace_id,
    )  # fmt: skip
    if validate:
        agent = await run_in_threadpool(agents.prepare, agent.id, actor=_actor(principal))
    _audit(principal, request, "agent.create", agent)
    return await run_in_threadpool(_one, agent)


@router.get("/agents/{agent_id}", response_model=AgentPublic)
def read_agent(agent_id: str, principal: Viewer) -> AgentPublic:
    """One saved agent."""
    return _one(_mine(agent_id, principal))


@router.patch("/agents/{agent_id}", response_model=AgentPublic)
async def update_agent(
    agent_id: str, changes: AgentUpdate, principal: Editor, request: Request, validate: bool = Query(True)
) -> AgentPublic:
    """Change an agent that is not executing or terminated; a READY or FAILED one is validated again,
    a CREATED one too unless `validate=false`."""
    fields = changes.model_dump(exclude_unset=True)
    await run_in_threadpool(_mine, agent_id, principal)
    agent = await run_in_threadpool(agents.update, agent_id, fields, actor=_actor(principal))
    if validate and agent.state is AgentState.CREATED:  # a validated one was validated again by update
        agent = await run_in_threadpool(agents.prepare, agent.id, actor=_actor(principal))
    _audit(principal, request, "agent.update", agent, fields=sorted(fields))
    return await run_in_threadpool(_one, agent)


@router.post("/agents/{agent_id}/validate", response_model=AgentPublic)
async def validate_agent(agent_id: str, principal: Editor, request: Request) -> AgentPublic:
    """Run the lifecycle's checks again: READY when they pass, FAILED (with the failed check) when not."""
    await run_in_threadpool(_mine, agent_id, principal)
    agent = await run_in_threadpool(agents.prepare, agent_id, actor=_actor(principal))
    _audit(principal, request, "agent.validate", agent)
    return await run_in_threadpool(_one, agent)


class TerminateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


@router.post("/agents/{agent_id}/terminate", response_model=AgentPublic)
async def terminate_agent(
    agent_id: str, principal: Editor, request: Request, body: TerminateBody | None = None
) -> AgentPublic:
    """Stop the agent for good: running executions finish, nodes naming it fail from now on."""
    reason = body.reason if body else ""
    await run_in_threadpool(_mine, agent_id, principal)
    agent = await run_in_threadpool(agents.terminate, agent_id, actor=_actor(principal), reason=reason)
    _audit(principal, request, "agent.terminate", agent)
    return await run_in_threadpool(_one, agent)

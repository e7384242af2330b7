"""The Agent Manager: saved agents people create, validate, edit and terminate, and what they did.

A saved agent starts CREATED; `prepare` takes it through the design's checks, one transition
each, and stops at the first that fails (-> FAILED, with the reason and every check's result):

- INITIALIZING: config validation (the agent family's config model, capability names, memory
  policy and prices);
- INITIALIZING -> VALIDATING: resource check (a local model folder is on disk, the node types
  the config needs are installed);
- VALIDATING -> VALIDATED: dependencies and permissions (the API key secret exists, may be used
  by agent nodes and sent to the provider's URL; a public provider API has a key at all);
- VALIDATED -> READY.

Editing a READY, FAILED or CREATED agent stores the change and validates again; an EXECUTING one
waits for its executions; a TERMINATED one is final. Capabilities: those declared plus those the
config implies. Executions (READY -> EXECUTING -> ...) are driven by agent nodes through the
contract (engine/contract/saved_agents.py) and read back here from their steps' metrics.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, func, select
from sqlalchemy import update as sql_update

from engine import agent_sessions, agent_store, guardrails, secret_policy, secrets
from engine.agent_lifecycle import CAPABILITY_DESCRIPTIONS, AgentState, check_name, new_agent_id
from engine.agent_sessions import MemoryPolicy
from engine.agent_store import AgentRecord, agents_table, not_found, read, transition
from engine.contract import AgentRequirement, agent_runtime, get_node_type, local_models
from engine.definition import WorkflowDefinition
from engine.errors import ErrorCode, FlowloomError, Issue
from engine.events import AGENT_TRANSITIONED, emit
from models.core_tables import table_of
from models.tables import StepRun

_steps = table_of(StepRun)
EDITABLE_STATES = frozenset({AgentState.CREATED, AgentState.READY, AgentState.FAILED})


class Pricing(BaseModel):
    """What the provider charges, for the cost of each execution (USD per million tokens)."""

    model_config = ConfigDict(extra="forbid")

    input_per_1m: float = Field(0, ge=0, le=10_000)
    output_per_1m: float = Field(0, ge=0, le=10_000)


class AgentSpec(BaseModel):
    """A saved agent as people write it (create, or update with the fields that change)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    config: dict[str, Any] = Field(
        description="the agent node's fields: provider, model, system_prompt, tools, ..."
    )
    guardrails: dict[str, Any] = Field(default_factory=dict, description="enforced by the guardrails engine")
    capabilities: list[str] = Field(default_factory=list, max_length=50)
    memory: MemoryPolicy | None = Field(None, description="sessions across runs; null = none")
    pricing: Pricing | None = None


@dataclass(frozen=True)
class Check:
    """One check of a validation: which, whether it passed, and the field it is about."""

    check: str  # config | resources | dependencies | permissions
    ok: bool
    message: str
    field: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "field": self.field, "message": self.message}


@dataclass
class Execution:
    """One step that executed a saved agent, from its metrics."""

    run_id: str
    step_id: str
    node_id: str
    status: str
    finished_at: datetime | None
    latency_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    error: str = ""


@dataclass
class CapabilityEntry:
    """A capability of the registry and the saved agents that declare it."""

    name: str
    description: str
    agents: list[dict[str, str]] = field(default_factory=list)  # {id, name, state}


def _now() -> datetime:
    return datetime.now(UTC)


def _capabilities(declared: list[str], config: Mapping[str, Any]) -> list[str]:
    """Declared capabilities with those the config implies, in a stable order."""
    try:
        implied = agent_runtime().capabilities(config)
    except Exception:  # an invalid config implies nothing; its check says why
        implied = []
    return list(dict.fromkeys([*implied, *declared]))


def _user_of(actor: str) -> str | None:
    return actor.split(":", 1)[1] if actor.startswith("user:") else None


def create(
    spec: AgentSpec, *, actor: str, owner_id: Any = None, workspace_id: str | uuid.UUID | None = None
) -> AgentRecord:
    """Register a new agent in workspace `workspace_id` (None: the default one; CREATED, with an id
    in the design's format); `prepare` validates it."""
    now, agent_id = _now(), new_agent_id()
    values = {
        "id": agent_id, "name": spec.name.strip(), "description": spec.description, "config": spec.config,
        "guardrails": spec.guardrails, "capabilities": _capabilities(spec.capabilities, spec.config),
        "memory": spec.memory.model_dump() if spec.memory else {},
        "pricing": spec.pricing.model_dump() if spec.pricing else {}, "state": AgentState.CREATED.value,
        "state_reason": "", "checks": [], "active_steps": [], "owner_id": owner_id, "created_by": actor,
        "created_at": now, "updated_at": now, "state_changed_at": now,
        "workspace_id": agent_store.workspace_key(workspace_id),
    }  # fmt: skip
    with agent_store.db().begin() as conn:
        conn.execute(agents_table.insert().values(**values))
        emit(conn, AGENT_TRANSITIONED, None, agent_id=agent_id, agent_name=values["name"], from_state=None,
             to_state=AgentState.CREATED.value, trigger="registered", check="id assigned, config set",
             **({"user_id": _user_of(actor)} if _user_of(actor) else {}))  # fmt: skip
        found = read(conn, agent_id)
    assert found is not None
    return found


def update(agent_id: str, changes: Mapping[str, Any], *, actor: str) -> AgentRecord:
    """Store `changes` (fields of AgentSpec) to an agent that is not executing or terminated; one that
    was validated before (READY, FAILED) is validated again at once."""
    with agent_store.db().begin() as conn:
        agent = read(conn, agent_id, lock=True)
        if agent is None:
            raise not_found(agent_id)
        if agent.state not in EDITABLE_STATES:
            raise FlowloomError(
                f"agent {agent.name} is {agent.state.value}; "
                + ("a terminated agent cannot change" if agent.state is AgentState.TERMINATED
                   else "change it once its executions have ended"),
                code=ErrorCode.AGENT_NOT_READY, field="state",
            )  # fmt: skip
        merged = AgentSpec.model_validate(
            {"name": agent.name, "description": agent.description, "config": agent.config,
             "guardrails": agent.guardrails, "capabilities": agent.capabilities,
             "memory": agent.memory or None, "pricing": agent.pricing or None, **dict(changes)}
        )  # fmt: skip
        conn.execute(
            sql_update(agents_table).where(agents_table.c.id == agent.id).values(
                name=merged.name.strip(), description=merged.description, config=merged.config,
                guardrails=merged.guardrails, capabilities=_capabilities(merged.capabilities, merged.config),
                memory=merged.memory.model_dump() if merged.memory else {},
                pricing=merged.pricing.model_dump() if merged.pricing else {}, updated_at=_now(),
            )
        )  # fmt: skip
        found = read(conn, agent.id)
    assert found is not None
    # A validated agent is never left READY (or FAILED) with a config its checks have not seen.
    return found if found.state is AgentState.CREATED else prepare(found.id, actor=actor)


def _config_checks(agent: AgentRecord) -> list[Check]:
    checks = [Check("config", False, msg, f"config.{where}" if where else "config")
              for where, msg in agent_runtime().config_problems(agent.config)]  # fmt: skip
    for name in agent.capabilities:
        try:
            check_name(name)
        except ValueError as exc:
            checks.append(Check("config", False, str(exc), "capabilities"))
    try:
        agent_sessions.policy_of(agent.memory)
    except pydantic.ValidationError as exc:
        checks.append(Check("config", False, f"not a memory policy: {exc.errors()[0]['msg']}", "memory"))
    try:  # the guardrails engine's own model (engine/guardrails.py)
        guardrails.parse(agent.guardrails)
    except guardrails.GuardrailsInvalid as exc:
        checks.append(Check("config", False, exc.message, f"guardrails.{exc.field}".rstrip(".")))
    return checks or [Check("config", True, "the config is valid")]


def _local_model_names() -> set[str]:
    return {m.name for m in local_models().list_models()}


def _resource_checks(needs: list[AgentRequirement]) -> list[Check]:
    checks = []
    for need in needs:
        if need.kind == "model_folder":
            try:
                present = need.name in _local_model_names()
                message = (
                    f"model folder {need.name!r} is on disk"
                    if present
                    else (
                        f"no model folder {need.name!r} in the models directory; convert or copy it (Models page)"
                    )
                )
            except FlowloomError as exc:
                present, message = False, f"cannot list local models: {str(exc)}"
            checks.append(Check("resources", present, message, f"config.{need.field}"))
        elif need.kind == "node_type":
            present = get_node_type(need.name) is not None
            message = (
                f"node type {need.name} is installed"
                if present
                else f"node type {need.name} is not installed"
            )
            checks.append(Check("resources", present, message, f"config.{need.field}"))
    return checks or [Check("resources", True, "nothing to load")]


def _secret_checks(needs: list[AgentRequirement], workspace_id: str) -> list[Check]:
    checks = []
    for need in (n for n in needs if n.kind == "secret"):
        where = f"config.{need.field}"
        host = secret_policy.display_host(need.destination) if need.destination else "its provider"
        if not need.name:
            checks.append(
                Check(
                    "dependencies", False, f"{host} needs an API key; name a secret in api_key_secret", where
                )
            )
            continue
        info = _secret_info(need.name, workspace_id)
        if info is None:
            checks.append(
                Check(
                    "dependencies",
                    False,
                    f'secret "{need.name}" is not set; add it on the Secrets page',
                    where,
                )
            )
            continue
        checks.append(Check("dependencies", True, f'secret "{need.name}" is set', where))
        if info.allowed_node_types and "agent" not in info.allowed_node_types:
            checks.append(Check("permissions", False, f'secret "{need.name}" may not be used by agent nodes; allowed: '
                                f"{', '.join(info.allowed_node_types)}", where))  # fmt: skip
        elif need.destination and not secret_policy.destination_allowed(
            need.destination, info.allowed_destinations
        ):
            allowed = ", ".join(info.allowed_destinations) or "no destination"
            checks.append(
                Check(
                    "permissions",
                    False,
                    f'secret "{need.name}" may not be sent to {host}; allowed: {allowed}',
                    where,
                )
            )
        else:
            checks.append(Check("permissions", True, f'secret "{need.name}" may be sent to {host}', where))
    return checks or [Check("dependencies", True, "no secret needed")]


def _secret_info(name: str, workspace_id: str) -> secrets.SecretInfo | None:
    # The agent's own workspace's secret: the one its runs will read.
    try:
        found = secrets.get_info(name, workspace_id=workspace_id or None)
    except FlowloomError:
        return None
    return found or next((s for s in secrets.list_env_secrets() if s.name == name), None)


def _fail(conn: Connection, agent: AgentRecord, checks: list[Check], actor: str) -> AgentRecord:
    failed = [c for c in checks if not c.ok]
    reason = "; ".join(f"{c.field}: {c.message}" for c in failed)
    return transition(conn, agent, AgentState.FAILED, trigger="check failed", reason=reason, user_id=_user_of(actor),
                      extra={"checks": [c.as_dict() for c in checks]})  # fmt: skip


def prepare(agent_id: str, *, actor: str) -> AgentRecord:
    """Validate the agent through INITIALIZING, VALIDATING and VALIDATED to READY, or stop at FAILED.

    AGENT_TRANSITION_INVALID from EXECUTING or TERMINATED; AGENT_NOT_FOUND for an unknown id.
    """
    user = _user_of(actor)
    with agent_store.db().begin() as conn:
        agent = read(conn, agent_id, lock=True)
        if agent is None:
            raise not_found(agent_id)
        agent = transition(conn, agent, AgentState.INITIALIZING, trigger="agent.initialize()", user_id=user)
        checks = _config_checks(agent)
        if not all(c.ok for c in checks):
            return _fail(conn, agent, checks, actor)
        needs = agent_runtime().requirements(agent.config)
        checks += _resource_checks(needs)
        if not all(c.ok for c in checks):
            return _fail(conn, agent, checks, actor)
        agent = transition(
            conn, agent, AgentState.VALIDATING, trigger="initialization complete", user_id=user
        )
        checks += _secret_checks(needs, agent.workspace_id)
        if not all(c.ok for c in checks):
            return _fail(conn, agent, checks, actor)
        agent = transition(conn, agent, AgentState.VALIDATED, trigger="all checks pass", user_id=user,
                           extra={"checks": [c.as_dict() for c in checks]})  # fmt: skip
        return transition(conn, agent, AgentState.READY, trigger="validation complete", user_id=user)


def terminate(agent_id: str, *, actor: str, reason: str = "") -> AgentRecord:
    """Stop the agent for good (from any state); running executions finish, no new one starts."""
    with agent_store.db().begin() as conn:
        agent = read(conn, agent_id, lock=True)
        if agent is None:
            raise not_found(agent_id)
        return transition(conn, agent, AgentState.TERMINATED, trigger="agent.terminate()",
                          reason=reason or f"terminated by {actor}", user_id=_user_of(actor))  # fmt: skip


def get(agent_id: str, *, workspace_id: str | uuid.UUID | None = None) -> AgentRecord:
    """The saved agent; AGENT_NOT_FOUND when there is none (in `workspace_id`, when given: an agent
    of another workspace answers like an unknown id)."""
    found = agent_store.get(agent_id, workspace_id=workspace_id)
    if found is None:
        raise not_found(agent_id)
    return found


def list_agents(
    *, state: str | None = None, limit: int = 200, workspace_id: str | uuid.UUID | None = None
) -> list[AgentRecord]:
    """Saved agents by name (of one state, and of one workspace, when given)."""
    query = select(agents_table)
    if workspace_id is not None:
        query = query.where(agents_table.c.workspace_id == agent_store.workspace_key(workspace_id))
    if state:
        query = query.where(agents_table.c.state == state)
    with agent_store.db().connect() as conn:
        rows = conn.execute(query.order_by(agents_table.c.name, agents_table.c.id).limit(limit)).all()
    return [agent_store.record_of(r) for r in rows]


def recent_executions(agent_ids: list[str], *, per_agent: int = 5) -> dict[str, list[Execution]]:
    """The last steps that executed each agent, newest first, with latency, tokens and cost from their metrics."""
    out: dict[str, list[Execution]] = {a: [] for a in agent_ids}
    if not agent_ids:
        return out
    agent_of = _steps.c.metrics["agent_id"].astext
    newest = func.row_number().over(partition_by=agent_of, order_by=_steps.c.finished_at.desc())
    ranked = (
        select(_steps.c.id, _steps.c.run_id, _steps.c.node_id, _steps.c.status, _steps.c.finished_at,
               _steps.c.metrics, _steps.c.error, agent_of.label("agent_id"), newest.label("n"))
        .where(agent_of.in_(agent_ids), _steps.c.finished_at.is_not(None))
        .subquery()
    )  # fmt: skip
    query = select(ranked).where(ranked.c.n <= per_agent).order_by(ranked.c.agent_id, ranked.c.n)
    with agent_store.db().connect() as conn:
        for r in conn.execute(query):
            m = r.metrics or {}
            out[r.agent_id].append(Execution(
                str(r.run_id), str(r.id), r.node_id, r.status, r.finished_at, m.get("duration_ms"),
                int(m.get("input_tokens") or 0), int(m.get("output_tokens") or 0), m.get("cost_usd"),
                r.error or "",
            ))  # fmt: skip
    return out


def capability_registry(*, workspace_id: str | uuid.UUID | None = None) -> list[CapabilityEntry]:
    """Every capability known (the design's and those agents declare) with the agents (of workspace
    `workspace_id`, when given) that have it."""
    entries = {name: CapabilityEntry(str(name), text) for name, text in CAPABILITY_DESCRIPTIONS.items()}
    for agent in list_agents(workspace_id=workspace_id):
        for name in agent.capabilities:
            entry = entries.setdefault(name, CapabilityEntry(name, "declared by an agent"))
            entry.agents.append({"id": agent.id, "name": agent.name, "state": agent.state.value})
    return list(entries.values())


def agent_issues(defn: WorkflowDefinition, *, workspace_id: str | uuid.UUID | None = None) -> list[Issue]:
    """Agent nodes whose saved agent is missing (in workspace `workspace_id`, when given) or
    terminated, or whose capability no READY agent of the workspace has."""
    refs = [(node, ref) for node in defn.nodes if (ref := _agent_ref(node.type, node.config)) is not None]
    if not refs:
        return []
    issues: list[Issue] = []
    try:
        for node, (kind, value) in refs:
            issues += _ref_issues(node.id, kind, value, workspace_id)
    except FlowloomError as exc:
        if exc.code is not ErrorCode.DATABASE_UNAVAILABLE:
            raise
        issues.append(Issue(f"saved agents could not be checked: {str(exc)}", code=ErrorCode.INVALID,
                            node_id=refs[0][0].id, severity="warning"))  # fmt: skip
    return issues


def _agent_ref(type_name: str, config: Mapping[str, Any]) -> tuple[str, str] | None:
    node_type = get_node_type(type_name)
    return None if node_type is None else node_type.agent_used(config)


def _ref_issues(node_id: str, kind: str, value: str, workspace_id: str | uuid.UUID | None) -> list[Issue]:
    if "{{" in value:
        return []  # a template: found when the step runs
    if kind == "agent_id":
        agent = _lookup(lambda v: agent_store.get(v, workspace_id=workspace_id), value)
        if agent is None:
            return [Issue(f"no saved agent {value}; pick one on the Agents page", code=ErrorCode.AGENT_NOT_FOUND,
                          node_id=node_id, field="agent_id")]  # fmt: skip
        if agent.state is AgentState.TERMINATED:
            return [Issue(f"agent {agent.name} ({value}) is terminated", code=ErrorCode.AGENT_NOT_READY,
                          node_id=node_id, field="agent_id")]  # fmt: skip
        if not agent.available:
            return [Issue(f"agent {agent.name} ({value}) is {agent.state.value}, not READY; validate it on the "
                          "Agents page before the run", code=ErrorCode.AGENT_NOT_READY, node_id=node_id,
                          field="agent_id", severity="warning")]  # fmt: skip
        return []
    if not _lookup(lambda v: agent_store.with_capability(v, workspace_id=workspace_id), value):
        return [Issue(f"no READY saved agent has capability {value}; add it to an agent and validate that agent",
                      code=ErrorCode.NO_CAPABLE_AGENT, node_id=node_id, field="capability")]  # fmt: skip
    return []


def _lookup(fn: Any, value: str) -> Any:
    try:
        return fn(value)
    except FlowloomError:
        raise
    except Exception as exc:  # no database reachable
        raise FlowloomError(str(exc), code=ErrorCode.DATABASE_UNAVAILABLE) from exc

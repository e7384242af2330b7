"""State of the Agents page: saved agents with state, capabilities, memory and recent executions;
create, edit (the schema-driven config form), validate and terminate them.

The config form is the agent node's own schema without its task fields (prompt, session, ...),
as the agent family gives it to the manager (engine.contract.agent_runtime); saving stores the
agent and takes it through the lifecycle's checks, so the table shows READY or the failed check.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic
import reflex as rx
from reflex.event import EventSpec

from app.auth.guard import caller_of, requires
from app.pages.formatting import format_time
from app.pages.workspace_scope import current_workspace
from components.config_form import UNSET, FormField, InputError, build_fields, parse_input, resolve
from engine import agent_sessions, agents, audit
from engine.agent_store import AgentRecord
from engine.contract import agent_runtime
from engine.errors import user_message
from engine.roles import Role, at_least

log = logging.getLogger(__name__)
POLICIES = ["none", "truncate", "summarise"]
NEW_CONFIG: dict[str, Any] = {"provider": "openai", "model": ""}


@dataclass
class AgentRow:
    """One saved agent as the table shows it."""

    id: str
    name: str
    state: str
    color: str
    reason: str
    capabilities: list[str]
    memory: str
    executions: str
    last: str


_COLORS = {"READY": "green", "EXECUTING": "blue", "FAILED": "red", "TERMINATED": "gray"}


def _last(runs: list[agents.Execution]) -> str:
    if not runs:
        return "no runs yet"
    e = runs[0]
    cost = f" · ${e.cost_usd:.6f}" if e.cost_usd is not None else ""
    latency = f"{e.latency_ms:.0f} ms" if e.latency_ms is not None else "—"
    return f"{e.status} · {latency} · {e.input_tokens + e.output_tokens} tokens{cost} · {format_time(e.finished_at)}"


def _executions(runs: list[agents.Execution]) -> str:
    if not runs:
        return "—"
    latencies = [e.latency_ms for e in runs if e.latency_ms is not None]
    tokens = sum(e.input_tokens + e.output_tokens for e in runs)
    costs = [e.cost_usd for e in runs if e.cost_usd is not None]
    avg = f"avg {sum(latencies) / len(latencies):.0f} ms" if latencies else "—"
    cost = f" · ${sum(costs):.6f}" if costs else ""
    return f"{len(runs)} recent · {avg} · {tokens} tokens{cost}"


def agent_rows(found: list[AgentRecord]) -> list[AgentRow]:
    """The table's rows: state, capabilities, memory size and the recent executions of each agent."""
    ids = [a.id for a in found]
    sizes, runs = agent_sessions.sizes(ids), agents.recent_executions(ids)
    rows = []
    for a in found:
        size = sizes.get(a.id, {"sessions": 0, "messages": 0, "chars": 0})
        memory = (
            f"{size['sessions']} sessions · {size['messages']} messages · {size['chars']} chars"
            if a.memory else "no sessions"
        )  # fmt: skip
        mine = runs.get(a.id, [])
        rows.append(AgentRow(a.id, a.name, a.state.value, _COLORS.get(a.state.value, "amber"), a.state_reason,
                             list(a.capabilities), memory, _executions(mine), _last(mine)))  # fmt: skip
    return rows


def _audit(principal: Any, action: str, agent: AgentRecord) -> None:
    """The same audit entry as the API's, in a transaction of its own."""
    try:
        audit.record_now(actor=principal.actor if principal else "unknown", action=action, target_type="agent",
                         target_id=agent.id, details={"name": agent.name, "state": agent.state.value})  # fmt: skip
    except Exception:  # the change is made; a lost audit line is logged, not shown
        log.warning("could not audit %s of agent %s", action, agent.id, exc_info=True)


def _actor(principal: Any) -> str:
    return f"user:{principal.user_id}" if principal else "user:unknown"


class AgentsState(rx.State):
    """The agents table and the create / edit form."""

    rows: list[AgentRow] = []
    loaded: bool = False
    error: str = ""
    can_edit: bool = False
    form_open: bool = False
    editing_id: str = ""
    name: str = ""
    description: str = ""
    capabilities_text: str = ""
    memory_policy: str = "none"
    memory_turns: str = "20"
    guardrails_text: str = "{}"
    price_in: str = ""
    price_out: str = ""
    form_error: str = ""
    _config: dict[str, Any] = {}
    _drafts: dict[str, dict[str, str]] = {}
    _schema: dict[str, Any] = {}

    def _workspace(self) -> str:
        return current_workspace(self)

    def _refresh(self) -> None:
        try:
            self.rows, self.error = agent_rows(agents.list_agents(workspace_id=self._workspace())), ""
        except Exception as exc:  # the database is away: say so, keep the page
            log.warning("listing agents failed: %s", exc)
            self.rows, self.error = [], f"Cannot list the agents: {user_message(exc)}"
        self.loaded = True

    @rx.event
    @requires(Role.VIEWER)
    def load(self) -> None:
        """List the saved agents (on page load)."""
        principal = caller_of(self)
        self.can_edit = principal is not None and at_least(principal.role, Role.EDITOR)
        self._refresh()

    @rx.var(deps=["_config", "_drafts", "_schema"], auto_deps=False)
    def config_fields(self) -> list[FormField]:
        """The agent config form (the agent node's schema without its task fields)."""
        if not self._schema:
            return []
        errors = {name: d["error"] for name, d in self._drafts.items() if d.get("error")}
        return build_fields(
            self._schema, self._config, errors, {k: v["text"] for k, v in self._drafts.items()}
        )

    def _open(self, agent: AgentRecord | None) -> None:
        self._schema = agent_runtime().agent_schema()
        self.editing_id = agent.id if agent else ""
        self.name = agent.name if agent else ""
        self.description = agent.description if agent else ""
        self.capabilities_text = ", ".join(agent.capabilities) if agent else ""
        memory = agent.memory if agent else {}
        self.memory_policy = str(memory.get("policy", "none")) if memory else "none"
        self.memory_turns = str(memory.get("max_turns", 20)) if memory else "20"
        self.guardrails_text = json.dumps(agent.guardrails if agent else {}, indent=2)
        pricing = agent.pricing if agent else {}
        self.price_in = str(pricing.get("input_per_1m", "")) if pricing else ""
        self.price_out = str(pricing.get("output_per_1m", "")) if pricing else ""
        self._config = dict(agent.config if agent else NEW_CONFIG)
        self._drafts, self.form_error, self.form_open = {}, "", True

    @rx.event
    @requires(Role.EDITOR)
    def new_agent(self) -> None:
        self._open(None)

    @rx.event
    @requires(Role.EDITOR)
    def edit_agent(self, agent_id: str) -> None:
        try:
            self._open(agents.get(agent_id, workspace_id=self._workspace()))
        except Exception as exc:  # gone meanwhile
            self.error = user_message(exc)

    @rx.event
    @requires(Role.EDITOR)
    def close_form(self) -> None:
        self.form_open = False

    @rx.event
    @requires(Role.EDITOR)
    def set_form_value(self, name: str, value: str) -> None:
        """A field of the agent's own part of the form (name, capabilities, memory, prices, guardrails)."""
        if name in ("name", "description", "capabilities_text", "memory_turns", "guardrails_text",
                    "price_in", "price_out"):  # fmt: skip
            setattr(self, name, value)
        elif name == "memory_policy" and value in POLICIES:
            self.memory_policy = value

    @rx.event
    @requires(Role.EDITOR)
    def set_field(self, name: str, text: str) -> None:
        """A config field typed into."""
        prop = resolve(self._schema.get("properties", {}).get(name, {}), self._schema.get("$defs", {}))
        try:
            value = parse_input(prop, text)
        except InputError as exc:
            self._drafts = {**self._drafts, name: {"text": text, "error": str(exc)}}
            return
        self._drafts = {k: v for k, v in self._drafts.items() if k != name}
        config = {k: v for k, v in self._config.items() if k != name}
        if value is not UNSET:
            config[name] = value
        self._config = config

    @rx.event
    @requires(Role.EDITOR)
    def set_flag(self, name: str, on: bool) -> None:
        self._config = {**self._config, name: bool(on)}

    def _spec_fields(self) -> dict[str, Any]:
        memory = None
        if self.memory_policy != "none":
            memory = {"policy": self.memory_policy, "max_turns": int(self.memory_turns or 20)}
        pricing = None
        if self.price_in.strip() or self.price_out.strip():
            pricing = {"input_per_1m": float(self.price_in or 0), "output_per_1m": float(self.price_out or 0)}
        caps = [c.strip().upper() for c in self.capabilities_text.replace("\n", ",").split(",") if c.strip()]
        return {
            "name": self.name, "description": self.description, "config": dict(self._config),
            "guardrails": json.loads(self.guardrails_text or "{}"), "capabilities": caps,
            "memory": memory, "pricing": pricing,
        }  # fmt: skip

    @rx.event
    @requires(Role.EDITOR)
    def save(self):
        """Store the agent and validate it (READY, or FAILED with the check that failed)."""
        principal = caller_of(self)
        actor = _actor(principal)
        if self._drafts:
            self.form_error = "fix the fields marked in red first"
            return None
        try:
            fields = self._spec_fields()
            if self.editing_id:  # validated again by update, unless it was never validated
                agents.get(self.editing_id, workspace_id=self._workspace())  # another workspace's: not found
                agent = agents.update(self.editing_id, fields, actor=actor)
            else:
                agent = agents.create(
                    agents.AgentSpec.model_validate(fields),
                    actor=actor,
                    owner_id=principal.user_id if principal else None,
                    workspace_id=self._workspace(),
                )
            if agent.state.value == "CREATED":
                agent = agents.prepare(agent.id, actor=actor)
        except (ValueError, pydantic.ValidationError) as exc:  # bad JSON, number or field
            self.form_error = user_message(exc)
            return None
        except Exception as exc:  # refused (terminated, executing) or the database is away
            self.form_error = user_message(exc)
            return None
        self.form_open, self.form_error = False, ""
        _audit(principal, "agent.update" if self.editing_id else "agent.create", agent)
        self._refresh()
        if agent.state.value == "READY":
            return rx.toast.success(f"{agent.name} is READY")
        return rx.toast.error(f"{agent.name} is {agent.state.value}: {agent.state_reason}")

    def _lifecycle(
        self, action: str, change: Callable[..., AgentRecord], agent_id: str, said: str
    ) -> EventSpec:
        """Take one agent a step through its lifecycle as the caller, audit it, re-read the table and
        toast `said` (formatted with the agent's name and state)."""
        principal = caller_of(self)
        try:
            agents.get(agent_id, workspace_id=self._workspace())  # another workspace's: not found
            agent = change(agent_id, actor=_actor(principal))
        except Exception as exc:
            return rx.toast.error(user_message(exc))
        _audit(principal, action, agent)
        self._refresh()
        return rx.toast.info(said.format(name=agent.name, state=agent.state.value))

    @rx.event
    @requires(Role.EDITOR)
    def validate_agent(self, agent_id: str) -> EventSpec:
        return self._lifecycle("agent.validate", agents.prepare, agent_id, "{name} is {state}")

    @rx.event
    @requires(Role.EDITOR)
    def terminate_agent(self, agent_id: str) -> EventSpec:
        return self._lifecycle("agent.terminate", agents.terminate, agent_id, "{name} is terminated")

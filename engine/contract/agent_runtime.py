"""Saved agents' config as a service between the engine and the family that runs agents.

The Agent Manager (engine/agents.py) keeps agents as saved objects but does not know what an
agent's config means: the node family that runs agents (nodes/agent) calls
`provide_agent_runtime` when it loads, and the manager asks it for the form's schema, the
config's problems, what the config needs to run (a model folder, a secret for a destination, a
node type) and the capabilities the config implies. The manager checks the needs itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from engine.contract.registry import ensure_plugins_loaded
from engine.errors import ErrorCode, FlowloomError

RequirementKind = Literal["model_folder", "secret", "node_type"]


@dataclass(frozen=True)
class AgentRequirement:
    """Something an agent's config needs before it can run, named by the config field that asks for it.

    `model_folder`: a local model folder `name`; `secret`: secret `name` (empty: none was named,
    though `destination` needs one) usable by agent nodes and sent to `destination`;
    `node_type`: an installed node type `name`.
    """

    kind: RequirementKind
    name: str
    field: str
    destination: str | None = None


class AgentRuntime(Protocol):
    """What the family that runs agents tells the manager about a saved agent's config."""

    def agent_schema(self) -> dict[str, Any]:
        """The JSON schema of a saved agent's config (the agent node's fields that make the agent)."""
        ...

    def config_problems(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(field, message) for each thing wrong with `config`; [] when it is valid."""
        ...

    def requirements(self, config: Mapping[str, Any]) -> list[AgentRequirement]:
        """What a valid `config` needs to run."""
        ...

    def capabilities(self, config: Mapping[str, Any]) -> list[str]:
        """The capabilities a valid `config` implies (TEXT_PROCESSING, API_INTEGRATION, ...)."""
        ...


_runtime: AgentRuntime | None = None


def provide_agent_runtime(runtime: AgentRuntime) -> None:
    """Offer `runtime` to the Agent Manager (called by the family that runs agents, when it loads)."""
    global _runtime
    _runtime = runtime


def agent_runtime() -> AgentRuntime:
    """The agent runtime; FlowloomError when no installed node family runs agents."""
    ensure_plugins_loaded()
    if _runtime is None:
        raise FlowloomError(
            "no node family that runs agents is installed (the agent family provides them)",
            code=ErrorCode.AGENT_CHECK_FAILED,
        )
    return _runtime

"""What this family tells the Agent Manager about a saved agent's config (engine.contract.AgentRuntime).

A saved agent's config is the agent node's config without the task fields (prompt, history,
stream, session, agent_id, capability): the manager shows its schema as the Agents page's
form, asks for its problems and needs (a model folder for openvino; an API key secret for a
provider's public API, or the one named; the memory node types), and the capabilities it implies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from engine.contract import AgentRequirement, provide_agent_runtime
from nodes.agent.agent_config import TASK_FIELDS, AgentConfig
from nodes.agent.llm import api_destination

MEMORY_NODE_TYPES = {"search": "memory.search", "ingest": "memory.ingest"}


def _agent_config(config: Mapping[str, Any]) -> AgentConfig:
    return AgentConfig.model_validate(dict(config))


class AgentFamilyRuntime:
    """The agent node family's answers about saved agents' configs."""

    def agent_schema(self) -> dict[str, Any]:
        schema = AgentConfig.model_json_schema()
        schema["properties"] = {k: v for k, v in schema["properties"].items() if k not in TASK_FIELDS}
        schema["required"] = ["model"]
        return schema

    def config_problems(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        if not isinstance(config, Mapping):
            return [("", "the config must be an object")]
        task = sorted(set(config) & TASK_FIELDS)
        if task:
            return [
                (name, "belongs to the agent node that runs the agent, not to the agent") for name in task
            ]
        try:
            _agent_config(config)
        except pydantic.ValidationError as exc:
            problems = []
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"])
                message = str(error["msg"]).removeprefix("Value error, ")
                problems.append((where, message))
            return problems
        return []

    def requirements(self, config: Mapping[str, Any]) -> list[AgentRequirement]:
        cfg = _agent_config(config)
        needs = []
        if cfg.provider == "openvino":
            needs.append(AgentRequirement("model_folder", cfg.model, "model"))
        else:
            destination = api_destination(cfg.provider, cfg.base_url)
            if cfg.api_key_secret:
                needs.append(AgentRequirement("secret", cfg.api_key_secret, "api_key_secret", destination))
            elif not cfg.base_url:  # the provider's public API takes no request without a key
                needs.append(AgentRequirement("secret", "", "api_key_secret", destination))
        if cfg.memory_collection:
            needs.append(AgentRequirement("node_type", MEMORY_NODE_TYPES["search"], "memory_collection"))
            if cfg.memory_store:
                needs.append(AgentRequirement("node_type", MEMORY_NODE_TYPES["ingest"], "memory_store"))
        return needs

    def capabilities(self, config: Mapping[str, Any]) -> list[str]:
        return [c.value for c in _agent_config(config).capabilities()]


provide_agent_runtime(AgentFamilyRuntime())

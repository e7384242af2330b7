"""Config of the `agent` node: provider, model, prompts, tools, approvals, memory and output schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from engine.contract import (
    AGENT_ID_PATTERN,
    CAPABILITY_PATTERN,
    DEFAULT_EMBEDDER,
    MEMORY_COLLECTION_PATTERN,
    Capability,
    SchemaRefused,
    check_schema,
)
from engine.contract import MODEL_NAME_PATTERN as NAME_PATTERN
from engine.contract import SECRET_REFERENCE_PATTERN as SECRET_NAME_PATTERN
from nodes.agent.agent_tools import offered_tool_names
from nodes.agent.llm import provider_names
from nodes.agent.mcp_tools import server_label

_COLLECTION_OR_EMPTY = r"^$|" + MEMORY_COLLECTION_PATTERN
# Fields of the node that are the task, not the agent: set beside a saved agent (agent_id, capability).
TASK_FIELDS = frozenset({"agent_id", "capability", "session", "prompt", "history", "stream"})


def _tool_examples(schema: dict[str, Any]) -> None:
    schema["examples"] = [offered_tool_names()]


class AgentConfig(BaseModel):
    """Config of `agent`."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(
        "",
        pattern=r"^$|" + AGENT_ID_PATTERN,
        description="A saved agent (Agents page) to run; it brings provider, model, prompts, tools and memory",
    )
    capability: str = Field(
        "",
        pattern=r"^$|" + CAPABILITY_PATTERN,
        description="Or: run any READY saved agent with this capability, picked when the step runs",
    )
    session: str = Field(
        "",
        max_length=200,
        description="A saved agent with memory: the conversation to continue across runs, e.g. {{ input.user }}",
    )
    provider: str = Field(
        "openai", description="Model provider: openai (any compatible server), anthropic, openvino"
    )
    model: str = Field(
        "",
        validate_default=True,
        description="Model name, e.g. gpt-4o-mini; for openvino a model folder (not with a saved agent)",
    )
    system_prompt: str = Field(
        "", description="Instructions for the model", json_schema_extra={"format": "multiline"}
    )
    prompt: str = Field(
        "",
        description="The user message (templated); empty = the input value",
        json_schema_extra={"format": "multiline"},
    )
    temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature")
    max_tokens: int = Field(1024, ge=1, le=200_000, description="Most tokens in each answer")
    base_url: str = Field(
        "", description="API base URL (an OpenAI-compatible server, a proxy); empty = the provider's"
    )
    api_key_secret: str = Field(
        "",
        pattern=SECRET_NAME_PATTERN,
        description="Name of the API key secret (Secrets page); its bindings must allow the base URL",
        json_schema_extra={"format": "secret"},
    )
    tools: list[str] = Field(
        default_factory=list,
        description="Registered tools and tool nodes the model may call",
        json_schema_extra=_tool_examples,
    )
    mcp_servers: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="MCP servers whose tools the model may call: names from FLOWLOOM_MCP_SERVERS, or "
        "http(s):// URLs of streamable-HTTP servers (through the egress policy)",
    )
    approval_tools: list[str] = Field(
        default_factory=list,
        description="Tools a person must approve before each call (see the approval output); an MCP "
        "tool as <server>/<tool>",
    )
    max_iterations: int = Field(8, ge=1, le=50, description="Most model calls in one step")
    history: list[dict[str, Any]] | None = Field(
        None,
        description="Earlier conversation as {role, content} messages, e.g. {{ input.history }} from a chat "
        "trigger; a connected history input wins",
    )
    stream: bool = Field(
        False,
        description="Stream the answer token by token (agent.stream events) for chat pages and SSE clients",
    )
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON schema the final answer must match (it is parsed into out.data)"
    )
    memory_collection: str = Field(
        "", pattern=_COLLECTION_OR_EMPTY, description="Long-term memory collection; empty = none"
    )
    memory_top_k: int = Field(3, ge=1, le=20, description="Memory chunks retrieved before the call")
    memory_min_score: float = Field(
        0.2, ge=-1, le=1, description="Ignore memory chunks less similar than this"
    )
    memory_store: bool = Field(False, description="Store each question and answer in the memory collection")
    embedding_model: str = Field(DEFAULT_EMBEDDER, pattern=NAME_PATTERN, description="Embedder for memory")

    @field_validator("provider")
    @classmethod
    def _provider_exists(cls, name: str) -> str:
        if name not in provider_names():
            raise ValueError(f"unknown provider {name!r}; known: {', '.join(provider_names())}")
        return name

    @field_validator("tools")
    @classmethod
    def _tools_exist(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in offered_tool_names()]
        if unknown:
            raise ValueError(
                f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(offered_tool_names())}"
            )
        return names

    @field_validator("output_schema")
    @classmethod
    def _schema_is_valid(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            try:  # "#..." references only, nothing fetched, patterns RE2 can run
                check_schema(schema)
            except SchemaRefused as exc:
                raise ValueError(f"not a usable JSON schema: {exc}") from None
        return schema

    @model_validator(mode="after")
    def _inline_or_saved(self) -> AgentConfig:
        if self.agent_id and self.capability:
            raise ValueError("capability: set agent_id or capability, not both")
        if self.agent_id or self.capability:
            inline = sorted(self.model_fields_set - TASK_FIELDS)
            if inline:
                raise ValueError(
                    f"{', '.join(inline)}: set by the saved agent; edit the agent on the Agents page, "
                    "or clear agent_id and capability to define the agent here"
                )
        return self

    @field_validator("model")
    @classmethod
    def _model_named(cls, name: str, info: ValidationInfo) -> str:
        # agent_id and capability are declared before model, so they are in info.data already.
        if not name and not (info.data.get("agent_id") or info.data.get("capability")):
            raise ValueError("enter a model name, or pick a saved agent in agent_id")
        return name

    @property
    def saved(self) -> bool:
        """Whether a saved agent runs this node (by id or capability)."""
        return bool(self.agent_id or self.capability)

    def with_agent(self, agent_config: dict[str, Any]) -> AgentConfig:
        """The config the step runs: the saved agent's fields with this node's task fields."""
        task = {k: v for k, v in self.model_dump().items() if k in TASK_FIELDS - {"agent_id", "capability"}}
        return AgentConfig.model_validate({**agent_config, **task})

    @model_validator(mode="after")
    def _approval_tools_are_tools(self) -> AgentConfig:
        servers = {server_label(entry) for entry in self.mcp_servers}
        missing = [
            t for t in self.approval_tools
            if t not in self.tools and t.rpartition("/")[0] not in servers
        ]  # fmt: skip
        if missing:
            raise ValueError(
                f"approval_tools: {', '.join(missing)} not in tools (nor <server>/<tool> of mcp_servers); "
                "add them to tools first"
            )
        return self

    def capabilities(self) -> list[Capability]:
        caps = [Capability.TEXT_PROCESSING]
        if self.memory_collection or self.output_schema:
            caps.append(Capability.DOCUMENT_ANALYSIS)
        if self.tools:
            caps.append(Capability.API_INTEGRATION)
        if self.approval_tools:
            caps.append(Capability.WORKFLOW_CONTROL)
        return caps

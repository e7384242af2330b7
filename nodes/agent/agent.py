"""The `agent` node: a language model with tools, memory, approvals and structured output.

One step runs the tool-calling loop until the model answers, `max_iterations` model calls are
used up, or a tool in `approval_tools` is requested. Then the `approval` output fires with
the pending call and the conversation so far; wire it to a `human.approval` node and that
node's decision back into this node's `approval` input (the same node in a state machine, or
a copy of it further down a DAG), and the agent carries on where it stopped.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.contract import (
    AGENT_COMPLETED,
    AGENT_FAILED,
    AGENT_STARTED,
    DEFAULT_EMBEDDER,
    MEMORY_COLLECTION_PATTERN,
    FlowloomError,
    Port,
    SchemaRefused,
    StepContext,
    StepError,
    check_schema,
    get_node_type,
    item_text,
    register,
)
from engine.contract import MODEL_NAME_PATTERN as NAME_PATTERN
from engine.contract import SECRET_REFERENCE_PATTERN as SECRET_NAME_PATTERN

# Importing anthropic_llm and openvino_llm registers those providers.
from nodes.agent import anthropic_llm, openvino_llm  # noqa: F401
from nodes.agent.agent_lifecycle import Agent, AgentState, Capability
from nodes.agent.agent_loop import AgentTurn, Paused, PausedState
from nodes.agent.agent_tools import offered_tool_names, resolve_tools
from nodes.agent.llm import api_destination, get_provider, provider_names

_COLLECTION_OR_EMPTY = r"^$|" + MEMORY_COLLECTION_PATTERN
# Long-term memory is the memory family's: the agent runs its node types through the registry.
MEMORY_SEARCH, MEMORY_INGEST = "memory.search", "memory.ingest"


def _tool_examples(schema: dict[str, Any]) -> None:
    schema["examples"] = [offered_tool_names()]


class AgentConfig(BaseModel):
    """Config of `agent`."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(
        "openai", description="Model provider: openai (any compatible server), anthropic, openvino"
    )
    model: str = Field(min_length=1, description="Model name, e.g. gpt-4o-mini; for openvino a model folder")
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
    approval_tools: list[str] = Field(
        default_factory=list,
        description="Tools a person must approve before each call (see the approval output)",
    )
    max_iterations: int = Field(8, ge=1, le=50, description="Most model calls in one step")
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
    def _approval_tools_are_tools(self) -> AgentConfig:
        missing = [t for t in self.approval_tools if t not in self.tools]
        if missing:
            raise ValueError(f"approval_tools: {', '.join(missing)} not in tools; add them to tools first")
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


@register(
    "agent",
    category="ai",
    label="Agent",
    config=AgentConfig,
    inputs={
        "in": Port("any", required=False, description="the user message when no prompt is set"),
        "history": Port("messages", required=False, description="earlier conversation to continue"),
        "approval": Port(
            "json", required=False, description="a human.approval decision on a pending tool call"
        ),
    },
    outputs={
        "out": Port("json", description="{text, usage} and data (the parsed answer) with an output schema"),
        "approval": Port("json", description="fires instead of out when a tool call needs approval"),
        "messages": Port("messages", description="the conversation, for the next turn"),
        "agent": Port("json", description="{id, state, lifecycle, capabilities, iterations, tool_calls}"),
    },
    icon="bot",
    branching=True,
)
async def agent(ctx: StepContext, cfg: AgentConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run a language model with tools until it answers (or asks for an approval)."""
    paused = PausedState.from_decision(inputs["approval"]) if inputs.get("approval") is not None else None
    me = Agent.create(cfg.capabilities(), agent_id=paused.agent_id if paused else None)
    api_key = ""
    try:
        me.to(AgentState.INITIALIZING)
        api_key = _api_key(ctx, cfg)
        turn = _initialize(ctx, cfg, me, api_key, paused)
        ctx.emit(AGENT_STARTED, agent_id=me.id, provider=cfg.provider, model=cfg.model,
                    capabilities=[c.value for c in me.capabilities], resumed=paused is not None)  # fmt: skip
        if paused is not None:
            turn.restore(paused)
            result = await turn.resume(paused.decision)
        else:
            prompt = cfg.prompt or item_text(inputs.get("in"))
            if not prompt.strip():
                raise StepError("prompt: empty; write a prompt or connect an input", retryable=False)
            turn.begin(prompt, await _recall(ctx, cfg, prompt), _history(ctx, inputs))
            result = await turn.run()
    except FlowloomError as exc:  # StepError, or PolicyViolation from the egress check
        message = ctx.redact(str(exc))
        if me.state in (AgentState.EXECUTING, AgentState.INITIALIZING, AgentState.VALIDATING):
            me.finish(AgentState.FAILED, error=message)
        ctx.emit(AGENT_FAILED, agent_id=me.id, error=message)
        if isinstance(exc, StepError) and message != str(exc):
            raise StepError(message, retryable=exc.retryable) from None
        raise
    if isinstance(result, Paused):
        me.finish(AgentState.COMPLETED, outcome="approval_requested", tool=result.request["tool"])
        ctx.emit(AGENT_COMPLETED, agent_id=me.id, outcome="approval_requested",
                    tool=result.request["tool"], iterations=turn.iterations)  # fmt: skip
        return {"approval": result.request, "agent": turn.describe()}
    if cfg.memory_collection and cfg.memory_store:
        await _remember(ctx, cfg, me, turn.prompt, result.text)
    me.finish(AgentState.COMPLETED, outcome="answered")
    ctx.emit(
        AGENT_COMPLETED, agent_id=me.id, outcome="answered", iterations=turn.iterations, usage=turn.usage
    )
    out: dict[str, Any] = {"text": result.text, "usage": turn.usage}
    if cfg.output_schema:
        out["data"] = result.data
    return {"out": out, "messages": turn.conversation(), "agent": turn.describe()}


def _api_key(ctx: StepContext, cfg: AgentConfig) -> str:
    """The provider's API key, resolved for the URL it will be sent to (none for a local provider)."""
    destination = api_destination(cfg.provider, cfg.base_url)
    if not cfg.api_key_secret or destination is None:
        return ""
    return ctx.secret(cfg.api_key_secret, field="api_key_secret", destination=destination)


def _initialize(
    ctx: StepContext, cfg: AgentConfig, me: Agent, api_key: str, paused: PausedState | None
) -> AgentTurn:
    """INITIALIZING -> VALIDATING -> VALIDATED -> READY -> EXECUTING: provider, tools, checks."""
    http = ctx.secret_http if api_key else ctx.http  # a request carrying the key follows no redirect
    provider = get_provider(cfg.provider, base_url=cfg.base_url, api_key=api_key, http=http)
    toolbox = resolve_tools(cfg.tools)
    me.to(AgentState.VALIDATING)
    if paused is not None:
        paused.check_tools(toolbox)
    for state in (AgentState.VALIDATED, AgentState.READY, AgentState.EXECUTING):
        me.to(state)
    return AgentTurn(ctx, cfg, me, provider, toolbox)


def _history(ctx: StepContext, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """Short-term memory: the history input, else this node's own conversation from its last visit."""
    history = inputs.get("history")
    if history is None and ctx.visit > 1:
        history = ((ctx.steps.get(ctx.node_id) or {}).get("outputs") or {}).get("messages")
    if history is None:
        return []
    if not isinstance(history, list) or not all(isinstance(m, dict) and "role" in m for m in history):
        raise StepError("history: expected a list of {role, content} messages", retryable=False)
    return [m for m in history if m.get("role") != "system"]


async def _run_memory_node(
    ctx: StepContext, type_name: str, config: dict[str, Any], inputs: dict[str, Any]
) -> Any:
    """The `out` of memory node `type_name` run with this step's context (StepError when it is not installed)."""
    node_type = get_node_type(type_name)
    if node_type is None:
        raise StepError(
            f"memory_collection: long-term memory needs the {type_name} node type; install the memory node family",
            retryable=False,
        )
    cfg = node_type.config_model.model_validate(config)
    if node_type.is_async:
        result = await node_type.run(ctx, cfg, inputs)
    else:
        result = await asyncio.to_thread(node_type.run, ctx, cfg, inputs)
    return result["out"]


async def _recall(ctx: StepContext, cfg: AgentConfig, prompt: str) -> list[dict[str, Any]]:
    """Long-term memory: the chunks nearest to the prompt ({content, score, ...}), retrieved before the call."""
    if not cfg.memory_collection:
        return []
    search = {"collection": cfg.memory_collection, "text": prompt, "top_k": cfg.memory_top_k,
              "min_score": cfg.memory_min_score, "model": cfg.embedding_model}  # fmt: skip
    return await _run_memory_node(ctx, MEMORY_SEARCH, search, {})


async def _remember(ctx: StepContext, cfg: AgentConfig, me: Agent, prompt: str, answer: str) -> None:
    doc = {
        "id": f"{me.id}:{ctx.run_id}",
        "text": f"Question: {prompt}\nAnswer: {answer}",
        "meta": {"agent_id": me.id, "run_id": ctx.run_id, "node_id": ctx.node_id},
    }
    ingest = {"collection": cfg.memory_collection, "model": cfg.embedding_model}
    await _run_memory_node(ctx, MEMORY_INGEST, ingest, {"in": [doc]})

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

from engine.contract import (
    AGENT_COMPLETED,
    AGENT_FAILED,
    AGENT_STARTED,
    ErrorCode,
    FlowloomError,
    Port,
    StepContext,
    StepError,
    get_node_type,
    item_text,
    register,
)

# Importing the provider modules registers them.
from nodes.agent import anthropic_llm, openai_llm, openvino_llm  # noqa: F401
from nodes.agent.agent_config import AgentConfig
from nodes.agent.agent_lifecycle import Agent, AgentState
from nodes.agent.agent_loop import AgentTurn, Paused, PausedState
from nodes.agent.agent_tools import resolve_tools
from nodes.agent.llm import api_destination, get_provider

# Long-term memory is the memory family's: the agent runs its node types through the registry.
MEMORY_SEARCH, MEMORY_INGEST = "memory.search", "memory.ingest"


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
                raise StepError("prompt: empty; write a prompt or connect an input", retryable=False,
                                code=ErrorCode.INPUT_MISSING, field="prompt")  # fmt: skip
            turn.begin(prompt, await _recall(ctx, cfg, prompt), _history(ctx, cfg, inputs))
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


def _history(ctx: StepContext, cfg: AgentConfig, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """Short-term memory: the history input, else the history field (a chat's conversation), else
    this node's own conversation from its last visit."""
    history = inputs.get("history")
    if history is None:
        history = cfg.history
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

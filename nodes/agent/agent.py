"""The `agent` node: a language model with tools, memory, approvals and structured output.

One step runs the tool-calling loop until the model answers, `max_iterations` model calls are
used up, or a tool in `approval_tools` is requested. Then the `approval` output fires with
the pending call and the conversation so far; wire it to a `human.approval` node and that
node's decision back into this node's `approval` input (the same node in a state machine, or
a copy of it further down a DAG), and the agent carries on where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from engine.contract import (
    AGENT_COMPLETED,
    AGENT_FAILED,
    AGENT_STARTED,
    ErrorCode,
    FlowloomError,
    Port,
    SavedAgentView,
    SessionContext,
    StepContext,
    StepError,
    agent_for_capability,
    agent_session,
    begin_agent_execution,
    end_agent_execution,
    get_node_type,
    item_text,
    llm_call,
    record_agent_turn,
    register,
    saved_agent,
    set_agent_session_summary,
)

# Importing the provider modules registers them; agent_runtime offers saved agents' checks to the manager.
from nodes.agent import agent_runtime, anthropic_llm, openai_llm, openvino_llm  # noqa: F401
from nodes.agent.agent_config import AgentConfig
from nodes.agent.agent_lifecycle import Agent, AgentState
from nodes.agent.agent_loop import AgentTurn, Paused, PausedState
from nodes.agent.agent_tools import AgentTool, resolve_mcp_tools, resolve_tools
from nodes.agent.citations import citations
from nodes.agent.llm import api_destination, get_provider

# Long-term memory is the memory family's: the agent runs its node types through the registry.
MEMORY_SEARCH, MEMORY_INGEST = "memory.search", "memory.ingest"


def _uses_agent(config: Mapping[str, Any]) -> tuple[str, str] | None:
    """The saved agent a raw config names (agent_id) or asks for (capability), for the validator."""
    for key in ("agent_id", "capability"):
        value = config.get(key)
        if isinstance(value, str) and value.strip():
            return key, value.strip()
    return None


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
        "out": Port("object", description="{text, usage} and data (the parsed answer) with an output schema"),
        "approval": Port("object", description="fires instead of out when a tool call needs approval"),
        "messages": Port("messages", description="the conversation, for the next turn"),
        "agent": Port("object", description="{id, state, lifecycle, capabilities, iterations, tool_calls}"),
        "metrics": Port("object", description="{agent_id, input_tokens, output_tokens, cost_usd, ...}"),
    },
    icon="bot",
    branching=True,
    uses_agent=_uses_agent,
)
async def agent(ctx: StepContext, cfg: AgentConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run a language model with tools until it answers (or asks for an approval)."""
    if not cfg.saved:
        return await _run(ctx, cfg, inputs, None)
    saved = _saved_agent(cfg, ctx.workspace_id)
    saved = begin_agent_execution(saved.id, run_id=ctx.run_id, step_id=ctx.step_id, node_id=ctx.node_id)
    where = {"run_id": ctx.run_id, "step_id": ctx.step_id, "node_id": ctx.node_id}
    try:
        try:
            run_cfg = cfg.with_agent(saved.config)
        except ValueError as exc:  # valid when validated; a tool or provider went away since
            raise StepError(f"agent_id: the config of agent {saved.name} is no longer valid: {exc}; "
                            "validate it again on the Agents page", retryable=False, field="agent_id") from None  # fmt: skip
        result = await _run(ctx, run_cfg, inputs, saved)
    except BaseException as exc:
        end_agent_execution(saved.id, error=ctx.redact(str(exc)) or type(exc).__name__, **where)
        raise
    end_agent_execution(saved.id, **where)
    return result


def _saved_agent(cfg: AgentConfig, workspace_id: str) -> SavedAgentView:
    """The saved agent the node names, or one with the capability it asks for, of the run's
    workspace only; StepError when there is none."""
    if cfg.agent_id:
        found = saved_agent(cfg.agent_id, workspace_id=workspace_id)
        if found is None:
            raise StepError(f"agent_id: no saved agent {cfg.agent_id}", retryable=False,
                            code=ErrorCode.AGENT_NOT_FOUND, field="agent_id")  # fmt: skip
        return found
    found = agent_for_capability(cfg.capability, workspace_id=workspace_id)
    if found is None:
        raise StepError(f"capability: no READY saved agent has capability {cfg.capability}", retryable=False,
                        code=ErrorCode.NO_CAPABLE_AGENT, field="capability")  # fmt: skip
    return found


async def _run(
    ctx: StepContext, cfg: AgentConfig, inputs: dict[str, Any], saved: SavedAgentView | None
) -> dict[str, Any]:
    """One step of an inline agent, or of a saved one (`saved`, already EXECUTING for this step)."""
    paused = PausedState.from_decision(inputs["approval"]) if inputs.get("approval") is not None else None
    if saved is not None:
        me = Agent.saved_ready(saved.id, saved.capabilities)
    else:
        me = Agent.create(cfg.capabilities(), agent_id=paused.agent_id if paused else None)
    session = _session_of(cfg, saved)
    api_key = ""
    try:
        if saved is None:
            me.to(AgentState.INITIALIZING)
        api_key = _api_key(ctx, cfg)
        turn = _initialize(ctx, cfg, me, api_key, paused, await resolve_mcp_tools(ctx, cfg.mcp_servers))
        ctx.emit(AGENT_STARTED, agent_id=me.id, provider=cfg.provider, model=cfg.model,
                    capabilities=[str(c) for c in me.capabilities], resumed=paused is not None)  # fmt: skip
        if paused is not None:
            turn.restore(paused)
            result = await turn.resume(paused.decision)
        else:
            prompt = cfg.prompt or item_text(inputs.get("in"))
            if not prompt.strip():
                raise StepError("prompt: empty; write a prompt or connect an input", retryable=False,
                                code=ErrorCode.INPUT_MISSING, field="prompt")  # fmt: skip
            history = _history(ctx, cfg, inputs)
            if not history and session is not None:
                history = list(session.history)
            summary = session.summary if session is not None else ""
            turn.begin(prompt, await _recall(ctx, cfg, prompt), history, summary)
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
        return {"approval": result.request, "agent": turn.describe(), "metrics": _metrics(me, turn, saved)}
    if cfg.memory_collection and cfg.memory_store:
        await _remember(ctx, cfg, me, turn.prompt, result.text)
    kept = await _keep_turn(ctx, cfg, saved, session, turn, result.text) if saved and session else None
    me.finish(AgentState.COMPLETED, outcome="answered")
    ctx.emit(
        AGENT_COMPLETED, agent_id=me.id, outcome="answered", iterations=turn.iterations, usage=turn.usage
    )
    out: dict[str, Any] = {"text": result.text, "usage": turn.usage}
    if turn.hits:  # which recalled chunks the answer cites, as [document#chunk]
        out["citations"] = citations(turn.hits, result.text)
    if cfg.output_schema:
        out["data"] = result.data
    described = turn.describe() | ({"session": kept} if kept else {})
    return {
        "out": out,
        "messages": turn.conversation(),
        "agent": described,
        "metrics": _metrics(me, turn, saved),
    }


def _tokens(usage: dict[str, int]) -> tuple[int, int]:
    """(input, output) tokens of an OpenAI- or Anthropic-style usage."""
    return (
        int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0),
        int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0),
    )


def _metrics(me: Agent, turn: AgentTurn, saved: SavedAgentView | None) -> dict[str, Any]:
    """The step's metrics: which agent, tokens, cost at the saved agent's prices (the Agents page reads them)."""
    tokens_in, tokens_out = _tokens(turn.usage)
    metrics: dict[str, Any] = {
        "agent_id": me.id, "saved_agent": saved is not None, "iterations": turn.iterations,
        "input_tokens": tokens_in, "output_tokens": tokens_out, "total_tokens": tokens_in + tokens_out,
    }  # fmt: skip
    cost = saved.cost(tokens_in, tokens_out) if saved is not None else None
    if cost is not None:
        metrics["cost_usd"] = cost
    return metrics


def _session_of(cfg: AgentConfig, saved: SavedAgentView | None) -> SessionContext | None:
    """The saved agent's session the node continues (its `session` key), or None."""
    if saved is None or saved.memory is None or not cfg.session.strip():
        return None
    return agent_session(saved.id, cfg.session.strip())


async def _keep_turn(
    ctx: StepContext, cfg: AgentConfig, saved: SavedAgentView, session: SessionContext, turn: AgentTurn,
    answer: str,
) -> dict[str, Any]:  # fmt: skip
    """Add this turn to the session; with the summarise policy, fold the turns it dropped into its summary."""
    kept, dropped = record_agent_turn(saved, cfg.session.strip(), turn.prompt, answer, run_id=ctx.run_id)
    described: dict[str, Any] = {"key": kept.key, "turns": kept.turns, "kept_messages": len(kept.history),
                                 "dropped_turns": kept.dropped_turns, "summary": kept.summary}  # fmt: skip
    if dropped and saved.memory is not None and saved.memory.policy == "summarise":
        try:
            described["summary"] = await _summarise(
                turn, session.summary, dropped, saved.memory.summary_chars
            )
        except FlowloomError as exc:  # the answer stands; the session keeps its old summary
            described["summary_error"] = ctx.redact(str(exc))
            ctx.logger.warning("agent %s: summarising session %s failed: %s", saved.id, kept.key, exc)
        else:
            set_agent_session_summary(saved, kept.key, described["summary"])
    return described


async def _summarise(turn: AgentTurn, summary: str, dropped: list[dict[str, Any]], limit: int) -> str:
    """A model-written summary of the old summary and the turns leaving the session."""
    transcript = "\n".join(f"{m.get('role')}: {m.get('content', '')}" for m in dropped)
    ask: list[dict[str, Any]] = [
        {"role": "system", "content": f"Summarise the conversation below in at most {limit} characters. "
                                      "Keep names, facts, decisions and open questions; write plain text."},
        {"role": "user", "content": (f"Summary so far:\n{summary}\n\n" if summary else "") + transcript},
    ]  # fmt: skip
    with llm_call(provider=turn.cfg.provider, model=turn.cfg.model, operation="summarise") as call:
        result = await turn.provider.chat(
            ask, model=turn.cfg.model, temperature=0, max_tokens=turn.cfg.max_tokens
        )
        call.usage_from(result.usage)
    for key, value in (result.usage or {}).items():
        turn.usage[key] = turn.usage.get(key, 0) + int(value or 0)
    return (result.text or "").strip()[:limit]


def _api_key(ctx: StepContext, cfg: AgentConfig) -> str:
    """The provider's API key, resolved for the URL it will be sent to (none for a local provider)."""
    destination = api_destination(cfg.provider, cfg.base_url)
    if not cfg.api_key_secret or destination is None:
        return ""
    return ctx.secret(cfg.api_key_secret, field="api_key_secret", destination=destination)


def _initialize(
    ctx: StepContext,
    cfg: AgentConfig,
    me: Agent,
    api_key: str,
    paused: PausedState | None,
    mcp_tools: dict[str, AgentTool] | None = None,
) -> AgentTurn:
    """INITIALIZING -> VALIDATING -> VALIDATED -> READY -> EXECUTING: provider, tools, checks."""
    http = ctx.secret_http if api_key else ctx.http  # a request carrying the key follows no redirect
    provider = get_provider(cfg.provider, base_url=cfg.base_url, api_key=api_key, http=http)
    toolbox = resolve_tools(cfg.tools)
    for function, tool in (mcp_tools or {}).items():
        if function in toolbox:
            raise StepError(f"mcp_servers: tool {tool.name!r} has the name of a listed tool", retryable=False)
        toolbox[function] = tool
    if not me.saved:  # a saved agent was validated by the manager: it is READY already
        me.to(AgentState.VALIDATING)
    if paused is not None:
        paused.check_tools(toolbox)
    for state in (AgentState.VALIDATED, AgentState.READY) if not me.saved else ():
        me.to(state)
    me.to(AgentState.EXECUTING)
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

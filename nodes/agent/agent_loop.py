"""The agent's tool-calling loop: ask the model, run the tools it asks for, repeat until it answers.

The loop stops with an `Answer`, or with `Paused` when a tool needs a person's approval; the
pause carries the conversation so a later step can `restore` it and `resume` with the decision.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from engine.contract import (
    AGENT_TOOL_CALLED,
    ErrorCode,
    FlowloomError,
    StepContext,
    StepError,
    StreamRecorder,
    instance_problems,
    llm_call,
)
from nodes.agent.agent_config import AgentConfig
from nodes.agent.agent_lifecycle import Agent, is_agent_id
from nodes.agent.agent_tools import AgentTool
from nodes.agent.citations import label
from nodes.agent.llm import (
    ChatResult,
    GenerationOptions,
    LLMProvider,
    Message,
    ToolCall,
    assistant_message,
    tool_result_message,
)

REQUEST_KIND = "agent.tool_approval"
MAX_TOOL_RESULT_CHARS = 16_000
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


@dataclass(frozen=True)
class Answer:
    """The model's final answer; `data` is the parsed JSON when an output schema is set."""

    text: str
    data: Any = None


@dataclass(frozen=True)
class Paused:
    """A tool call waits for a person: the request the approval output carries."""

    request: dict[str, Any]


def _calls(raw: list[Any]) -> list[ToolCall]:
    return [ToolCall(str(c["id"]), str(c["name"]), dict(c.get("arguments") or {})) for c in raw]


@dataclass
class PausedState:
    """An agent's paused conversation, read back from a human.approval decision."""

    agent_id: str
    prompt: str
    messages: list[Message]
    iterations: int
    usage: dict[str, int]
    tool_log: list[dict[str, Any]]
    pending: list[ToolCall]
    decision: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_decision(cls, decision: Any) -> PausedState:
        """Parse the decision a human.approval node outputs ({action, decided_by, comment, data})."""
        if not isinstance(decision, dict) or "action" not in decision:
            raise StepError(
                "approval: expected a human.approval decision ({action, data, ...})", retryable=False
            )
        request = decision.get("data")
        if not isinstance(request, dict) or request.get("kind") != REQUEST_KIND:
            raise StepError(
                "approval: the decision is not about an agent's tool call; connect the agent's approval "
                "output to the human.approval node's input",
                retryable=False,
            )
        state = request.get("state") or {}
        try:
            paused = cls(
                agent_id=str(request["agent_id"]),
                prompt=str(state.get("prompt", "")),
                messages=list(state["messages"]),
                iterations=int(state["iterations"]),
                usage=dict(state.get("usage") or {}),
                tool_log=list(state.get("tool_log") or []),
                pending=_calls(state["pending"]),
                decision={k: decision.get(k) for k in ("action", "decided_by", "comment", "form")},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StepError(
                f"approval: the paused agent state is incomplete ({exc})", retryable=False
            ) from exc
        if not paused.pending or not is_agent_id(paused.agent_id):
            raise StepError("approval: the paused agent state has no pending tool call", retryable=False)
        return paused

    def check_tools(self, toolbox: dict[str, AgentTool]) -> None:
        """The pending calls must name tools this agent offers (a decision cannot widen them)."""
        for call in self.pending:
            if call.name not in toolbox:
                raise StepError(
                    f"approval: pending tool {call.name!r} is not in this agent's tools",
                    retryable=False,
                    code=ErrorCode.UNKNOWN_TOOL,
                    field="tools",
                )


def _strip_fences(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1) if match else text.strip()


def as_model_text(value: Any) -> str:
    """A tool result as the text the model reads (JSON unless it is text already), capped in size."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:MAX_TOOL_RESULT_CHARS]


class AgentTurn:
    """One agent's conversation and counters across the model calls of a step."""

    def __init__(
        self,
        ctx: StepContext,
        cfg: AgentConfig,
        agent: Agent,
        provider: LLMProvider,
        toolbox: dict[str, AgentTool],
    ) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.agent = agent
        self.provider = provider
        self.toolbox = toolbox
        self.prompt = ""
        self.messages: list[Message] = []
        self.hits: list[dict[str, Any]] = []  # the memory chunks recalled for this turn
        self.iterations = 0
        self.usage: dict[str, int] = {}
        self.tool_log: list[dict[str, Any]] = []
        self.pending: list[ToolCall] = []

    # Building and restoring the conversation

    def _system_prompt(self) -> str:
        parts = [self.cfg.system_prompt.strip()]
        if self.cfg.output_schema:
            parts.append(
                "Answer with only a JSON value (no prose, no code fence) matching this JSON schema:\n"
                + json.dumps(self.cfg.output_schema)
            )
        return "\n\n".join(p for p in parts if p)

    def begin(
        self, prompt: str, hits: list[dict[str, Any]], history: list[Message], summary: str = ""
    ) -> None:
        """Start a conversation: system prompt, notes from memory, the summary of a session's older
        turns, earlier turns, the user's message."""
        self.prompt = prompt
        system = self._system_prompt()
        if system:
            self.messages.append({"role": "system", "content": system})
        if summary:
            self.messages.append(
                {"role": "system", "content": f"Summary of the earlier conversation:\n{summary}"}
            )
        self.hits = list(hits)
        if hits:
            notes = "\n".join(f"[{label(h)}] {h['content']}" for h in hits)
            self.messages.append(
                {
                    "role": "system",
                    "content": "Notes from long-term memory, most relevant first; cite a note you use "
                    f"by its label, e.g. [{label(hits[0])}]:\n{notes}",
                }
            )
        self.messages.extend(history)
        self.messages.append({"role": "user", "content": prompt})

    def restore(self, paused: PausedState) -> None:
        """Continue a paused conversation."""
        self.prompt = paused.prompt
        self.messages = list(paused.messages)
        self.iterations = paused.iterations
        self.usage = dict(paused.usage)
        self.tool_log = list(paused.tool_log)
        self.pending = list(paused.pending)

    def conversation(self) -> list[Message]:
        """The conversation without system messages (short-term memory for the next turn)."""
        return [m for m in self.messages if m.get("role") != "system"]

    def describe(self) -> dict[str, Any]:
        return {**self.agent.describe(), "iterations": self.iterations, "tool_calls": self.tool_log}

    # The loop

    async def run(self) -> Answer | Paused:
        """Call the model until it answers; run the tools it asks for in between."""
        specs = [t.spec() for t in self.toolbox.values()] or None
        while True:
            if self.iterations >= self.cfg.max_iterations:
                raise StepError(
                    f"max_iterations: the model still asked for tools after {self.iterations} calls; "
                    "raise max_iterations or give the agent a smaller task",
                    retryable=False,
                    code=ErrorCode.AGENT_MAX_ITERATIONS,
                    field="max_iterations",
                )
            self.iterations += 1
            result = await self._ask(specs)
            for key, value in result.usage.items():
                self.usage[key] = self.usage.get(key, 0) + value
            self.messages.append(assistant_message(result))
            if result.tool_calls:
                paused = await self._call_tools(list(result.tool_calls))
                if paused is not None:
                    return paused
                continue
            answer = self._check_answer(result.text)
            if answer is not None:
                return answer

    async def _ask(self, specs: list[dict[str, Any]] | None) -> ChatResult:
        """One model call, traced (a GenAI span) and counted (tokens, latency) by the engine."""
        with llm_call(provider=self.cfg.provider, model=self.cfg.model) as call:
            result = await self._ask_model(specs)
            call.usage_from(result.usage)
        return result

    async def _ask_model(self, specs: list[dict[str, Any]] | None) -> ChatResult:
        """One model call; with `stream` its text goes out as agent.stream events while it comes.

        Events of one call carry its `iteration`. A provider without `chat_stream` streams through
        `stream` when no tools are offered, else answers whole (its text then goes out as one chunk).
        """
        options: GenerationOptions = {
            "model": self.cfg.model,
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        }
        if not self.cfg.stream:
            return await self.provider.chat(self.messages, tools=specs, **options)
        recorder = StreamRecorder(self.ctx, fields={"agent_id": self.agent.id, "iteration": self.iterations})
        chat_stream = getattr(self.provider, "chat_stream", None)
        if chat_stream is not None:
            result = await chat_stream(self.messages, tools=specs, on_text=recorder, **options)
        elif specs is None:
            async for delta in self.provider.stream(self.messages, **options):
                recorder(delta)
            result = ChatResult(text=recorder.text)
        else:
            result = await self.provider.chat(self.messages, tools=specs, **options)
            if result.text and not result.tool_calls:
                recorder(result.text)
        recorder.flush()
        return result

    async def resume(self, decision: dict[str, Any]) -> Answer | Paused:
        """Apply a person's decision on the first pending call, run the rest, and carry on."""
        call = self.pending.pop(0)
        decided_by = str(decision.get("decided_by") or "someone")
        if decision.get("action") == "approved":
            await self._run_tool(call, approved_by=decided_by)
        else:
            comment = f": {decision['comment']}" if decision.get("comment") else ""
            refusal = f"The call was not approved ({decision.get('action')} by {decided_by}){comment}. Do not retry it."
            self.messages.append(tool_result_message(call, refusal))
            self._log(call, ok=False, result=refusal, refused_by=decided_by)
        paused = await self._call_tools(self.pending)
        if paused is not None:
            return paused
        return await self.run()

    async def _call_tools(self, calls: list[ToolCall]) -> Paused | None:
        for i, call in enumerate(calls):
            tool = self.toolbox.get(call.name)
            if tool is not None and tool.name in self.cfg.approval_tools:
                return self._pause(calls[i:])
            await self._run_tool(call)
        self.pending = []
        return None

    async def _run_tool(self, call: ToolCall, *, approved_by: str | None = None) -> None:
        tool = self.toolbox.get(call.name)
        ok = False
        if tool is None:
            content = f"error: unknown tool {call.name!r}; available: {', '.join(self.toolbox) or 'none'}"
        elif "_raw" in call.arguments:
            content = "error: the arguments are not valid JSON; call the tool again with a JSON object"
        else:
            try:
                content, ok = as_model_text(await tool.call(self.ctx, call.arguments)), True
            except FlowloomError as exc:  # the model sees the failure and may correct its call
                content = f"error: {exc}"
        self.messages.append(tool_result_message(call, content))
        self._log(call, ok=ok, result=content, approved_by=approved_by)

    def _log(self, call: ToolCall, *, ok: bool, result: str, **extra: Any) -> None:
        tool = self.toolbox.get(call.name)
        name = tool.name if tool else call.name
        entry = {
            "iteration": self.iterations,
            "tool": name,
            "arguments": call.arguments,
            "ok": ok,
            "result": result[:500],
            **{k: v for k, v in extra.items() if v},
        }
        self.tool_log.append(entry)
        self.ctx.emit(
            AGENT_TOOL_CALLED,
            agent_id=self.agent.id,
            tool=name,
            iteration=self.iterations,
            ok=ok,
            **{k: v for k, v in extra.items() if v},
        )

    def _pause(self, calls: list[ToolCall]) -> Paused:
        call = calls[0]
        tool = self.toolbox[call.name]
        arguments = json.dumps(call.arguments, indent=2, ensure_ascii=False)
        return Paused(
            {
                "kind": REQUEST_KIND,
                "title": f"Allow the agent to call {tool.name}?",
                "body": f"Agent {self.agent.id} wants to call **{tool.name}** with:\n\n```json\n{arguments}\n```",
                "tool": tool.name,
                "arguments": call.arguments,
                "agent_id": self.agent.id,
                "state": {
                    "prompt": self.prompt,
                    "messages": self.messages,
                    "iterations": self.iterations,
                    "usage": self.usage,
                    "tool_log": self.tool_log,
                    "pending": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls],
                },
            }
        )

    def _check_answer(self, text: str) -> Answer | None:
        """The answer, or None after asking the model to fix an answer that misses the schema."""
        if not self.cfg.output_schema:
            return Answer(text)
        try:
            data = json.loads(_strip_fences(text))
        except ValueError as exc:
            problem = f"not JSON ({exc})"
        else:  # the safe validator: nothing fetched for a $ref, patterns on RE2
            errors = instance_problems(self.cfg.output_schema, data)
            if not errors:
                return Answer(text, data)
            problem = f"{errors[0].path.replace('.', '/') or 'the answer'}: {errors[0].message}"
        if self.iterations >= self.cfg.max_iterations:
            raise StepError(
                f"output_schema: the answer does not match the schema after {self.iterations} calls: {problem}",
                retryable=False,
                code=ErrorCode.OUTPUT_SCHEMA_MISMATCH,
                field="output_schema",
            )
        self.messages.append(
            {"role": "user", "content": f"That answer is invalid: {problem}. Reply again with only the JSON."}
        )
        return None

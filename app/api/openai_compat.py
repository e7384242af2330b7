"""The OpenAI-compatible API: POST /v1/chat/completions and GET /v1/models over chat triggers.

A "model" is a workflow with a live chat trigger, named by the workflow's name (or its id). The
last user message becomes the trigger's message input, the earlier user and assistant messages
its history input; the answer is the run's answer output. The API is stateless, as OpenAI's is:
no chat session is kept, the caller sends the conversation each time. Sampling parameters
(temperature, max_tokens, ...) are accepted and ignored: the workflow decides them.

Only API keys are accepted (`Authorization: Bearer <Flowloom API key>`, operator role or above);
errors are OpenAI-style error objects (app/api/openai_errors.py).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.api.callers import requires
from app.api.openai_errors import openai_error
from app.auth.policy import Role
from app.auth.principal import Principal
from engine import trigger_fire, triggers
from engine.chat_stream import AnswerPiece, follow_answer, run_usage, streaming_node
from engine.errors import ErrorCode, FlowloomError, ValidationError, user_message
from engine.settings import get_settings
from engine.trigger_config import ChatConfig
from engine.triggers import TriggerRow
from models.db import get_engine

log = logging.getLogger(__name__)

router = APIRouter(tags=["openai-compatible"])
NO_RETRY = {"x-should-retry": "false"}  # the openai clients would otherwise start the run again


class ChatMessage(BaseModel):
    """One message of the conversation; `content` is text or a list of parts (text parts are read)."""

    model_config = ConfigDict(extra="allow")

    role: str = Field(max_length=40)
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; other fields (temperature, tools, ...) are ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(
        min_length=1, max_length=200, description="a chat workflow's name or id (GET /v1/models)"
    )
    messages: list[ChatMessage] = Field(min_length=1, max_length=2000)
    stream: bool = False
    stream_options: dict[str, Any] | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(BaseModel):
    """A finished answer (`stream: false`); with `stream: true` the answer is a text/event-stream of
    `chat.completion.chunk` objects (`choices[0].delta.content`), ended by `data: [DONE]`."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "flowloom"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class KeyCaller:
    """The caller, who must use an API key with the operator role (a browser session does not count)."""

    def __call__(self, principal: Annotated[Principal, Depends(requires(Role.OPERATOR))]) -> Principal:
        if principal.via != "api_key":
            raise FlowloomError(
                "send an API key as 'Authorization: Bearer <key>'", code=ErrorCode.SIGN_IN_REQUIRED
            )
        return principal


Operator = Annotated[Principal, Depends(KeyCaller())]


def _chat_triggers(workspace_id: str) -> list[TriggerRow]:
    # Only the API key's workspace's workflows are models: others do not exist for it.
    with get_engine(get_settings().database_url).connect() as conn:
        found = triggers.list_live(conn, "chat", workspace_id=workspace_id)
    first: dict[str, TriggerRow] = {}
    for t in sorted(found, key=lambda t: (t.workflow_id, t.key)):
        first.setdefault(t.workflow_id, t)  # a workflow with several chat triggers answers through the first
    return list(first.values())


def _model_names(found: list[TriggerRow]) -> dict[str, TriggerRow]:
    """Model id -> trigger: the workflow's name, or its id where several workflows share a name."""
    counts: dict[str, int] = {}
    for t in found:
        counts[t.workflow_name] = counts.get(t.workflow_name, 0) + 1
    return {(t.workflow_name if counts[t.workflow_name] == 1 else t.workflow_id): t for t in found}


def _resolve(model: str, workspace_id: str) -> TriggerRow | JSONResponse:
    found = _chat_triggers(workspace_id)
    by_id = {t.workflow_id: t for t in found}
    if model in by_id:
        return by_id[model]
    named = [t for t in found if t.workflow_name == model]
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(t.workflow_id for t in named)
        return openai_error(400, f"several chat workflows are named {model!r}; use one's id: {ids}", "model_ambiguous",
                            param="model")  # fmt: skip
    return openai_error(404, f"The model {model!r} does not exist: no workflow of that name or id has a live chat "
                        "trigger (GET /v1/models lists them)", "model_not_found", param="model")  # fmt: skip


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, str):
        return content
    parts = [
        p.get("text")
        for p in content or []
        if isinstance(p, dict) and p.get("type") in ("text", "input_text")
    ]
    return "".join(p for p in parts if isinstance(p, str))


def _inputs(config: ChatConfig, messages: list[ChatMessage]) -> dict[str, Any] | JSONResponse:
    if messages[-1].role != "user":
        return openai_error(
            400, "the last message must be the user's (role 'user')", "invalid_request", param="messages"
        )
    message = _text(messages[-1].content)
    if not message.strip():
        return openai_error(400, "the last user message has no text", "invalid_request", param="messages")
    inputs: dict[str, Any] = {config.message_input: message}
    if config.history_input:  # system and tool messages are not part of the chat's history
        inputs[config.history_input] = [
            {"role": m.role, "content": _text(m.content)}
            for m in messages[:-1]
            if m.role in ("user", "assistant")
        ]
    return inputs


def _start(trigger: TriggerRow, inputs: dict[str, Any], principal: Principal) -> str:
    fired = trigger_fire.fire(trigger, f"v1:{uuid.uuid4()}", inputs, started_by=principal.started_by)
    return str(fired.run_id)


def _usage(run_id: str) -> Usage:
    totals = run_usage(run_id)
    prompt, completion = totals.get("prompt_tokens", 0), totals.get("completion_tokens", 0)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=totals.get("total_tokens", prompt + completion),
    )


def _failure(piece: AnswerPiece, config: ChatConfig) -> tuple[int, str, str]:
    """(status, message, code) of an answer that did not come."""
    if not piece.status:
        return 504, piece.error or "no answer in time", "timeout"
    if piece.status == "succeeded":
        return 500, f"the workflow ended without its {config.answer_output!r} output", "answer_missing"
    return 500, f"the run {piece.status}: {piece.error or 'no error recorded'}", f"run_{piece.status}"


@router.get("/models", response_model=ModelList)
async def list_models(principal: Operator) -> ModelList:
    """The workflows with a live chat trigger, as models."""
    found = await run_in_threadpool(_chat_triggers, principal.workspace_id)
    return ModelList(data=[ModelCard(id=name, created=0) for name in sorted(_model_names(found))])


@router.get("/models/{model}", response_model=ModelCard, responses={404: {}})
async def get_model(model: str, principal: Operator) -> ModelCard | JSONResponse:
    """One chat workflow as a model."""
    resolved = await run_in_threadpool(_resolve, model, principal.workspace_id)
    return resolved if isinstance(resolved, JSONResponse) else ModelCard(id=model, created=0)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}, 400: {}, 401: {}, 404: {}, 500: {}, 504: {}},
)
async def chat_completions(body: ChatCompletionRequest, principal: Operator) -> Response:
    """Answer the conversation with a run of the model's chat trigger (streamed with `stream: true`)."""
    trigger = await run_in_threadpool(_resolve, body.model, principal.workspace_id)
    if isinstance(trigger, JSONResponse):
        return trigger
    config: ChatConfig = trigger.config
    inputs = _inputs(config, body.messages)
    if isinstance(inputs, JSONResponse):
        return inputs
    try:
        node = await run_in_threadpool(_streaming_node, trigger) if body.stream else None
        run_id = await run_in_threadpool(_start, trigger, inputs, principal)
    except ValidationError as exc:
        field = exc.issues[0].field if exc.issues else None
        return openai_error(400, user_message(exc), "input_invalid", param=field, headers=NO_RETRY)
    except FlowloomError as exc:
        status = (
            409
            if exc.code == ErrorCode.TRIGGER_PAUSED
            else 404
            if exc.code == ErrorCode.VERSION_NOT_FOUND
            else 500
        )
        return openai_error(status, user_message(exc), exc.code.value, headers=NO_RETRY)
    created = int(time.time())
    completion_id = f"chatcmpl-{run_id}"
    if body.stream:
        with_usage = bool((body.stream_options or {}).get("include_usage"))
        chunks = _stream(run_id, config, node, completion_id, created, body.model, with_usage)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Flowloom-Run-Id": run_id}
        return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)
    final = AnswerPiece(done=True)
    async for piece in follow_answer(run_id, config.answer_output, node_id=None, timeout=config.wait_s):
        final = piece
    if final.status != "succeeded" or final.answer is None:
        status, message, code = _failure(final, config)
        return openai_error(status, message, code, headers={**NO_RETRY, "X-Flowloom-Run-Id": run_id})
    usage = await run_in_threadpool(_usage, run_id)
    answer = ChatCompletion(id=completion_id, created=created, model=body.model, usage=usage,
                            choices=[Choice(message=AssistantMessage(content=final.answer))])  # fmt: skip
    return JSONResponse(answer.model_dump(mode="json"), headers={"X-Flowloom-Run-Id": run_id})


def _streaming_node(trigger: TriggerRow) -> str | None:
    with get_engine(get_settings().database_url).connect() as conn:
        defn, _ = trigger_fire.published_definition(conn, trigger.workflow_id)
    return streaming_node(defn, trigger.config.answer_output)


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _stream(
    run_id: str,
    config: ChatConfig,
    node: str | None,
    completion_id: str,
    created: int,
    model: str,
    with_usage: bool,
) -> AsyncIterator[str]:
    """The answer as chat.completion.chunk events: the streaming agent's tokens as they come (when
    the answer is exactly one streaming agent's text), whatever is left at the end, then [DONE].

    Tokens already sent cannot be taken back: when that agent's text starts over (another model
    call after a tool call, a retried step), live streaming stops and the end sends only what
    continues the text sent so far.
    """
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    yield chunk({"role": "assistant", "content": ""})
    streamed, live, final = "", True, AnswerPiece(done=True)
    async for piece in follow_answer(run_id, config.answer_output, node_id=node, timeout=config.wait_s):
        if piece.done:
            final = piece
            continue
        if piece.restart and live:
            live = False
            log.info("run %s: the answer started over after %d streamed characters", run_id, len(streamed))
        if live and piece.text:
            streamed += piece.text
            yield chunk({"content": piece.text})
    if final.status == "succeeded" and final.answer is not None:
        if final.answer.startswith(streamed) and len(final.answer) > len(streamed):
            yield chunk({"content": final.answer[len(streamed) :]})
        yield chunk({}, "stop")
        if with_usage:
            usage = await run_in_threadpool(_usage, run_id)
            yield _sse({**base, "choices": [], "usage": usage.model_dump()})
    else:
        status, message, code = _failure(final, config)
        yield _sse({"error": {"message": message, "type": "server_error", "param": None, "code": code}})
    yield "data: [DONE]\n\n"

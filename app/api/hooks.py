"""POST /api/hooks/{trigger_id}: inbound webhooks that start a workflow's run.

Public by design: the signature is the authentication (app.auth.policy.SELF_AUTHENTICATED, so the
auth gate reads no cookie or key here). In order, a delivery is: looked up (404), read up to the
trigger's body cap without buffering more (413), verified (401), checked against pause (409) and
the trigger's rate (429), parsed (422) and fired once per delivery id (202, or 200 for a replay).
No refusal starts a run or records a delivery.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from app.db import db_session
from app.problems import MEDIA_TYPE, error_response
from engine import rate_limit, run_events, trigger_fire, triggers, webhook_verify
from engine.errors import ErrorCode, FlowloomError, PolicyViolation, StepError
from engine.runs import get_run
from engine.secrets import resolve_for_node
from engine.trigger_config import WebhookConfig
from engine.triggers import TriggerRow
from engine.workflow_calls import workspace_of

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

# The node type a trigger's signing secret is resolved for: list it in a secret's allowed node
# types to let webhook triggers (and nothing else) use it.
SECRET_NODE_TYPE = "trigger.webhook"
# Headers a "wrapped" trigger passes to the run: never signatures, cookies or credentials.
SAFE_HEADERS = ("content-type", "user-agent", "webhook-id")
DUPLICATE_HEADER = "Webhook-Duplicate"


class HookAnswer(BaseModel):
    """What a delivery started: the run (the first delivery's run for a replay)."""

    run_id: str | None
    status: str | None
    duplicate: bool = False
    # respond "last_node" only, once the run has ended: the run's outputs.
    outputs: dict[str, Any] | None = None


class _Refused(FlowloomError):
    """A refusal that carries response headers (Retry-After, Connection: close)."""

    code = ErrorCode.REQUEST_INVALID  # every refusal names its own code; this is the default

    def __init__(self, message: str, *, code: ErrorCode, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code)
        self.headers = headers or {}


def _webhook_trigger(trigger_id: str) -> TriggerRow:
    trigger = triggers.get_now(trigger_id)
    # Inactive (dropped from the latest version, disabled, invalid) is "gone" to the outside world;
    # paused is a state of a trigger that exists, told only to a caller that signed correctly.
    if trigger is None or trigger.kind != "webhook" or not trigger.active:
        raise FlowloomError(f"no webhook trigger {trigger_id[:100]!r}", code=ErrorCode.TRIGGER_NOT_FOUND)
    return trigger


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) as soon as it passes `limit`: declared or counted while streaming."""
    refusal = _Refused(
        f"the request body is larger than {limit:,} bytes, the most this trigger accepts (its max_body_bytes)",
        code=ErrorCode.BODY_TOO_LARGE,
        headers={"Connection": "close"},
    )
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise refusal
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise refusal
        chunks.append(chunk)
    return b"".join(chunks)


def _signing_key(trigger: TriggerRow) -> bytes:
    """The trigger's HMAC key from the secret store, its node-type binding respected."""
    name = trigger.config.secret
    try:
        value = resolve_for_node(
            name, node_id=trigger.key, node_type=SECRET_NODE_TYPE, field="config.secret",
            workspace_id=workspace_of(trigger.workflow_id),  # the workflow's workspace's secret
        )  # fmt: skip
        return webhook_verify.signing_key(value)
    except (StepError, PolicyViolation, ValueError) as exc:
        # The reason names the secret and workflow: for the server log, not for the sender.
        log.warning(
            "webhook trigger %s (%s): cannot verify deliveries: %s", trigger.id, trigger.workflow_name, exc
        )
        raise FlowloomError(
            "this trigger cannot verify deliveries right now: its signing secret is missing or not allowed "
            "for webhook triggers; the workflow's owner finds the reason in the server log",
            code=ErrorCode.SETTING_INVALID,
        ) from None


def _json_body(body: bytes) -> Any:
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    if not body.strip():
        raise FlowloomError("the body is empty; send JSON", code=ErrorCode.REQUEST_INVALID, field="body")
    try:
        return json.loads(body, parse_constant=no_constants)
    except (ValueError, RecursionError) as exc:
        detail = str(exc)[:200] if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise FlowloomError(
            f"the body is not JSON ({detail}); send a JSON object with Content-Type: application/json",
            code=ErrorCode.REQUEST_INVALID,
            field="body",
        ) from None


def _query(request: Request) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        query[key] = values[0] if len(values) == 1 else values
    return query


def _inputs(config: WebhookConfig, body: bytes, request: Request) -> dict[str, Any]:
    """The run's inputs: the JSON object itself, or {"body", "headers", "query"} when wrapped."""
    value = _json_body(body)
    if config.inputs == "wrapped":
        names = (*SAFE_HEADERS, config.id_header.lower()) if config.id_header else SAFE_HEADERS
        headers = {n: request.headers[n] for n in names if n in request.headers}
        return {"body": value, "headers": headers, "query": _query(request)}
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else f"a {type(value).__name__}"
        raise FlowloomError(
            f"the body is {kind}; this trigger takes a JSON object whose keys are the run's inputs "
            '(set the trigger\'s "inputs" to "wrapped" to accept any JSON)',
            code=ErrorCode.REQUEST_INVALID,
            field="body",
        )
    return value


def _run_status(run_id: str) -> str | None:
    with db_session() as session:
        return run_events.run_status(session.connection(), run_id)


async def _wait_for_end(run_id: str, timeout: float) -> str | None:
    """The run's status once it ended, or as it is when `timeout` passes; holds no thread meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        status = await run_in_threadpool(_run_status, run_id)
        left = deadline - time.monotonic()
        if status is None or status in run_events.TERMINAL_RUN or left <= 0:
            return status
        await run_events.wait_async(run_id, min(left, 2.0))


async def _answer(config: WebhookConfig, fired: trigger_fire.Fired) -> JSONResponse:
    headers = {DUPLICATE_HEADER: "true"} if fired.duplicate else {}
    answer: dict[str, Any] = {"run_id": fired.run_id, "status": None, "duplicate": fired.duplicate}
    ended = False
    if fired.run_id and config.respond == "last_node":
        answer["status"] = await _wait_for_end(fired.run_id, config.wait_s)
        if answer["status"] in run_events.TERMINAL_RUN:
            view = await run_in_threadpool(get_run, fired.run_id)
            answer["outputs"], ended = (view.outputs if view else None), True
    elif fired.run_id:
        answer["status"] = await run_in_threadpool(_run_status, fired.run_id)
    code = 200 if fired.duplicate or ended else 202
    return JSONResponse(answer, status_code=code, headers=headers)


_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "JSON, signed as the trigger's config says (Standard Webhooks or an HMAC header)",
        "content": {"application/json": {"schema": {}}},
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": HookAnswer, "description": "a replayed delivery (duplicate), or the ended run's outputs"},
    202: {"model": HookAnswer, "description": "the run started"},
    **{
        code: {"description": text, "content": {MEDIA_TYPE: {}}}
        for code, text in (
            (401, "signature_invalid or timestamp_out_of_range"), (404, "trigger_not_found"),
            (409, "trigger_paused"), (413, "body_too_large"), (422, "not JSON, or inputs invalid"),
            (429, "rate_limited (Retry-After)"), (503, "the signing secret is unavailable"),
        )
    },
}  # fmt: skip


@router.post(
    "/hooks/{trigger_id}",
    status_code=202,
    response_model=HookAnswer,
    responses=_RESPONSES,
    openapi_extra=_REQUEST_BODY,
    summary="Deliver an inbound webhook to a trigger",
)
async def receive_webhook(trigger_id: str, request: Request) -> JSONResponse:
    """Verify a signed delivery and start the trigger's workflow once per delivery id."""
    try:
        trigger = await run_in_threadpool(_webhook_trigger, trigger_id)
        config: WebhookConfig = trigger.config
        body = await _read_body(request, config.max_body_bytes)
        key = await run_in_threadpool(_signing_key, trigger)
        delivery = webhook_verify.verify(config, key, request.headers, body, now=time.time())
        if trigger.paused:
            raise FlowloomError(f"trigger {trigger.key!r} is paused; deliver again once it is resumed",
                                code=ErrorCode.TRIGGER_PAUSED)  # fmt: skip
        wait = await run_in_threadpool(rate_limit.take, f"webhook:{trigger.id}", config.rate_per_minute)
        if wait:
            raise _Refused(
                f"trigger {trigger.key!r} takes at most {config.rate_per_minute} deliveries a minute; "
                f"retry in {rate_limit.retry_after(wait)} s",
                code=ErrorCode.RATE_LIMITED,
                headers={"Retry-After": rate_limit.retry_after(wait)},
            )
        inputs = _inputs(config, body, request)
        fired = await run_in_threadpool(trigger_fire.fire, trigger, delivery, inputs)
    except _Refused as exc:
        log.info("webhook %s refused: %s", trigger_id[:100], exc.code)
        return error_response(exc, headers=exc.headers)
    except FlowloomError as exc:
        log.info("webhook %s refused: %s", trigger_id[:100], exc.code)
        raise
    return await _answer(config, fired)

"""The `webhook.send` node: a signed, idempotent outbound POST of a JSON payload."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.context import StepContext
from engine.errors import StepError
from engine.secrets import REFERENCE_PATTERN as NAME_PATTERN
from engine.secrets import resolve as resolve_secret
from nodes.http import raise_for_status, response_output, send
from nodes.registry import Port, register

SIGNATURE_HEADER = "X-Flowloom-Signature"
TIMESTAMP_HEADER = "X-Flowloom-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class WebhookConfig(BaseModel):
    """Config of `webhook.send`."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, description="Receiver URL; the egress policy must allow its host")
    payload: Any = Field(
        None,
        description="JSON payload to send (an object, or JSON text); empty = send the input value",
        json_schema_extra={"format": "multiline"},
    )
    secret: str = Field(
        "",
        pattern=NAME_PATTERN,
        description=(
            "Name of the HMAC signing secret, read from the environment variable FLOWLOOM_SECRET_<NAME> "
            "(the value is never stored in the workflow); empty = unsigned"
        ),
        json_schema_extra={"format": "secret"},
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra request headers",
        json_schema_extra={"format": "keyvalue"},
    )
    timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds before the request gives up")


def canonical_json(payload: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces), so every retry sends the same body."""
    try:
        return json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise StepError(f"payload: not JSON-serialisable: {exc}", retryable=False) from exc


def _configured_payload(payload: Any) -> Any:
    # The editor's text box (and a rendered template) gives JSON text; send the value it spells.
    if not isinstance(payload, str):
        return payload
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise StepError(f"payload: not valid JSON text: {exc}", retryable=False) from exc


def sign(body: bytes, secret: str) -> str:
    """The signature header value: sha256=<hex HMAC-SHA256 of the exact body bytes>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@register(
    "webhook.send",
    category="tool",
    label="Send webhook",
    config=WebhookConfig,
    inputs={"in": Port("any", required=False, description="the payload unless one is configured")},
    outputs={"out": Port("any", description="{status, body}")},
    icon="send",
)
async def send_webhook(ctx: StepContext, cfg: WebhookConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """POST the payload as signed JSON with an idempotency key stable across retries."""
    secret = resolve_secret(cfg.secret, field="secret")
    body = canonical_json(_configured_payload(cfg.payload) if cfg.payload is not None else inputs.get("in"))
    ours = {"content-type", IDEMPOTENCY_HEADER.lower(), TIMESTAMP_HEADER.lower(), SIGNATURE_HEADER.lower()}
    headers = {
        **{k: v for k, v in cfg.headers.items() if k.lower() not in ours},
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: ctx.idempotency_key,
        TIMESTAMP_HEADER: str(int(time.time())),
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    resp = await send(ctx.http, "POST", cfg.url, timeout=cfg.timeout_s, headers=headers, content=body)
    raise_for_status(resp, [], f"webhook {cfg.url}")
    out = response_output(resp)
    return {"out": {"status": out["status"], "body": out["body"]}}

"""The `webhook.send` node: an idempotent outbound POST of a JSON payload, signed per Standard Webhooks.

Signed requests carry `webhook-id` (stable across retries: the step's idempotency key),
`webhook-timestamp` (seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>">`), as https://www.standardwebhooks.com specifies; receivers verify
them with `standardwebhooks.Webhook(secret).verify(body, headers)` (docs/webhooks.md).
"""

from __future__ import annotations

import binascii
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from standardwebhooks import Webhook

from engine.contract import SECRET_REFERENCE_PATTERN as NAME_PATTERN
from engine.contract import (
    ErrorCode,
    HttpAuthField,
    Port,
    SecretHeadersField,
    StepContext,
    StepError,
    merge_headers,
    raise_for_status,
    register,
    response_output,
    secret_headers_of,
    send_with_secrets,
)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SECRET_PREFIX = "whsec_"  # a value starting with it is base64 key bytes; otherwise the text's UTF-8 bytes


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
            "Name of the signing secret (Secrets page; whsec_<base64> or any text); its bindings must "
            "allow this URL. Empty = unsigned"
        ),
        json_schema_extra={"format": "secret"},
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra request headers",
        json_schema_extra={"format": "keyvalue"},
    )
    auth: HttpAuthField = None
    secret_headers: SecretHeadersField
    timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds before the request gives up")


def canonical_json(payload: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces), so every retry sends the same body."""
    try:
        return json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise StepError(f"payload: not JSON-serialisable: {exc}", retryable=False,
                        code=ErrorCode.PAYLOAD_INVALID, field="payload") from exc  # fmt: skip


def _configured_payload(payload: Any) -> Any:
    # The editor's text box (and a rendered template) gives JSON text; send the value it spells.
    if not isinstance(payload, str):
        return payload
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise StepError(f"payload: not valid JSON text: {exc}", retryable=False,
                        code=ErrorCode.PAYLOAD_INVALID, field="payload") from exc  # fmt: skip


def signer(secret: str) -> Webhook:
    """The Standard Webhooks signer for a secret value: whsec_<base64 key>, else the text's UTF-8 bytes."""
    try:
        return Webhook(secret) if secret.startswith(SECRET_PREFIX) else Webhook(secret.encode())
    except (binascii.Error, ValueError) as exc:
        raise StepError(f"secret: the whsec_ value is not valid base64 ({exc})", retryable=False) from None


def signature_headers(
    secret: str, message_id: str, body: bytes, now: datetime | None = None
) -> dict[str, str]:
    """webhook-id, webhook-timestamp and webhook-signature for `body`."""
    timestamp = (now or datetime.now(UTC)).replace(microsecond=0)
    signature = signer(secret).sign(message_id, timestamp, body.decode())
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(int(timestamp.timestamp())),
        SIGNATURE_HEADER: signature,
    }


@register(
    "webhook.send",
    category="tool",
    label="Send webhook",
    config=WebhookConfig,
    inputs={"in": Port("any", required=False, description="the payload unless one is configured")},
    outputs={"out": Port("object", description="{status, body}")},
    icon="send",
)
async def send_webhook(ctx: StepContext, cfg: WebhookConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """POST the payload as signed JSON with an idempotency key stable across retries."""
    # Every secret is resolved (and its bindings checked) before any connection is opened.
    signing = ctx.secret(cfg.secret, field="secret", destination=cfg.url) if cfg.secret else None
    secret = secret_headers_of(ctx, cfg.url, cfg.auth, cfg.secret_headers)
    body = canonical_json(_configured_payload(cfg.payload) if cfg.payload is not None else inputs.get("in"))
    ours = {"content-type", IDEMPOTENCY_HEADER.lower(), ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER}
    headers = {
        **{k: v for k, v in cfg.headers.items() if k.lower() not in ours},
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: ctx.idempotency_key,
    }
    if signing is not None:
        headers.update(signature_headers(signing, ctx.idempotency_key, body))
    headers = merge_headers(headers, secret)
    uses_secret = {**secret, **({"signature": "1"} if signing else {})}
    resp = await send_with_secrets(
        ctx, uses_secret, "POST", cfg.url, timeout=cfg.timeout_s, headers=headers, content=body
    )
    raise_for_status(resp, [], f"webhook {cfg.url}")
    out = response_output(resp)
    return {"out": {"status": out["status"], "body": out["body"]}}

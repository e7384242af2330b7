"""Verify an inbound webhook before anything reads its body: Standard Webhooks or a plain HMAC header.

Pure: the caller hands in the signing key, the headers, the raw body and the time. A refusal is a
FlowloomError whose code says why (signature_invalid, timestamp_out_of_range) and whose message
says what to fix; it never contains the key or a signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from engine.errors import ErrorCode, FlowloomError
from engine.trigger_config import WebhookConfig

# A secret value starting with it is the base64 of the key bytes (as webhook.send signs outbound).
SECRET_PREFIX = "whsec_"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
MAX_DELIVERY_ID = 300  # trigger_deliveries.delivery_key holds this much


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret value: `whsec_<base64>` decoded, any other value as its UTF-8 bytes.

    ValueError when a whsec_ value is not base64 or the key is empty.
    """
    if secret.startswith(SECRET_PREFIX):
        try:
            # Padding added as the standardwebhooks libraries do, so unpadded keys work too.
            key = base64.b64decode(secret[len(SECRET_PREFIX) :] + "==")
        except (binascii.Error, ValueError):
            raise ValueError("the whsec_ value is not valid base64") from None
    else:
        key = secret.encode()
    if not key:
        raise ValueError("the signing key is empty")
    return key


def _refused(message: str, code: ErrorCode = ErrorCode.SIGNATURE_INVALID) -> FlowloomError:
    return FlowloomError(message, code=code)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1,<base64>` entries of a webhook-signature header (others are skipped)."""
    found = []
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify_standard(
    key: bytes, headers: Mapping[str, str], body: bytes, *, now: float, tolerance_s: int = 300
) -> str:
    """The webhook-id of a delivery whose Standard Webhooks signature verifies.

    The signature is HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>"; the header may hold
    several space-separated `v1,<base64>` signatures (key rotation), one match suffices. The
    timestamp must be within `tolerance_s` of `now` either way; it is checked after the signature,
    so an unsigned caller learns nothing but "signature invalid".
    """
    h = _lower(headers)
    missing = [n for n in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER) if not h.get(n, "").strip()]
    if missing:
        raise _refused(
            f"missing the {', '.join(missing)} header{'s' if len(missing) > 1 else ''}: "
            "this trigger expects a Standard Webhooks signature (webhook-id, webhook-timestamp, webhook-signature)"
        )
    msg_id, timestamp = h[ID_HEADER].strip(), h[TIMESTAMP_HEADER].strip()
    if not timestamp.isascii() or not timestamp.isdigit():
        raise _refused("webhook-timestamp must be the send time in whole seconds since the Unix epoch")
    signatures = _v1_signatures(h[SIGNATURE_HEADER])
    if not signatures:
        raise _refused('webhook-signature holds no "v1,<base64>" signature')
    expected = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise _refused(
            "the webhook signature does not match: sign the raw body with the trigger's secret "
            "(Standard Webhooks: HMAC-SHA256 of '<webhook-id>.<webhook-timestamp>.<body>')"
        )
    skew = now - int(timestamp)
    if abs(skew) > tolerance_s:
        when = "old" if skew > 0 else "in the future"
        raise _refused(
            f"webhook-timestamp is {abs(int(skew))} s {when}; at most {tolerance_s} s either way is "
            "accepted (a replay, or the sender's clock is off)",
            ErrorCode.TIMESTAMP_OUT_OF_RANGE,
        )
    if len(msg_id) > MAX_DELIVERY_ID:
        raise _refused(f"webhook-id is longer than {MAX_DELIVERY_ID} characters", ErrorCode.REQUEST_INVALID)
    return msg_id


def verify_hmac(key: bytes, headers: Mapping[str, str], body: bytes, *, header: str, prefix: str) -> None:
    """Check that `header` holds `prefix` + the hex HMAC-SHA256 of the raw body (GitHub style)."""
    value = _lower(headers).get(header.lower(), "").strip()
    if not value:
        raise _refused(
            f"missing the {header} header: this trigger expects {prefix}<hex HMAC-SHA256 of the body>"
        )
    if not value.lower().startswith(prefix.lower()):
        raise _refused(f"the {header} header must start with {prefix!r}")
    given = value[len(prefix) :].strip().lower().encode()
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, given):
        raise _refused(f"the {header} signature does not match: sign the raw body with the trigger's secret")


def verify(config: WebhookConfig, key: bytes, headers: Mapping[str, str], body: bytes, *, now: float) -> str:
    """Verify a delivery as the trigger's config says; its delivery id (what replays are known by).

    Standard mode: the webhook-id. HMAC mode: the value of `config.id_header`, or when no id
    header is configured "sha256:<hex of the body>" (the same body twice is then one delivery).
    """
    if config.signature == "standard":
        return verify_standard(key, headers, body, now=now, tolerance_s=config.tolerance_s)
    verify_hmac(key, headers, body, header=config.hmac_header, prefix=config.hmac_prefix)
    if not config.id_header:
        return "sha256:" + hashlib.sha256(body).hexdigest()
    delivery = _lower(headers).get(config.id_header.lower(), "").strip()
    if not delivery:
        raise _refused(f"missing the {config.id_header} header (the delivery id)", ErrorCode.REQUEST_INVALID)
    if len(delivery) > MAX_DELIVERY_ID:
        raise _refused(
            f"the {config.id_header} header is longer than {MAX_DELIVERY_ID} characters",
            ErrorCode.REQUEST_INVALID,
        )
    return delivery

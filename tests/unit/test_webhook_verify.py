"""Inbound webhook verification (engine.webhook_verify), against signatures the official
`standardwebhooks` package makes as a sender would."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from engine.errors import ErrorCode, FlowloomError
from engine.trigger_config import WebhookConfig
from engine.webhook_verify import signing_key, verify, verify_hmac, verify_standard

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
NOW = 1_750_000_000.0
BODY = b'{"order": 42, "name": "Zo\xc3\xab"}'


def signed(
    body: bytes = BODY, *, secret: str | bytes = SECRET, msg_id: str = "msg_1", at: float = NOW
) -> dict:
    timestamp = datetime.fromtimestamp(at, UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": Webhook(secret).sign(msg_id, timestamp, body.decode()),
    }


def refusal(call) -> FlowloomError:
    with pytest.raises(FlowloomError) as caught:
        call()
    return caught.value


def test_a_whsec_secret_is_base64_and_any_other_value_its_utf8_bytes():
    assert signing_key(SECRET) == b"k" * 32
    assert signing_key("plain text secret") == b"plain text secret"
    with pytest.raises(ValueError, match="base64"):
        signing_key("whsec_not*base64!")
    with pytest.raises(ValueError, match="empty"):
        signing_key("whsec_")


def test_a_signature_made_by_the_official_package_verifies_and_gives_the_webhook_id():
    assert verify_standard(signing_key(SECRET), signed(), BODY, now=NOW) == "msg_1"
    # A non-whsec secret signs with its UTF-8 bytes, as webhook.send does outbound.
    headers = signed(secret=b"plain text secret")
    assert verify_standard(signing_key("plain text secret"), headers, BODY, now=NOW) == "msg_1"


def test_several_signatures_one_matching_is_enough_and_header_names_are_case_insensitive():
    good = signed()["webhook-signature"]
    other = Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).sign(
        "msg_1", datetime.fromtimestamp(NOW, UTC), "x"
    )
    headers = {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(int(NOW)),
               "Webhook-Signature": f"v1a,abc {other} garbage {good}"}  # fmt: skip
    assert verify_standard(signing_key(SECRET), headers, BODY, now=NOW) == "msg_1"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda h, b: (h, b + b" "), "does not match"),  # body changed
        (lambda h, b: ({**h, "webhook-id": "msg_2"}, b), "does not match"),  # id swapped
        (lambda h, b: ({**h, "webhook-timestamp": str(int(NOW) + 1)}, b), "does not match"),
        (lambda h, b: ({**h, "webhook-signature": "v2,AAAA"}, b), 'no "v1,<base64>"'),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "webhook-signature"),
        (lambda h, b: ({**h, "webhook-timestamp": "soon"}, b), "whole seconds"),
    ],
)
def test_a_changed_or_incomplete_delivery_is_refused_as_signature_invalid(change, needle):
    headers, body = change(signed(), BODY)
    exc = refusal(lambda: verify_standard(signing_key(SECRET), headers, body, now=NOW))
    assert exc.code == ErrorCode.SIGNATURE_INVALID and needle in str(exc)


def test_the_wrong_secret_is_refused_and_the_message_holds_no_key_or_signature():
    headers = signed(secret="whsec_" + base64.b64encode(b"w" * 32).decode())
    exc = refusal(lambda: verify_standard(signing_key(SECRET), headers, BODY, now=NOW))
    assert exc.code == ErrorCode.SIGNATURE_INVALID
    assert SECRET not in str(exc) and headers["webhook-signature"][3:] not in str(exc)


@pytest.mark.parametrize(("sent_at", "word"), [(NOW - 301, "old"), (NOW + 301, "in the future")])
def test_a_timestamp_outside_the_tolerance_either_way_is_refused(sent_at, word):
    headers = signed(at=sent_at)
    exc = refusal(lambda: verify_standard(signing_key(SECRET), headers, BODY, now=NOW))
    assert exc.code == ErrorCode.TIMESTAMP_OUT_OF_RANGE and word in str(exc) and "301 s" in str(exc)
    assert verify_standard(signing_key(SECRET), signed(at=NOW - 299), BODY, now=NOW) == "msg_1"
    # The tolerance is the trigger's: 600 s lets the same delivery through.
    assert verify_standard(signing_key(SECRET), headers, BODY, now=NOW, tolerance_s=600) == "msg_1"


def test_an_old_timestamp_with_a_bad_signature_says_only_signature_invalid():
    headers = {**signed(at=NOW - 3600), "webhook-signature": signed(body=b"other")["webhook-signature"]}
    assert (
        refusal(lambda: verify_standard(signing_key(SECRET), headers, BODY, now=NOW)).code
        == ErrorCode.SIGNATURE_INVALID
    )


def hex_sig(body: bytes, key: bytes = b"gh-secret") -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def test_hmac_mode_checks_the_configured_header_and_prefix():
    key = signing_key("gh-secret")
    verify_hmac(
        key,
        {"X-Hub-Signature-256": "sha256=" + hex_sig(BODY)},
        BODY,
        header="X-Hub-Signature-256",
        prefix="sha256=",
    )
    verify_hmac(key, {"x-sig": hex_sig(BODY).upper()}, BODY, header="X-Sig", prefix="")
    for headers, needle in [
        ({}, "missing the X-Sig header"),
        ({"x-sig": hex_sig(BODY)}, "must start with 'sha256='"),
        ({"x-sig": "sha256=" + hex_sig(BODY + b"!")}, "does not match"),
        ({"x-sig": "sha256=" + hex_sig(BODY, b"other")}, "does not match"),
        ({"x-sig": "sha256=zz\u00e9"}, "does not match"),
    ]:
        exc = refusal(lambda h=headers: verify_hmac(key, h, BODY, header="X-Sig", prefix="sha256="))
        assert exc.code == ErrorCode.SIGNATURE_INVALID and needle in str(exc)


def test_the_delivery_id_is_the_webhook_id_the_id_header_or_the_body_hash():
    standard = WebhookConfig(secret="s")
    assert verify(standard, signing_key(SECRET), signed(msg_id="evt_9"), BODY, now=NOW) == "evt_9"
    headers = {"X-Signature-256": "sha256=" + hex_sig(BODY), "X-Delivery": "d-1"}
    by_header = WebhookConfig(secret="s", signature="hmac", id_header="X-Delivery")
    assert verify(by_header, b"gh-secret", headers, BODY, now=NOW) == "d-1"
    by_body = WebhookConfig(secret="s", signature="hmac")
    assert (
        verify(by_body, b"gh-secret", headers, BODY, now=NOW) == "sha256:" + hashlib.sha256(BODY).hexdigest()
    )
    exc = refusal(
        lambda: verify(
            by_header, b"gh-secret", {"X-Signature-256": headers["X-Signature-256"]}, BODY, now=NOW
        )
    )
    assert exc.code == ErrorCode.REQUEST_INVALID and "X-Delivery" in str(exc)
    # HMAC mode has no timestamp: a signed body verifies whenever it comes.
    assert verify(by_body, b"gh-secret", headers, BODY, now=NOW + 10**6).startswith("sha256:")

"""The push body and both signatures (spec §9.3-§9.5), against a fixed vector.

The expected hex and base64 values were produced outside Python with
`openssl dgst -sha256 -hmac ...` / `-macopt hexkey:...` over the same bytes, and each test also
recomputes them here with hmac/hashlib/base64, so neither side is checked against itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chronos_server.delivery.signing import (
    chronos_signature,
    request_body,
    signature_headers,
    standard_webhooks_signature,
)
from tests.delivery.fakes import SECRET

EXECUTION_ID = "exec-7"
TIMESTAMP = 1_768_467_600
BODY = (
    '{"job_id":"job-1","handler":"report.daily","execution_id":"exec-7",'
    '"scheduled_for":"2026-01-15T09:00:00.000Z","attempt":2,'
    '"payload":{"format":"pdf","n":1,"name":"Zoë"}}'
).encode()
EXPECTED_HEX = "597c595fddaf816608f23059e773d3231305552a6379456178967d15e499678d"
EXPECTED_B64 = "ghSeYPE0N8hBCDRgz7guRSg6ICzM3Y9jA4uwy9jsZqk="


def body_for(execution_id: str = EXECUTION_ID) -> bytes:
    return request_body(
        job_id="job-1",
        handler="report.daily",
        execution_id=execution_id,
        scheduled_for="2026-01-15T09:00:00.000Z",
        attempt=2,
        payload={"format": "pdf", "n": 1, "name": "Zoë"},
    )


def test_body_is_compact_utf8_with_keys_in_spec_order() -> None:
    body = body_for()
    assert body == BODY
    assert list(json.loads(body)) == [
        "job_id",
        "handler",
        "execution_id",
        "scheduled_for",
        "attempt",
        "payload",
    ]
    assert "Zoë".encode() in body  # raw UTF-8, not \u escapes


def test_body_carries_null_handler_and_payload() -> None:
    body = request_body(
        job_id="j",
        handler=None,
        execution_id="e",
        scheduled_for="2026-01-15T09:00:00.000Z",
        attempt=1,
        payload=None,
    )
    assert body == (
        b'{"job_id":"j","handler":null,"execution_id":"e",'
        b'"scheduled_for":"2026-01-15T09:00:00.000Z","attempt":1,"payload":null}'
    )


def test_chronos_signature_matches_the_fixed_vector() -> None:
    message = f"{EXECUTION_ID}.{TIMESTAMP}.".encode() + BODY
    independent = hmac.new(SECRET.encode("utf-8"), message, hashlib.sha256).hexdigest()
    assert independent == EXPECTED_HEX
    assert chronos_signature(SECRET, EXECUTION_ID, TIMESTAMP, BODY) == f"sha256={EXPECTED_HEX}"


def test_standard_webhooks_signature_matches_the_fixed_vector() -> None:
    key = bytes(range(32))
    assert base64.b64decode(SECRET.removeprefix("whsec_")) == key
    message = f"{EXECUTION_ID}.{TIMESTAMP}.".encode() + BODY
    independent = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    assert independent == EXPECTED_B64
    assert standard_webhooks_signature(SECRET, EXECUTION_ID, TIMESTAMP, BODY) == (
        f"v1,{EXPECTED_B64}"
    )


def test_signature_headers_are_the_six_documented_ones() -> None:
    assert signature_headers(SECRET, EXECUTION_ID, TIMESTAMP, BODY) == {
        "X-Chronos-Signature": f"sha256={EXPECTED_HEX}",
        "X-Chronos-Timestamp": str(TIMESTAMP),
        "X-Chronos-Delivery-Id": EXECUTION_ID,
        "webhook-id": EXECUTION_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": f"v1,{EXPECTED_B64}",
    }


def test_every_input_changes_the_signature() -> None:
    base = chronos_signature(SECRET, EXECUTION_ID, TIMESTAMP, BODY)
    assert chronos_signature(SECRET, "exec-8", TIMESTAMP, BODY) != base
    assert chronos_signature(SECRET, EXECUTION_ID, TIMESTAMP + 1, BODY) != base
    assert chronos_signature(SECRET, EXECUTION_ID, TIMESTAMP, BODY + b" ") != base
    assert chronos_signature(SECRET + "x", EXECUTION_ID, TIMESTAMP, BODY) != base


def test_standardwebhooks_library_accepts_our_headers() -> None:
    now = int(time.time())  # the library checks the timestamp against its own clock
    body = body_for("msg_2f9a")
    headers = signature_headers(SECRET, "msg_2f9a", now, body)
    payload = Webhook(SECRET).verify(body, headers)
    assert payload["execution_id"] == "msg_2f9a"
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", headers)
    other = "whsec_" + base64.b64encode(b"\x01" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


# --- rotation: the previous secret signs too during an overlap ---------------------------------

OLD = "whsec_" + base64.b64encode(b"\x02" * 32).decode()


def test_overlap_adds_the_previous_signatures_and_keeps_the_new_ones_as_they_were() -> None:
    alone = signature_headers(SECRET, EXECUTION_ID, TIMESTAMP, BODY)
    both = signature_headers(SECRET, EXECUTION_ID, TIMESTAMP, BODY, previous=OLD)
    # X-Chronos-Signature is untouched: one `sha256=<hex>` by the secret in force.
    extended = {"X-Chronos-Signature-Previous", "webhook-signature"}
    assert {k: v for k, v in both.items() if k not in extended} == {
        k: v for k, v in alone.items() if k not in extended
    }
    assert both["X-Chronos-Signature"] == f"sha256={EXPECTED_HEX}"
    assert both["X-Chronos-Signature-Previous"] == chronos_signature(
        OLD, EXECUTION_ID, TIMESTAMP, BODY
    )
    old_b64 = standard_webhooks_signature(OLD, EXECUTION_ID, TIMESTAMP, BODY)
    assert both["webhook-signature"] == f"v1,{EXPECTED_B64} {old_b64}"
    assert "X-Chronos-Signature-Previous" not in alone


def test_a_previous_secret_equal_to_the_current_one_adds_nothing() -> None:
    same = signature_headers(SECRET, EXECUTION_ID, TIMESTAMP, BODY, previous=SECRET)
    assert same == signature_headers(SECRET, EXECUTION_ID, TIMESTAMP, BODY)


def test_standardwebhooks_library_accepts_either_secret_during_the_overlap_only() -> None:
    now = int(time.time())  # the library checks the timestamp against its own clock
    body = body_for("msg_rot")
    during = signature_headers(SECRET, "msg_rot", now, body, previous=OLD)
    assert Webhook(SECRET).verify(body, during)["execution_id"] == "msg_rot"
    assert Webhook(OLD).verify(body, during)["execution_id"] == "msg_rot"
    stranger = "whsec_" + base64.b64encode(b"\x03" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, during)
    after = signature_headers(SECRET, "msg_rot", now, body)
    Webhook(SECRET).verify(body, after)
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD).verify(body, after)

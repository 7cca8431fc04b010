"""Push request bodies and signatures (spec §9.3–§9.5, G-20). Pure: no I/O, no clock.

Both signatures cover the same content, `{execution_id}.{timestamp}.{raw body}`:
- Chronos: `X-Chronos-Signature: sha256=<hex HMAC-SHA256>` keyed with the secret string's UTF-8
  bytes as displayed (`whsec_...` included);
- Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256>` keyed with the base64-decoded
  part after `whsec_`, so any Standard Webhooks library can verify it.

During a rotation's overlap a delivery is signed by the previous secret too: its Standard
Webhooks signature follows the new one in `webhook-signature` (space-separated, as that spec
provides for rotation), and its Chronos signature goes in `X-Chronos-Signature-Previous`, so that
`X-Chronos-Signature` always holds exactly one `sha256=<hex>` by the secret in force and a
single-signature verifier keeps working once given the new secret.
"""

from __future__ import annotations

import base64
import hmac
import json
from functools import lru_cache
from typing import Any

SECRET_PREFIX = "whsec_"
PREVIOUS_SIGNATURE_HEADER = "X-Chronos-Signature-Previous"
# One encoder for every body: `json.dumps` with options builds a new encoder per call.
_BODY_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def request_body(
    *,
    job_id: str,
    handler: str | None,
    execution_id: str,
    scheduled_for: str,
    attempt: int,
    payload: dict[str, Any] | None,
) -> bytes:
    """The push body: UTF-8, compact separators, keys in the spec's order. Serialised once."""
    body = {
        "job_id": job_id,
        "handler": handler,
        "execution_id": execution_id,
        "scheduled_for": scheduled_for,
        "attempt": attempt,
        "payload": payload,
    }
    return _BODY_ENCODER.encode(body).encode()


def signed_content(execution_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{execution_id}.{timestamp}.".encode() + body


def chronos_signature(secret: str, execution_id: str, timestamp: int, body: bytes) -> str:
    content = signed_content(execution_id, timestamp, body)
    return "sha256=" + hmac.digest(secret.encode(), content, "sha256").hex()


@lru_cache(maxsize=256)
def standard_webhooks_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    content = signed_content(msg_id, timestamp, body)
    digest = hmac.digest(standard_webhooks_key(secret), content, "sha256")
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secret: str,
    execution_id: str,
    timestamp: int,
    body: bytes,
    *,
    previous: str | None = None,
) -> dict[str, str]:
    """The six signing headers; given the `previous` secret (a rotation's overlap), a seventh,
    `X-Chronos-Signature-Previous`, and a second `webhook-signature` entry."""
    # `hmac.digest` is OpenSSL's one-shot HMAC: a push burst signs thousands of requests.
    content = signed_content(execution_id, timestamp, body)
    chronos = hmac.digest(secret.encode(), content, "sha256").hex()
    standard = hmac.digest(standard_webhooks_key(secret), content, "sha256")
    headers = {
        "X-Chronos-Signature": "sha256=" + chronos,
        "X-Chronos-Timestamp": str(timestamp),
        "X-Chronos-Delivery-Id": execution_id,
        "webhook-id": execution_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(standard).decode(),
    }
    if previous is not None and previous != secret:
        old_chronos = hmac.digest(previous.encode(), content, "sha256").hex()
        old_standard = hmac.digest(standard_webhooks_key(previous), content, "sha256")
        headers[PREVIOUS_SIGNATURE_HEADER] = "sha256=" + old_chronos
        headers["webhook-signature"] += " v1," + base64.b64encode(old_standard).decode()
    return headers

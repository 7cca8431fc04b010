"""Verifying Chronos push deliveries on the receiving side (spec §9.4-§9.5, G-50).

    from chronos_worker import verify_signature

    if not verify_signature(secret, request.headers, raw_body):
        return 401

`verify_signature` checks the Chronos headers (`X-Chronos-Signature`, `X-Chronos-Timestamp`,
`X-Chronos-Delivery-Id`); `verify_standard_webhook` checks the Standard Webhooks headers
(`webhook-id`, `webhook-timestamp`, `webhook-signature`) the server sends alongside. Both need the
raw body bytes exactly as received, never re-serialised JSON. Standard library only; this module
never imports `chronos_server`.

Secret rotation (`chronos secrets rotate --overlap 24h`): for the overlap, deliveries are signed
by the new secret AND the previous one, so a receiver given either secret accepts them and can be
redeployed with the new one at any time in the overlap. The Chronos signature by the previous
secret comes in `X-Chronos-Signature-Previous` (`X-Chronos-Signature` always holds the new one);
the Standard Webhooks one is a second entry in `webhook-signature`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["verify_signature", "verify_standard_webhook"]

SIGNATURE_PREFIX = "sha256="
SIGNATURE_HEADER = "X-Chronos-Signature"
PREVIOUS_SIGNATURE_HEADER = "X-Chronos-Signature-Previous"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300


def _header(headers: Mapping[str, str], name: str) -> str:
    """Case-insensitive lookup that works on a plain dict as well as on framework header maps."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value or ""


def _fresh(timestamp: str, tolerance: int, now: float | None) -> bool:
    # ASCII digits only, and short: int() of thousands of digits raises instead of answering.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 15):
        return False
    current = time.time() if now is None else now
    return abs(current - int(timestamp)) <= tolerance


def _signed_content(message_id: str, timestamp: str, raw_body: bytes) -> bytes:
    return message_id.encode() + b"." + timestamp.encode() + b"." + raw_body


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    raw_body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """True when a Chronos signature is valid and its timestamp within `tolerance` seconds.

    All three headers are required; the HMAC-SHA256 key is the secret string as displayed
    (`whsec_...` included); the comparison is constant-time. During a rotation's overlap the
    signature by the previous secret in `X-Chronos-Signature-Previous` is accepted too, so
    either secret verifies. `now` (Unix seconds) is for tests.
    """
    signature = _header(headers, SIGNATURE_HEADER)
    timestamp = _header(headers, "X-Chronos-Timestamp")
    delivery_id = _header(headers, "X-Chronos-Delivery-Id")
    if not (signature.startswith(SIGNATURE_PREFIX) and delivery_id):
        return False
    if not _fresh(timestamp, tolerance, now):
        return False
    content = _signed_content(delivery_id, timestamp, raw_body)
    expected = hmac.new(secret.encode(), content, hashlib.sha256).hexdigest().encode()
    found = False
    for candidate in (signature, _header(headers, PREVIOUS_SIGNATURE_HEADER)):
        if candidate.startswith(SIGNATURE_PREFIX):
            value = candidate[len(SIGNATURE_PREFIX) :].encode()
            found |= hmac.compare_digest(value, expected)  # both compared, whichever matches
    return found


def verify_standard_webhook(
    secret: str,
    headers: Mapping[str, str],
    raw_body: bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> bool:
    """The same check over the Standard Webhooks headers: the key is the base64-decoded part of
    the secret after `whsec_`, and `webhook-signature` may list several space-separated
    `v1,<base64>` signatures (any one matching is enough: during a rotation's overlap the server
    sends the new secret's and the previous one's)."""
    message_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not (message_id and signatures) or not _fresh(timestamp, tolerance, now):
        return False
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        return False
    digest = hmac.new(key, _signed_content(message_id, timestamp, raw_body), hashlib.sha256)
    expected = base64.b64encode(digest.digest())
    found = False
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            found = True  # keep going: the time taken does not depend on which one matched
    return found

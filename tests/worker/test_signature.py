"""`chronos_worker.verify_signature` / `verify_standard_webhook` against signatures made by the
server's signing code and by hand (spec §9.5)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from chronos_server.delivery.signing import request_body, signature_headers
from chronos_worker import verify_signature, verify_standard_webhook

SECRET = "whsec_" + base64.b64encode(b"chronos-worker-signature-tests!!").decode()
NOW = 1_800_000_000
EXEC_ID = "0d6f3c1e-6a8b-4f6e-9a51-2b1b0c7d9e10"
BODY = request_body(
    job_id="a1b2c3d4",
    handler="generate-report",
    execution_id=EXEC_ID,
    scheduled_for="2027-01-15T08:00:00.000Z",
    attempt=1,
    payload={"format": "pdf"},
)


def server_headers(timestamp: int = NOW, secret: str = SECRET) -> dict[str, str]:
    return signature_headers(secret, EXEC_ID, timestamp, BODY)


def by_hand(timestamp: str, body: bytes = BODY, exec_id: str = EXEC_ID) -> dict[str, str]:
    message = f"{exec_id}.{timestamp}.".encode() + body
    digest = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    return {
        "x-chronos-signature": f"sha256={digest}",
        "x-chronos-timestamp": timestamp,
        "x-chronos-delivery-id": exec_id,
    }


def test_server_signed_delivery_verifies() -> None:
    assert verify_signature(SECRET, server_headers(), BODY, now=NOW)
    assert verify_standard_webhook(SECRET, server_headers(), BODY, now=NOW)


def test_hand_signed_delivery_verifies() -> None:
    assert verify_signature(SECRET, by_hand(str(NOW)), BODY, now=NOW)


def test_real_clock_is_used_by_default() -> None:
    assert verify_signature(SECRET, server_headers(int(time.time())), BODY)
    assert not verify_signature(SECRET, server_headers(NOW - 10_000_000), BODY)


def test_tampered_body_is_refused() -> None:
    tampered = BODY.replace(b'"pdf"', b'"csv"')
    assert not verify_signature(SECRET, server_headers(), tampered, now=NOW)
    assert not verify_signature(SECRET, server_headers(), BODY + b"\n", now=NOW)
    assert not verify_standard_webhook(SECRET, server_headers(), tampered, now=NOW)


def test_reserialised_json_is_refused() -> None:
    pretty = json.dumps(json.loads(BODY)).encode()  # default separators add spaces
    assert pretty != BODY
    assert not verify_signature(SECRET, server_headers(), pretty, now=NOW)


def test_wrong_secret_is_refused() -> None:
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert not verify_signature(other, server_headers(), BODY, now=NOW)
    assert not verify_standard_webhook(other, server_headers(), BODY, now=NOW)


def test_signature_for_another_delivery_id_is_refused() -> None:
    headers = server_headers()
    headers["X-Chronos-Delivery-Id"] = "another-execution"
    assert not verify_signature(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize(
    ("age", "ok"),
    [(0, True), (300, True), (-300, True), (301, False), (-301, False), (86_400, False)],
)
def test_timestamp_window(age: int, ok: bool) -> None:
    headers = server_headers(NOW - age)  # negative age: from the future
    assert verify_signature(SECRET, headers, BODY, now=NOW) is ok
    assert verify_standard_webhook(SECRET, headers, BODY, now=NOW) is ok


def test_tolerance_is_configurable() -> None:
    headers = server_headers(NOW - 600)
    assert not verify_signature(SECRET, headers, BODY, now=NOW)
    assert verify_signature(SECRET, headers, BODY, tolerance=900, now=NOW)
    assert not verify_signature(SECRET, server_headers(NOW - 2), BODY, tolerance=1, now=NOW)


@pytest.mark.parametrize(
    "missing", ["X-Chronos-Signature", "X-Chronos-Timestamp", "X-Chronos-Delivery-Id"]
)
def test_each_header_is_required(missing: str) -> None:
    headers = server_headers()
    del headers[missing]
    assert not verify_signature(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_standard_header_is_required(missing: str) -> None:
    headers = server_headers()
    del headers[missing]
    assert not verify_standard_webhook(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize(
    "timestamp",
    [f"{NOW}.0", f"+{NOW}", f" {NOW}", f"{NOW}s", "", "１８００００００００", "9" * 5000],
)
def test_non_digit_timestamp_is_refused(timestamp: str) -> None:
    # Signed correctly over the odd timestamp: only the timestamp rule can refuse it.
    assert not verify_signature(SECRET, by_hand(timestamp), BODY, now=NOW)


def test_signature_without_prefix_is_refused() -> None:
    headers = by_hand(str(NOW))
    headers["x-chronos-signature"] = headers["x-chronos-signature"].removeprefix("sha256=")
    assert not verify_signature(SECRET, headers, BODY, now=NOW)
    headers["x-chronos-signature"] = "sha1=" + headers["x-chronos-signature"]
    assert not verify_signature(SECRET, headers, BODY, now=NOW)


def test_garbage_signature_is_refused_without_raising() -> None:
    headers = by_hand(str(NOW))
    headers["x-chronos-signature"] = "sha256=zé"
    assert not verify_signature(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_header_names_are_case_insensitive(case: Callable[[str], str]) -> None:
    headers = {case(name): value for name, value in server_headers().items()}
    assert verify_signature(SECRET, headers, BODY, now=NOW)
    assert verify_standard_webhook(SECRET, headers, BODY, now=NOW)


def test_mixed_case_header_names_in_one_mapping() -> None:
    hand = by_hand(str(NOW))
    headers = {
        "X-CHRONOS-SIGNATURE": hand["x-chronos-signature"],
        "x-Chronos-Timestamp": hand["x-chronos-timestamp"],
        "X-Chronos-Delivery-ID": hand["x-chronos-delivery-id"],
    }
    assert verify_signature(SECRET, headers, BODY, now=NOW)


def test_standard_webhook_accepts_any_listed_v1_signature() -> None:
    headers = server_headers()
    headers["webhook-signature"] = "v1,bm90LWl0 " + headers["webhook-signature"]
    assert verify_standard_webhook(SECRET, headers, BODY, now=NOW)
    headers["webhook-signature"] = "v1,bm90LWl0 v2," + server_headers()["webhook-signature"][3:]
    assert not verify_standard_webhook(SECRET, headers, BODY, now=NOW)


def test_standard_webhook_refuses_a_secret_that_is_not_base64() -> None:
    assert not verify_standard_webhook("whsec_not*base64", server_headers(), BODY, now=NOW)


# --- rotation: during an overlap the server signs with the new and the previous secret -------

OLD = "whsec_" + base64.b64encode(b"the-previous-signing-secret-32b!").decode()


def overlap_headers(timestamp: int = NOW) -> dict[str, str]:
    return signature_headers(SECRET, EXEC_ID, timestamp, BODY, previous=OLD)


def spec_verifier(secret: str, headers: dict[str, str], raw_body: bytes) -> bool:
    """Spec §9.5's receiver code as a receiver copied it before rotations had an overlap: one
    `sha256=<hex>` in `X-Chronos-Signature`, nothing else read (clock check left out)."""
    sig = headers.get("X-Chronos-Signature", "")
    ts = headers.get("X-Chronos-Timestamp", "")
    exec_id = headers.get("X-Chronos-Delivery-Id", "")
    msg = exec_id.encode() + b"." + ts.encode() + b"." + raw_body
    expected = hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()
    return sig.startswith("sha256=") and hmac.compare_digest(sig[len("sha256=") :], expected)


def test_either_secret_verifies_a_delivery_sent_during_the_overlap() -> None:
    for secret in (SECRET, OLD):
        assert verify_signature(secret, overlap_headers(), BODY, now=NOW), secret
        assert verify_standard_webhook(secret, overlap_headers(), BODY, now=NOW), secret
    stranger = "whsec_" + base64.b64encode(b"s" * 32).decode()
    assert not verify_signature(stranger, overlap_headers(), BODY, now=NOW)
    assert not verify_standard_webhook(stranger, overlap_headers(), BODY, now=NOW)


def test_only_the_new_secret_verifies_once_the_overlap_is_over() -> None:
    after = server_headers()  # the server no longer passes `previous`
    assert verify_signature(SECRET, after, BODY, now=NOW)
    assert verify_standard_webhook(SECRET, after, BODY, now=NOW)
    assert not verify_signature(OLD, after, BODY, now=NOW)
    assert not verify_standard_webhook(OLD, after, BODY, now=NOW)


def test_a_single_signature_verifier_keeps_working_with_the_new_secret() -> None:
    """Why the previous signature has a header of its own: `X-Chronos-Signature` keeps its one
    documented form, so code written against it needs only the new secret, never new code."""
    assert spec_verifier(SECRET, overlap_headers(), BODY)
    assert spec_verifier(SECRET, server_headers(), BODY)


def test_the_previous_signature_needs_the_rest_of_the_delivery_to_be_genuine() -> None:
    tampered = BODY.replace(b"pdf", b"csv")
    assert not verify_signature(OLD, overlap_headers(), tampered, now=NOW)
    late = overlap_headers(NOW - 301)
    assert not verify_signature(OLD, late, BODY, now=NOW)
    alone = {k: v for k, v in overlap_headers().items() if k != "X-Chronos-Signature"}
    assert not verify_signature(OLD, alone, BODY, now=NOW)  # the main header is required
    moved = overlap_headers()
    moved["X-Chronos-Signature-Previous"] = moved["X-Chronos-Signature-Previous"][7:]
    assert not verify_signature(OLD, moved, BODY, now=NOW)  # `sha256=` required there too


def test_worker_package_does_not_import_the_server() -> None:
    code = (
        "import sys, chronos_worker, chronos_worker.signature\n"
        "print(sorted(m for m in sys.modules if m.startswith('chronos_server')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

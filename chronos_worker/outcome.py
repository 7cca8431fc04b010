"""Turning a handler's outcome into the bytes of its result report (§10.4, G-12, G-42). Pure.

* Return value -> `{"status": "completed", "result": ...}`. A value that is not
  JSON-serialisable or is larger than 64 KB serialised is reported as `result: null`, with a
  warning for the caller to log: the work is done, and failing would re-run its side effects.
* Exception -> `{"status": "failed", "error": {message, name, stack}, "retryable": ...}`;
  `retryable` is false only for `ChronosNonRetryableError`. The message is cut to 4 KiB and the
  stack to 16 KiB (UTF-8 bytes, so the character count is within the same limits); the stack
  keeps its END, where the raising frame and the message are.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass

from .errors import ChronosNonRetryableError

MAX_RESULT_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 4096
MAX_STACK_BYTES = 16384
TRUNCATION_MARK = "...(truncated)\n"


@dataclass(frozen=True)
class Report:
    """A result report ready to send: the JSON body and, when the result was dropped, why;
    for a failure also `error` (`Name: message`, for the logs) and `retryable`."""

    body: bytes
    status: str
    warning: str | None = None
    error: str | None = None
    retryable: bool = True


def encode_json(value: object) -> bytes:
    """Compact UTF-8 JSON; raises `TypeError`/`ValueError` for values JSON cannot carry."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


# What most handlers return; its report is the same every time.
_COMPLETED_NULL = Report(body=b'{"status":"completed","result":null}', status="completed")


def completed_report(result: object) -> Report:
    if result is None:
        return _COMPLETED_NULL
    warning = None
    try:
        encoded = encode_json(result)
    except (TypeError, ValueError, RecursionError) as exc:
        warning = f"Handler result is not JSON-serialisable ({exc}); reporting result null"
        encoded = b"null"
    if len(encoded) > MAX_RESULT_BYTES:
        warning = (
            f"Handler result is {len(encoded)} bytes, over the {MAX_RESULT_BYTES}-byte limit;"
            " reporting result null"
        )
        encoded = b"null"
    body = b'{"status":"completed","result":' + encoded + b"}"
    return Report(body=body, status="completed", warning=warning)


def failed_report(exc: BaseException) -> Report:
    name = type(exc).__name__
    stack = "".join(traceback.format_exception(exc))
    # The server requires a message; `raise ValueError()` has none, so use the name.
    message = truncate_head(_describe(exc) or name, MAX_MESSAGE_BYTES)
    retryable = not isinstance(exc, ChronosNonRetryableError)
    body = {
        "status": "failed",
        "error": {
            "message": message,
            "name": name,
            "stack": truncate_tail(stack, MAX_STACK_BYTES),
        },
        "retryable": retryable,
    }
    return Report(
        body=encode_json(body), status="failed", error=f"{name}: {message}", retryable=retryable
    )


def _describe(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the failure report
        return f"<unprintable {type(exc).__name__}>"


def truncate_head(text: str, limit: int) -> str:
    """Keep the first `limit` UTF-8 bytes of `text`, never splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")


def truncate_tail(text: str, limit: int) -> str:
    """Keep the last bytes of `text`, prefixed by a marker, within `limit` UTF-8 bytes."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    keep = limit - len(TRUNCATION_MARK.encode("utf-8"))
    if keep <= 0:  # no room for the marker
        return raw[len(raw) - limit :].decode("utf-8", "ignore")
    return TRUNCATION_MARK + raw[-keep:].decode("utf-8", "ignore")

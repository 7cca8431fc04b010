"""Push response classification (spec §9.7, G-14, G-18) and Retry-After parsing. Pure."""

from __future__ import annotations

from datetime import UTC
from email.utils import parsedate_to_datetime

from chronos_server.core.models import ExecutionError, ExecutionStatus, Outcome

MAX_RETRY_AFTER_MS = 3_600_000


def retry_after_ms(header: str | None, now_ms: int) -> int | None:
    """`Retry-After` as delay-seconds or an HTTP date → ms from now (0–1 h), None if absent/bad."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return min(int(header) * 1000, MAX_RETRY_AFTER_MS)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = int(when.timestamp() * 1000) - now_ms
    return max(0, min(delta, MAX_RETRY_AFTER_MS))


def classify_response(
    status: int,
    body: str,
    *,
    retry_on_status: tuple[int, ...] = (),
    retry_after: str | None = None,
    now_ms: int = 0,
) -> Outcome:
    """2xx completed; 5xx retried; codes listed in `retry_on_status` retried honouring
    Retry-After; every other status (1xx, 3xx, 4xx) fails the job at once."""
    if 200 <= status < 300:
        return Outcome(ExecutionStatus.COMPLETED, http_status=status, response_body=body)
    error = ExecutionError(f"Endpoint answered HTTP {status}", "HttpStatus")
    if status >= 500:
        return Outcome(ExecutionStatus.FAILED, error=error, http_status=status, response_body=body)
    if status in retry_on_status:
        return Outcome(
            ExecutionStatus.FAILED,
            error=error,
            http_status=status,
            response_body=body,
            retry_after_ms=retry_after_ms(retry_after, now_ms),
        )
    return Outcome(
        ExecutionStatus.FAILED,
        error=error,
        retryable=False,
        http_status=status,
        response_body=body,
    )

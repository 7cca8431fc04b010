"""`ChronosContext`, what a handler receives, and the parsing of a claimed job into it (G-11).

The claim response's `data` is the only raw JSON that enters the SDK; `parse_job` narrows it
at once and raises `ValueError` on anything malformed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class ChronosContext:
    """One claimed execution, as handed to a handler.

    `job_id` is the same on every retry (use it for idempotency); `execution_id` is new for
    each attempt; `attempt` is 1-based. `scheduled_for` and `lease_expires_at` are aware UTC
    datetimes. `timeout` (seconds) is the lease length: report within it or the attempt is
    timed out and retried.
    """

    job_id: str
    execution_id: str
    attempt: int
    payload: Any
    handler: str
    scheduled_for: datetime
    lease_expires_at: datetime
    timeout: int


def parse_job(data: Mapping[str, Any]) -> ChronosContext:
    """Build a context from a claim response's `data`; `ValueError` if a field is unusable."""
    return ChronosContext(
        job_id=_str(data, "job_id"),
        execution_id=_str(data, "execution_id"),
        attempt=_int(data, "attempt"),
        payload=data.get("payload"),
        handler=_str(data, "handler"),
        scheduled_for=parse_timestamp(_str(data, "scheduled_for")),
        lease_expires_at=parse_timestamp(_str(data, "lease_expires_at")),
        timeout=_int(data, "timeout"),
    )


# The jobs of one claim share their `lease_expires_at`, and often their `scheduled_for`.
@lru_cache(maxsize=256)
def parse_timestamp(text: str) -> datetime:
    """ISO 8601 (with `Z` or an offset) to an aware UTC datetime; naive input is taken as UTC."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"claimed job has no valid {key!r}: {value!r}")
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"claimed job has no valid {key!r}: {value!r}")
    return value

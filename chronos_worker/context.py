"""`ChronosContext`, what a handler receives, and the parsing of a claimed job into it (G-11).

The claim response's `data` is the only raw JSON that enters the SDK; `parse_job` narrows it
at once and raises `ValueError` on anything malformed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from .errors import ChronosError


class LeaseExtender(Protocol):
    async def extend(self, seconds: int | None) -> datetime: ...


@dataclass
class ChronosContext:
    """One claimed execution, as handed to a handler.

    `job_id` is the same on every retry (use it for idempotency); `execution_id` is new for
    each attempt; `attempt` is 1-based. `scheduled_for` and `lease_expires_at` are aware UTC
    datetimes. `timeout` (seconds) is the lease length: report within it or the attempt is
    timed out and retried.

    Lease extension (extension; `chronos_worker.lease`): while the handler runs, the worker
    extends the lease by `timeout` every third of it, so a handler may run longer than its
    `timeout` as long as its worker is alive; `lease_expires_at` follows (the server's time).
    `await ctx.extend(seconds)` asks for a lease ending `seconds` from now (at most 3,600; never
    earlier than it already does) and returns its new end. When the server refuses an extension
    (the lease was lost: the attempt timed out, or the job was finished elsewhere), the worker
    cancels an async handler and sets `lease_lost` for a sync one to check, and reports nothing.
    """

    job_id: str
    execution_id: str
    attempt: int
    payload: Any
    handler: str
    scheduled_for: datetime
    lease_expires_at: datetime
    timeout: int
    lease_lost: bool = field(default=False, compare=False)
    _lease: LeaseExtender | None = field(default=None, compare=False, repr=False)

    async def extend(self, seconds: int | None = None) -> datetime:
        """Extend the lease to `seconds` (default `timeout`) from now; its new end. Raises
        `ChronosError` when the server refuses (the lease is lost) or cannot be reached, or when
        this context is not one the worker is running."""
        if self._lease is None:
            raise ChronosError("This context has no lease to extend")
        return await self._lease.extend(seconds)


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


def start_in(data: object) -> float:
    """Seconds after its arrival a job handed over ahead of its due instant starts (its
    `start_in_ms`: the worker channel after `timed_start`, a claim with `timed_start`), else 0.
    At most 1 s: anything else is malformed and ignored."""
    value = data.get("start_in_ms") if isinstance(data, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1000:
        return float(value) / 1000
    return 0.0


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

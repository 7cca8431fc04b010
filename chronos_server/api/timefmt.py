"""ISO 8601 in and out: we emit UTC with milliseconds and `Z` (G-48), accept any offset."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache


@lru_cache(maxsize=4096)  # a burst of jobs often shares one due instant
def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_instant(text: str) -> int:
    """ISO 8601 with an explicit offset (or Z) → Unix ms. Raises ValueError otherwise."""
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("must include a timezone offset, e.g. 2026-01-15T09:00:00Z")
    return int(dt.timestamp() * 1000 + (0.5 if dt.timestamp() >= 0 else -0.5))

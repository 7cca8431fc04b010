"""ISO 8601 in and out: we emit UTC with milliseconds and `Z` (G-48), accept any offset."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return _second(ms // 1000) + f"{ms % 1000:03d}Z"


@lru_cache(maxsize=4096)  # the instants of one answer mostly share their second
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")


# RFC 3339 (JSON Schema's `format: date-time`) also allows a lower-case `t` and `z` and a leap
# second (`:60`), which `fromisoformat` refuses.
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d:)(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def parse_instant(text: str) -> int:
    """ISO 8601 with an explicit offset (or Z) → Unix ms. Raises ValueError otherwise."""
    text = text.strip()
    leap = 0
    if found := _RFC3339.fullmatch(text):
        date, hhmm, seconds, fraction, offset = found.groups()
        if seconds == "60":  # a leap second: Unix time has none, so it reads as the next second
            seconds, leap = "59", 1000
        text = f"{date}T{hhmm}{seconds}{fraction or ''}{offset.upper()}"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("must include a timezone offset, e.g. 2026-01-15T09:00:00Z")
    return int(dt.timestamp() * 1000 + (0.5 if dt.timestamp() >= 0 else -0.5)) + leap

"""Injected time: `Clock.now_ms()` for wall-clock instants stored in the database.

Sleeps and timeouts always go through trio (so `MockClock` drives them); this module only answers
"what time is it" for rows. `TrioClock` derives wall time from trio's clock so that tests under
`MockClock` see wall time advance with virtual time.
"""

from __future__ import annotations

import time
from typing import Protocol

import trio


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def exact_ms(self) -> float:
        """`now_ms` with its fraction: for a delay measured against a stored instant."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def exact_ms(self) -> float:
        return time.time_ns() / 1_000_000


class TrioClock:
    """Wall time = a fixed origin + trio's (possibly virtual) clock; only valid inside trio.run."""

    def __init__(self, origin_ms: int) -> None:
        self._origin_ms = origin_ms
        self._start = trio.current_time()

    def now_ms(self) -> int:
        return self._origin_ms + round((trio.current_time() - self._start) * 1000)

    def exact_ms(self) -> float:
        return self._origin_ms + (trio.current_time() - self._start) * 1000

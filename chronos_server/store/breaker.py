"""The circuit breaker of a store whose database can go away (PostgreSQL): while the database is
known to be unreachable, calls fail at once with `StoreUnavailable` instead of each one waiting out
the pool timeout, and a background probe finds out when it is back.

    closed ──(a call begun while closed cannot get a live connection)──▶ open
    open ──(the next probe is due)──▶ probing ─┬─(unreachable)──▶ open, next probe later
                                                └─(reachable)────▶ closed, generation + 1

`CircuitBreaker` is that state machine, pure: no trio, no I/O, `now` (monotonic seconds) passed
in. Probes are `PROBE_MIN_SECONDS` apart after a trip, doubling to `PROBE_MAX_SECONDS`. A failure
from a call that began before the last recovery (its `generation` is older) says nothing about
the database now and is ignored, so calls that were already stuck when it came back do not
re-open the breaker.

`StoreBreaker` is the store's side: `check()` before a call, `failed(generation)` after a
connection-level failure, and `run_probe()`, the loop started in the server's root nursery. The
breaker is armed only while that loop runs: a store used without it (a test, `chronos migrate`)
behaves as if there were no breaker, so nothing can leave it open with no one to close it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

import trio

from chronos_server.errors import StoreUnavailable

log = logging.getLogger("chronos.store.breaker")

PROBE_MIN_SECONDS = 0.5
PROBE_MAX_SECONDS = 1.0


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    PROBING = "probing"  # half-open: the probe is trying; calls are still refused


class BreakerOpen(StoreUnavailable):
    """Refused by the breaker: nothing was attempted (same 503 `service_unavailable`)."""

    default_message = "Storage is unavailable: the database cannot be reached (checking again)"


@dataclass
class CircuitBreaker:
    min_interval: float = PROBE_MIN_SECONDS
    max_interval: float = PROBE_MAX_SECONDS
    state: BreakerState = BreakerState.CLOSED
    generation: int = 0
    opened_at: float | None = None
    next_probe_at: float | None = None
    interval: float = field(init=False, default=0.0)
    trips: int = 0
    probes: int = 0

    @property
    def closed(self) -> bool:
        return self.state is BreakerState.CLOSED

    def record_failure(self, now: float, generation: int) -> bool:
        """A call begun in `generation` could not reach the database; True if this opened the
        breaker (it was closed and has not recovered since that call began)."""
        if not self.closed or generation != self.generation:
            return False
        self.state, self.opened_at, self.trips = BreakerState.OPEN, now, self.trips + 1
        self.interval = self.min_interval
        self.next_probe_at = now + self.interval
        return True

    def seconds_to_probe(self, now: float) -> float | None:
        """How long until the next probe is due; None unless open."""
        if self.state is not BreakerState.OPEN or self.next_probe_at is None:
            return None
        return max(0.0, self.next_probe_at - now)

    def begin_probe(self, now: float) -> bool:
        """Open and due → probing (True); anything else changes nothing (False)."""
        due = self.seconds_to_probe(now)
        if due is None or due > 0:
            return False
        self.state, self.probes = BreakerState.PROBING, self.probes + 1
        return True

    def end_probe(self, now: float, reachable: bool) -> None:
        if self.state is not BreakerState.PROBING:
            raise ValueError(f"end_probe while {self.state}")
        if reachable:
            self.close()
            return
        self.state = BreakerState.OPEN
        self.interval = min(self.interval * 2, self.max_interval)
        self.next_probe_at = now + self.interval

    def close(self) -> None:
        """Back to closed, as after a successful probe (or when nothing will probe any more)."""
        if not self.closed:
            self.generation += 1
        self.state, self.opened_at, self.next_probe_at = BreakerState.CLOSED, None, None


class StoreBreaker:
    """A `CircuitBreaker` as a store uses it from the Trio thread, plus the probe loop.

    `rejects()` only reads two attributes, so a worker thread may call it too (a call that
    waited for a thread while the breaker opened gives up before asking the pool)."""

    def __init__(self, clock: Callable[[], float] = trio.current_time) -> None:
        self.machine = CircuitBreaker()
        self.armed = False
        self.rejected = 0
        self._clock = clock
        self._opened = trio.Event()

    @property
    def generation(self) -> int:
        return self.machine.generation

    def rejects(self) -> bool:
        return self.armed and not self.machine.closed

    def check(self) -> None:
        """Raise `BreakerOpen` at once if the database is known to be unreachable."""
        if self.rejects():
            self.rejected += 1
            raise BreakerOpen()

    def failed(self, generation: int) -> None:
        """A call begun in `generation` could not get a live connection."""
        if self.armed and self.machine.record_failure(self._clock(), generation):
            log.warning("database unreachable: answering 503 at once until a probe reaches it")
            self._opened.set()

    def statistics(self) -> dict[str, object]:
        m = self.machine
        return {
            "state": m.state.value,
            "trips": m.trips,
            "probes": m.probes,
            "rejected": self.rejected,
        }

    async def run_probe(
        self,
        probe: Callable[[], Awaitable[bool]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Arm the breaker; while it is open, call `probe()` (True: the database answers) when
        due, until one succeeds. On exit (cancelled) disarm it and close it."""
        self.armed = True
        try:
            task_status.started()
            while True:
                if self.machine.closed:
                    await self._opened.wait()
                    self._opened = trio.Event()
                    continue
                await trio.sleep(self.machine.seconds_to_probe(self._clock()) or 0.0)
                if self.machine.begin_probe(self._clock()):
                    reachable = await probe()
                    self.machine.end_probe(self._clock(), reachable)
                    if reachable:
                        log.warning("database reachable again: breaker closed")
        finally:
            self.armed = False
            self.machine.close()

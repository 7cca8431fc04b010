"""`Pipeline`: what the loops, the routes and the push sender share — store, clock, randomness,
wake-ups, the leases this process handed out, the group commit of creates, and the one stop
(`Shutdown`)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio

from chronos_server.clock import Clock
from chronos_server.pipeline.group_commit import JobWriter
from chronos_server.pipeline.limits import LimitedHandlers
from chronos_server.pipeline.signals import ClaimBoard, Nudge
from chronos_server.store.base import Store


@dataclass(frozen=True)
class LoopSettings:
    batch_size: int = 500
    idle_seconds: float = 5.0
    sweep_seconds: float = 1.0
    lease_grace_ms: int = 5_000
    admitting_grace_ms: int = 30_000
    error_backoff_seconds: float = 1.0


class Leases:
    """Executions this process handed to workers and has not heard back about, with when their
    lease ends. A graceful stop waits until every one is reported (to this process) or over."""

    def __init__(self) -> None:
        self._until: dict[str, int] = {}
        self._changed = trio.Event()
        # Executions of handlers with limits among them: their finish frees a slot.
        self.limited: set[str] = set()

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, execution_id: str) -> bool:
        return execution_id in self._until

    def add(self, execution_id: str, expires_ms: int, *, limited: bool = False) -> None:
        self._until[execution_id] = expires_ms
        if limited:
            self.limited.add(execution_id)

    def settle(self, execution_id: str) -> None:
        self.limited.discard(execution_id)
        if self._until.pop(execution_id, None) is not None:
            self._changed.set()

    async def wait_settled(self, clock: Clock) -> None:
        """Until no lease is open: each is reported, or its end has passed."""
        while True:
            now = clock.now_ms()
            self._until = {e: until for e, until in self._until.items() if until > now}
            self.limited &= self._until.keys()
            if not self._until:
                return
            self._changed = trio.Event()
            with trio.move_on_after((min(self._until.values()) - now) / 1000):
                await self._changed.wait()


class Shutdown:
    """A server process's one stop. `begin(grace)` sets `stopping` and ONE deadline on the Trio
    clock: what must stop at once (new claims, new push requests, parked long-polls) reads
    `stopping`; what may finish (result reports, pushes in flight) has until `deadline`."""

    def __init__(self) -> None:
        self.stopping = False
        self.deadline: float | None = None
        self.begun = trio.Event()

    def begin(self, grace_seconds: float) -> bool:
        """Start the stop; False if it had already begun (the first deadline stands)."""
        if self.stopping:
            return False
        self.stopping = True
        self.deadline = trio.current_time() + grace_seconds
        self.begun.set()
        return True


@dataclass
class ChannelInfo:
    """A worker channel open on this process (GET /v1/workers)."""

    account_id: str
    handlers: list[str]
    worker: str | None
    connected_at: int
    credits: int = 0


@dataclass
class Pipeline:
    store: Store
    clock: Clock
    rng: random.Random
    settings: LoopSettings = field(default_factory=LoopSettings)
    admission_nudge: Nudge = field(default_factory=Nudge)
    dispatch_nudge: Nudge = field(default_factory=Nudge)
    board: ClaimBoard = field(default_factory=ClaimBoard)
    leases: Leases = field(default_factory=Leases)
    shutdown: Shutdown = field(default_factory=Shutdown)
    channels: dict[int, ChannelInfo] = field(default_factory=dict)  # by id(channel)
    limited: LimitedHandlers = field(default_factory=LimitedHandlers)
    # When the sleeping admission loop will wake on its own (ms); None while it is working.
    admission_wakes_at: int | None = None
    # Single creates, written in groups (its `run` is a service in the root nursery).
    job_writer: JobWriter = field(init=False)

    def __post_init__(self) -> None:
        self.job_writer = JobWriter(self.store)
        self.board.on_limits_changed = self.limited.changed_elsewhere

    def admit_by(self, due_ms: int) -> None:
        """Something becomes due at `due_ms`: nudge admission unless it already wakes by then
        (a job created for later must not cost a whole admission pass now)."""
        if self.admission_wakes_at is None or due_ms < self.admission_wakes_at:
            self.admission_nudge.set()

    def outcomes_recorded(self, failed: int, freed_limited: bool = False) -> None:
        """Outcomes were written: a failed or timed-out attempt may have scheduled a retry, and
        a finished execution of a handler with limits freed a slot its waiting jobs may take;
        admission must learn of either (the one place this rule lives; reports, push and the
        sweep call it)."""
        if failed or freed_limited:
            self.admission_nudge.set()

    def frees_limited_slot(self, account_id: str, execution_id: str) -> bool:
        """Would finishing this execution free a slot of a limited handler? Exact for a lease
        this process handed out; for another's (a report that reached another replica), any
        limit in the account says yes (a needless pass at worst)."""
        if execution_id in self.leases:
            return execution_id in self.leases.limited
        return self.limited.covers_account(account_id)

    def slots_freed_by_hand(self, account_id: str) -> None:
        """A job left `ready` other than by a claim (a cancel, an archive): if the account has
        limits, admission looks whether a waiting job may take its place."""
        if self.limited.covers_account(account_id):
            self.admission_nudge.set()

    def stop(self, grace_seconds: float) -> bool:
        """Begin the stop: parked claims answer "no job" now; False if it had already begun."""
        if not self.shutdown.begin(grace_seconds):
            return False
        self.board.close()
        return True

"""`Pipeline`: what the loops and the routes share — store, clock, randomness, wake-ups, limits."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from chronos_server.clock import Clock
from chronos_server.loops.signals import ClaimBoard, Nudge
from chronos_server.store.base import Store


@dataclass(frozen=True)
class LoopSettings:
    batch_size: int = 500
    idle_seconds: float = 5.0
    sweep_seconds: float = 1.0
    lease_grace_ms: int = 5_000
    admitting_grace_ms: int = 30_000
    error_backoff_seconds: float = 1.0


@dataclass
class Pipeline:
    store: Store
    clock: Clock
    rng: random.Random
    settings: LoopSettings = field(default_factory=LoopSettings)
    admission_nudge: Nudge = field(default_factory=Nudge)
    dispatch_nudge: Nudge = field(default_factory=Nudge)
    board: ClaimBoard = field(default_factory=ClaimBoard)
    draining: bool = False  # set on shutdown: start no new push requests
    # When the sleeping admission loop will wake on its own (ms); None while it is working.
    admission_wakes_at: int | None = None

    def admit_by(self, due_ms: int) -> None:
        """Something becomes due at `due_ms`: nudge admission unless it already wakes by then
        (a job created for later must not cost a whole admission pass now)."""
        if self.admission_wakes_at is None or due_ms < self.admission_wakes_at:
            self.admission_nudge.set()

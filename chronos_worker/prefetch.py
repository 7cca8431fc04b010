"""Claim tokens and adaptive prefetch: how many jobs a worker may hold beyond its handler slots.

A worker with `concurrency` C runs at most C handlers at once (`run.slots`). Without prefetch it
also holds at most C jobs, so with fast handlers each job costs a share of a claim round trip
and throughput is bounded by one round trip per C jobs. With prefetch P it holds up to C + P
jobs: a claim (or, over the worker channel, the credits granted) takes up to C + P "claim
tokens", and a claimed job first waits for a handler slot, then runs. A token is held from the
claim until the job's handler has returned (and its report has a place among the unsettled
ones), so `ClaimTokens.held` is the number of jobs in the worker.

A job that waits for a slot waits while its lease runs, so prefetch must never let jobs of slow
handlers sit claimed. The prefetch used at any moment is therefore adaptive:

    used = min(P, floor(C * PREFETCH_WAIT_BUDGET_SECONDS / average handler run time))

with the average a moving average (EWMA) of handler run times (handler start -> return) of
this worker, and `used` = 0 until `WARMUP_RUNS` runs have been measured. C slots finish
C / average jobs per second, so `used` jobs waiting in line are through within about the
budget (0.1 s): a no-op handler prefetches fully, a handler of 1 s never does. When `used`
shrinks, nothing is given back: the worker simply claims (or grants credits) less until the
jobs it holds fall under the new limit.

`WorkerSettings.prefetch_limit` is P (0 with concurrency 1: that stays the spec's plain one-job
protocol, and with prefetch 0 everything here is the behaviour without prefetch).
"""

from __future__ import annotations

import math

import trio

PREFETCH_WAIT_BUDGET_SECONDS = 0.1  # how long a prefetched job should wait for its slot, at most
WARMUP_RUNS = 8  # handler runs measured before any prefetch
EWMA_WEIGHT = 0.2  # weight of the newest run time in the moving average


class ClaimTokens:
    """The jobs a worker holds (claimed, not yet finished), bounded by `limit`: `concurrency`
    plus the adaptive prefetch of the moment (see the module doc)."""

    def __init__(self, concurrency: int, prefetch: int) -> None:
        self.concurrency = concurrency
        self.prefetch = prefetch  # the most jobs held beyond `concurrency`
        self.held = 0
        self.runs = 0  # handler runs measured
        self.average: float | None = None  # their moving average run time, in seconds
        self._freed = trio.lowlevel.ParkingLot()

    @property
    def prefetch_now(self) -> int:
        """The prefetch to use now: 0 before the warm-up, then what the budget allows."""
        if self.prefetch == 0 or self.runs < WARMUP_RUNS or self.average is None:
            return 0
        if self.average <= 0:
            return self.prefetch
        fits = self.concurrency * PREFETCH_WAIT_BUDGET_SECONDS / self.average
        return self.prefetch if fits >= self.prefetch else math.floor(fits)

    @property
    def limit(self) -> int:
        return self.concurrency + self.prefetch_now

    def free(self) -> int:
        """Tokens that may be taken now (0 while more are held than the limit allows)."""
        return max(0, self.limit - self.held)

    def observe(self, seconds: float) -> None:
        """One handler ran for `seconds`."""
        if self.prefetch == 0:
            return
        seconds = max(0.0, seconds)
        if self.average is None:
            self.average = seconds
        else:
            self.average += EWMA_WEIGHT * (seconds - self.average)
        self.runs += 1
        self._freed.unpark_all()  # the limit may have grown

    async def acquire(self) -> None:
        """Take one token, waiting while the worker holds as many jobs as the limit."""
        while self.held >= self.limit:
            await self._freed.park()
        self.held += 1

    async def acquire_for_claim(self) -> None:
        """Take one token for the long-poll's next claim. While prefetching, first wait until
        half the limit is free: tokens free one job at a time as prefetched jobs drain, and a
        claim per freed token would cost a round trip per job instead of per batch (the other
        half, still held, keeps the slots busy while the claim travels). Without prefetch, as
        `acquire`: one free token is enough."""
        while self.held >= self.limit or (
            self.prefetch_now > 0 and self.held > self.limit - max(1, self.limit // 2)
        ):
            await self._freed.park()
        self.held += 1

    def take_free(self, most: int) -> int:
        """Take up to `most` tokens without waiting; how many were taken."""
        taken = min(most, self.free())
        self.held += taken
        return taken

    def take_granted(self) -> None:
        """Take a token for a job that came for a credit granted earlier (the limit may have
        shrunk since: the job is held all the same)."""
        self.held += 1

    def release(self, count: int = 1) -> None:
        self.held -= count
        self._freed.unpark_all()

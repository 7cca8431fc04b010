"""Keeping a running attempt's lease (extension): heartbeats while its handler runs.

A `LeaseKeeper` is made for each job the worker runs; `Heartbeats.run()`, one task per run,
extends its lease (by the job's `timeout`) whenever a third of it has passed since it was last
extended: the first heartbeat goes out `timeout / 3` after the claim, the next `timeout / 3`
after that, and after `ctx.extend(600)` the next one when the 600 s lease has `2/3 timeout`
left. A heartbeat is `POST /v1/worker/executions/:id/heartbeat` on the long-poll path and a
`heartbeat` message on the worker channel (a `Beat` function either way).

Answers:
- accepted: `ctx.lease_expires_at` becomes the server's new end, and the keeper's `deadline`
  (the worker's clock: how long a report is worth retrying) moves with it;
- refused (404 `execution_not_found`, 409 `lease_expired` / `execution_already_finished`): the
  lease is lost; the attempt is over on the server, and another may be running the job. The
  keeper logs it once, sets `ctx.lease_lost`, cancels an async handler (its cancel scope) and the
  worker reports nothing for the attempt;
- 404/405 without `execution_not_found` (a server without the extension, e.g. the hosted API):
  heartbeats are switched off for the rest of the run (`Heartbeats.supported`), logged once;
- no answer, 5xx, 429, 401/403: tried again after a pause (backoff, at most a third of the
  lease); the server keeps the lease until it runs out, so nothing is cancelled for a failure to
  reach it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable
from datetime import datetime

import trio

from .attempt_log import job_meta
from .backoff import Backoff
from .context import ChronosContext, parse_timestamp
from .errors import ChronosError, ChronosRequestError
from .log import Log

# (execution_id, extend_seconds or None) -> the lease's new end (ISO 8601, the server's clock)
Beat = Callable[[str, int | None], Awaitable[str]]
LOST_CODES = frozenset({"execution_not_found", "lease_expired", "execution_already_finished"})
MAX_EXTEND_SECONDS = 3600
MIN_INTERVAL_SECONDS = 0.1


class Heartbeats:
    """The heartbeats of one run: `beat` (HTTP or the channel), whether the server has the
    extension, and ONE task (`run`) that sends each keeper's heartbeat when it is due (a heap of
    due times: no task per job, no wake-up per job while leases are young)."""

    def __init__(self, beat: Beat, log: Log, retry_delay_s: float, rng: random.Random) -> None:
        self.beat = beat
        self.log = log
        self.retry_delay_s = retry_delay_s
        self.rng = rng
        self.supported = True
        self._due: list[tuple[float, int, LeaseKeeper, int]] = []
        self._order = itertools.count()
        self._earlier = trio.Event()

    def unsupported(self, exc: ChronosRequestError) -> None:
        if self.supported:
            self.supported = False
            self.log.info(
                "The server has no lease extension; handlers must finish within their timeout",
                error=str(exc),
            )

    def watch(self, keeper: LeaseKeeper) -> None:
        """Send `keeper`'s next heartbeat at `keeper.next_at` (unless it is done by then)."""
        if not self.supported:
            return
        if not self._due or keeper.next_at < self._due[0][0]:
            self._earlier.set()
        heapq.heappush(self._due, (keeper.next_at, next(self._order), keeper, keeper.turn))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send heartbeats as they come due, until cancelled."""
        async with trio.open_nursery() as beats:
            task_status.started()
            while True:
                self._earlier = trio.Event()
                now = trio.current_time()
                while self._due and (self._due[0][2].done or self._due[0][0] <= now):
                    _, _, keeper, turn = heapq.heappop(self._due)
                    # An entry left behind by `ctx.extend()` (rescheduled) is skipped.
                    if not keeper.done and turn == keeper.turn and self.supported:
                        beats.start_soon(keeper.beat_once)
                wake = self._due[0][0] if self._due else math.inf
                with trio.move_on_at(wake):
                    await self._earlier.wait()


class LeaseKeeper:
    """The lease of one running attempt (see the module doc)."""

    def __init__(self, ctx: ChronosContext, shared: Heartbeats, claimed_at: float) -> None:
        self.ctx = ctx
        self._shared = shared
        self.deadline = claimed_at + ctx.timeout  # when the lease runs out, by our clock
        self.scope = trio.CancelScope()  # the handler's; cancelled when the lease is lost
        self.cancel_on_loss = True  # False for a sync handler: it cannot be interrupted
        self.done = False  # the handler returned: no more heartbeats, refusals ignored
        self._third = max(ctx.timeout / 3, MIN_INTERVAL_SECONDS)
        self._backoff = Backoff(shared.retry_delay_s, shared.rng)
        self.next_at = self.deadline - 2 * self._third
        self.turn = 0  # which of the keeper's heap entries is current
        ctx._lease = self

    @property
    def lost(self) -> bool:
        return self.ctx.lease_lost

    def start(self) -> None:
        self._shared.watch(self)

    def finish(self) -> None:
        self.done = True

    async def beat_once(self) -> None:
        """The automatic heartbeat; schedules the next one."""
        try:
            await self._extend(None)
        except ChronosError:
            if self.lost or self.done or not self._shared.supported:
                return
            self.next_at = trio.current_time() + min(self._backoff.next_delay(), self._third)
        else:
            self._backoff.reset()
            self.next_at = self.deadline - 2 * self._third
        if not self.done:
            self._shared.watch(self)

    async def extend(self, seconds: int | None) -> datetime:
        """`ctx.extend()`: one heartbeat now; the next automatic one counts from it."""
        ends = await self._extend(seconds)
        if not self.done:
            self.turn += 1
            self.next_at = self.deadline - 2 * self._third
            self._shared.watch(self)
        return ends

    async def _extend(self, seconds: int | None) -> datetime:
        """One heartbeat; the lease's new end. Raises `ChronosError` if it was not extended."""
        if seconds is not None and not 1 <= seconds <= MAX_EXTEND_SECONDS:
            raise ChronosError(f"extend() takes 1 to {MAX_EXTEND_SECONDS} seconds, got {seconds}")
        if self.lost:
            raise ChronosError("The lease of this attempt is lost")
        if not self._shared.supported:
            raise ChronosError("The server has no lease extension")
        sent_at = trio.current_time()
        try:
            answer = await self._shared.beat(self.ctx.execution_id, seconds)
            ends = parse_timestamp(answer)
        except ChronosRequestError as exc:
            self._refused(exc)
            raise
        except ValueError as exc:
            raise ChronosError(f"Malformed heartbeat answer: {exc}") from exc
        self.ctx.lease_expires_at = ends
        self.deadline = max(self.deadline, sent_at + (seconds or self.ctx.timeout))
        return ends

    def _refused(self, exc: ChronosRequestError) -> None:
        log = self._shared.log
        if self.done:
            return  # e.g. `execution_already_finished`: the report arrived first
        if exc.code in LOST_CODES or (exc.code is None and exc.status == 409):
            self.ctx.lease_lost = True
            how = "cancelling the handler" if self.cancel_on_loss else "ctx.lease_lost is set"
            log.error(
                f"Lease of attempt {self.ctx.attempt} of job {self.ctx.job_id} lost"
                f" ({exc.code or exc.status}): {how}; its result will not be reported",
                error=str(exc),
                **job_meta(self.ctx),
            )
            if self.cancel_on_loss:
                self.scope.cancel()
        elif exc.status in (404, 405):
            self._shared.unsupported(exc)
        elif log.enabled(logging.DEBUG):
            log.debug("Heartbeat failed; trying again", error=str(exc), **job_meta(self.ctx))

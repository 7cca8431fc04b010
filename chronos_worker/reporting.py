"""Sending result reports: one request per report (§10.4), or batched (extension).

A report is worth retrying for as long as the server would still take it: until the attempt's
lease runs out. Each report therefore carries a `deadline` on the worker's own (Trio) clock,
set when the claim answer arrived: that instant plus the job's `timeout` (the lease length). The
server's `lease_expires_at` is not used: it is on the server's clock, and the two clocks need
not agree. No answer, a 5xx or a 429 is retried with `Backoff` (a 429's `Retry-After` obeyed, a
503's used as a floor), each pause cut short at the deadline, where a last try is made; after
that the report is given up (the server times the attempt out and retries the job). Any other
4xx is final at once: 404 `execution_not_found`, 409 `lease_expired` or
`execution_already_finished` and the rest are each logged as what they mean (`attempt_log`).
One `Reachability` for all reports keeps the log to one line when they stop getting through and
one when they do again (the tries in between are DEBUG lines; a 429 is a WARNING each time).

`ReportBatcher` (used when `concurrency > 1`) has one flusher task, `run()`. Handler tasks call
`await batcher.report(ctx, report, deadline)`, which returns once that report is settled
(accepted -> True; refused or given up -> False). The flusher waits for the first pending report,
then takes everything pending at that moment (up to `MAX_BATCH` reports and `MAX_BATCH_BYTES`)
and sends it as one request; there is no timer: a report that finds no request in flight leaves
at once, and the ones that finish while a request is in flight leave together in the next. A
batch that fails as a whole follows the same rule per item: before each retry the items past
their deadline are given up and the reports that came in meanwhile join the batch; the pause is
cut short at the earliest deadline left. Each item's verdict is then handled like a single
report's answer.

Falling back: a 404/405 on the batch route (a server without the extension) switches batching
off for the rest of the run and the reports of that batch, and of every later call, go one by
one. Any other refusal of the whole batch (400, 413, 422, a malformed answer) sends that batch's
reports one by one, so one bad report cannot sink the others.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from .api import MAX_BATCH, ItemResult, WorkerAPI
from .attempt_log import job_meta, log_give_up, log_refusal
from .backoff import Backoff, Reachability, pause_after
from .context import ChronosContext
from .errors import ChronosAuthError, ChronosRequestError
from .log import Log
from .outcome import Report

MAX_BATCH_BYTES = 512 * 1024  # well under the server's 1 MiB request limit


@dataclass(eq=False)
class _Pending:
    ctx: ChronosContext
    report: Report
    deadline: float  # Trio time after which the lease has run out
    settled: trio.Event = field(default_factory=trio.Event)
    send_alone: bool = False  # set by the flusher: the caller sends this report on its own
    accepted: bool = False
    done: bool = False  # accepted, refused or given up: not sent again
    tries: int = 0


class ReportBatcher:
    """Sends reports, one by one or in batches (see the module doc)."""

    def __init__(
        self, api: WorkerAPI, log: Log, delay_s: float, rng: random.Random, *, batching: bool
    ) -> None:
        self._api = api
        self._log = log
        self._delay_s = delay_s
        self._rng = rng
        self._batching = batching
        self._reach = Reachability(log, "reports")
        self._pending: list[_Pending] = []
        self._arrived = trio.Event()

    @property
    def batching(self) -> bool:
        """False with `concurrency` 1, or once the server turned out to lack batch reports."""
        return self._batching

    async def report(self, ctx: ChronosContext, report: Report, deadline: float) -> bool:
        """Send `report`; returns once it is settled: True if the server accepted it. Never
        raises (but can be cancelled)."""
        if self._batching:
            item = _Pending(ctx, report, deadline)
            self._pending.append(item)
            self._arrived.set()
            await item.settled.wait()
            if not item.send_alone:
                return item.accepted
        return await self._send_one(ctx, report, deadline)

    async def _send_one(self, ctx: ChronosContext, report: Report, deadline: float) -> bool:
        backoff = Backoff(self._delay_s, self._rng)
        tries = 0
        while True:
            tries += 1
            try:
                await self._api.report(ctx.execution_id, report.body)
            except ChronosAuthError as exc:
                self._reach.reached()
                log_refusal(self._log, ctx, report, str(exc), code=None, status=exc.status)
                return False
            except ChronosRequestError as exc:
                self._reach.observe(exc)
                if not exc.transient:
                    log_refusal(self._log, ctx, report, str(exc), code=exc.code, status=exc.status)
                    return False
                left = deadline - trio.current_time()
                if left <= 0:
                    log_give_up(self._log, ctx, report, tries, str(exc))
                    return False
                pause = min(pause_after(exc, backoff), left)
                # Unreachable: `_reach` logged it once; a 429 is worth a line each time.
                emit = self._log.debug if exc.unreachable else self._log.warning
                emit(
                    "Report failed; retrying",
                    error=str(exc),
                    retry_in_s=round(pause, 3),
                    **job_meta(ctx),
                )
                await trio.sleep(pause)
            else:
                self._reach.reached()
                return True

    async def run(self) -> None:
        """The flusher: send what is pending, batch after batch, until batching is switched
        off (then it returns). Run it in a nursery that outlives every caller of `report()`."""
        while self._batching:
            if not self._pending:
                self._arrived = trio.Event()
                await self._arrived.wait()
                continue
            batch = self._take([])
            try:
                await self._send(batch)  # may add reports to `batch`
            finally:
                for item in batch:
                    item.settled.set()
        for item in self._pending:  # queued while the last batch was refused: send alone
            item.send_alone = True
            item.settled.set()
        self._pending.clear()

    def _take(self, have: Sequence[_Pending]) -> list[_Pending]:
        """Pending reports that fit next to `have` in one batch (at least one if it is empty)."""
        count = len(have)
        size = sum(len(item.report.body) for item in have)
        taken = 0
        for item in self._pending:
            size += len(item.report.body)
            if count >= MAX_BATCH or (count and size > MAX_BATCH_BYTES):
                break
            count += 1
            taken += 1
        batch = self._pending[:taken]
        del self._pending[:taken]
        return batch

    async def _send(self, batch: list[_Pending]) -> None:
        backoff = Backoff(self._delay_s, self._rng)
        while live := [item for item in batch if not item.done]:
            for item in live:
                item.tries += 1
            try:
                results = await self._api.report_batch(
                    [(item.ctx.execution_id, item.report.body) for item in live]
                )
            except ChronosAuthError as exc:
                self._reach.reached()
                for item in live:
                    log_refusal(
                        self._log, item.ctx, item.report, str(exc), code=None, status=exc.status
                    )
                return
            except ChronosRequestError as exc:
                self._reach.observe(exc)
                if not exc.transient:
                    self._refused_whole(exc, live)
                    return
                await self._wait_to_retry(batch, live, exc, backoff)
            else:
                self._reach.reached()
                for item, result in zip(live, results, strict=True):
                    self._settle(item, result)
                return

    def _refused_whole(self, exc: ChronosRequestError, live: list[_Pending]) -> None:
        if exc.status in (404, 405):
            self._batching = False
            self._log.info(
                "The server has no batch reports; sending reports one by one", error=str(exc)
            )
        else:
            self._log.warning(
                "Batch report refused; sending its reports one by one",
                error=str(exc),
                reports=len(live),
            )
        for item in live:
            item.send_alone = True

    async def _wait_to_retry(
        self,
        batch: list[_Pending],
        live: list[_Pending],
        exc: ChronosRequestError,
        backoff: Backoff,
    ) -> None:
        """Give up the items past their deadline; sleep until the next try; top the batch up."""
        now = trio.current_time()
        for item in live:
            if item.deadline <= now:
                log_give_up(self._log, item.ctx, item.report, item.tries, str(exc))
                item.done = True
                item.settled.set()
        left = [item for item in live if not item.done]
        if not left:
            return
        pause = min(pause_after(exc, backoff), min(item.deadline for item in left) - now)
        emit = self._log.debug if exc.unreachable else self._log.warning
        emit(
            "Batch report failed; retrying",
            error=str(exc),
            reports=len(left),
            retry_in_s=round(pause, 3),
        )
        await trio.sleep(pause)
        batch.extend(self._take(left))

    def _settle(self, item: _Pending, result: ItemResult) -> None:
        item.done = True
        if result.accepted:
            item.accepted = True
            return
        error = f"{result.code}: {result.message}" if result.code else result.message
        log_refusal(self._log, item.ctx, item.report, error, code=result.code or None, status=None)

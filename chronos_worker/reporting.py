"""Sending result reports: one request per report (§10.4), or batched (extension).

`send_report` is the documented protocol: network/5xx/429 -> retried up to `REPORT_RETRIES` more
times, `retry_delay_ms` apart (429: `Retry-After`), then given up (the lease expiry retries the
job); 409 -> warning; other refusals -> error, given up.

`ReportBatcher` (used when `concurrency > 1`) has one flusher task, `run()`. Handler tasks call
`await batcher.report(ctx, report)`, which returns once that report is settled (accepted, refused
or given up). The flusher waits for the first pending report, then takes everything pending at
that moment (up to `MAX_BATCH` reports and `MAX_BATCH_BYTES`) and sends it as one request; there
is no timer: under load reports pile up while the previous request is in flight. The batch as a
whole is retried like a single report; each item's verdict is then logged like a single
report's answer (`execution_already_finished` / `lease_expired` -> warning, others -> error).

Falling back: a 404/405 on the batch route (a server without the extension) switches batching
off for the rest of the run and the reports of that batch, and of every later call, go one by
one through `send_report`. Any other refusal of the whole batch (400, 413, 422, a malformed
answer) sends that batch's reports one by one, so one bad report cannot sink the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from .api import MAX_BATCH, ItemResult, WorkerAPI
from .context import ChronosContext
from .errors import ChronosAuthError, ChronosRequestError
from .log import Log
from .outcome import Report

REPORT_RETRIES = 5
MAX_BATCH_BYTES = 512 * 1024  # well under the server's 1 MiB request limit
# Per-item codes that are the batch equivalent of a 409 on a single report.
CONFLICT_CODES = frozenset({"conflict", "execution_already_finished", "lease_expired"})
GIVE_UP = "Giving up on the report; the job is retried after its lease expires"


def job_meta(ctx: ChronosContext) -> dict[str, object]:
    return {
        "job_id": ctx.job_id,
        "execution_id": ctx.execution_id,
        "handler": ctx.handler,
        "attempt": ctx.attempt,
    }


def retry_delay(exc: ChronosRequestError, default_s: float) -> float:
    """`Retry-After` when the server sent one, else the configured `retry_delay_ms`."""
    return exc.retry_after if exc.retry_after is not None else default_s


async def send_report(
    api: WorkerAPI, log: Log, delay_s: float, ctx: ChronosContext, report: Report
) -> None:
    """Send one report on its own, retrying transient failures; never raises."""
    meta = job_meta(ctx)
    for attempt in range(REPORT_RETRIES + 1):
        try:
            await api.report(ctx.execution_id, report.body)
        except ChronosAuthError as exc:
            log.error("Report refused (API key); giving up", error=str(exc), **meta)
            return
        except ChronosRequestError as exc:
            if exc.status == 409:
                log.warning("Report not accepted", error=str(exc), **meta)
                return
            if not exc.transient or attempt == REPORT_RETRIES:
                log.error(GIVE_UP, error=str(exc), **meta)
                return
            log.warning("Report failed; retrying", error=str(exc), **meta)
            await trio.sleep(retry_delay(exc, delay_s))
        else:
            log.info(f"Job {report.status}", **meta)
            return


@dataclass(eq=False)
class _Pending:
    ctx: ChronosContext
    report: Report
    settled: trio.Event = field(default_factory=trio.Event)
    send_alone: bool = False  # set by the flusher: the caller sends this report on its own


class ReportBatcher:
    """Collects reports from handler tasks and sends them in batches (see the module doc)."""

    def __init__(self, api: WorkerAPI, log: Log, delay_s: float, *, batching: bool) -> None:
        self._api = api
        self._log = log
        self._delay_s = delay_s
        self._batching = batching
        self._pending: list[_Pending] = []
        self._arrived = trio.Event()

    @property
    def batching(self) -> bool:
        """False with `concurrency` 1, or once the server turned out to lack batch reports."""
        return self._batching

    async def report(self, ctx: ChronosContext, report: Report) -> None:
        """Send `report`; returns once it is settled. Never raises (but can be cancelled)."""
        if self._batching:
            item = _Pending(ctx, report)
            self._pending.append(item)
            self._arrived.set()
            await item.settled.wait()
            if not item.send_alone:
                return
        await send_report(self._api, self._log, self._delay_s, ctx, report)

    async def run(self) -> None:
        """The flusher: send what is pending, batch after batch, until batching is switched
        off (then it returns). Run it in a nursery that outlives every caller of `report()`."""
        while self._batching:
            if not self._pending:
                self._arrived = trio.Event()
                await self._arrived.wait()
                continue
            batch = self._take_batch()
            try:
                await self._send(batch)
            finally:
                for item in batch:
                    item.settled.set()
        for item in self._pending:  # queued while the last batch was refused: send alone
            item.send_alone = True
            item.settled.set()
        self._pending.clear()

    def _take_batch(self) -> list[_Pending]:
        size = count = 0
        for item in self._pending[:MAX_BATCH]:
            size += len(item.report.body)
            if count and size > MAX_BATCH_BYTES:
                break
            count += 1
        batch = self._pending[:count]
        del self._pending[:count]
        return batch

    async def _send(self, batch: list[_Pending]) -> None:
        reports = [(item.ctx.execution_id, item.report.body) for item in batch]
        for attempt in range(REPORT_RETRIES + 1):
            try:
                results = await self._api.report_batch(reports)
            except ChronosAuthError as exc:
                for item in batch:
                    self._log.error(
                        "Report refused (API key); giving up", error=str(exc), **job_meta(item.ctx)
                    )
                return
            except ChronosRequestError as exc:
                if exc.status in (404, 405):
                    self._batching = False
                    self._log.info(
                        "The server has no batch reports; sending reports one by one",
                        error=str(exc),
                    )
                    _send_alone(batch)
                    return
                if not exc.transient:
                    self._log.warning(
                        "Batch report refused; sending its reports one by one",
                        error=str(exc),
                        reports=len(batch),
                    )
                    _send_alone(batch)
                    return
                if attempt == REPORT_RETRIES:
                    for item in batch:
                        self._log.error(GIVE_UP, error=str(exc), **job_meta(item.ctx))
                    return
                self._log.warning(
                    "Batch report failed; retrying", error=str(exc), reports=len(batch)
                )
                await trio.sleep(retry_delay(exc, self._delay_s))
            else:
                for item, result in zip(batch, results, strict=True):
                    self._log_result(item, result)
                return

    def _log_result(self, item: _Pending, result: ItemResult) -> None:
        meta = job_meta(item.ctx)
        if result.accepted:
            self._log.info(f"Job {item.report.status}", **meta)
            return
        error = f"{result.code}: {result.message}" if result.code else result.message
        if result.code in CONFLICT_CODES:
            self._log.warning("Report not accepted", error=error, **meta)
        else:
            self._log.error(GIVE_UP, error=error, **meta)


def _send_alone(batch: list[_Pending]) -> None:
    for item in batch:
        item.send_alone = True

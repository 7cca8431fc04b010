"""The claim protocol (spec §10.2), apart from any transport: park on the ClaimBoard, try a
claim, undo it if the caller vanished meanwhile, pass an unused wake-up on.

A parked claim never queries on a timer: it waits on its own event, woken by admission (jobs made
ready here), another replica's NOTIFY, an undone claim, or the stop. The claim statement runs
shielded, so a cancellation can never leave it half done, but bounded by `CLAIM_SECONDS`
(conventions: never shield without a deadline); if the caller was cancelled while it ran, the
claimed jobs go back to `ready` (again shielded and bounded) and their wake-ups are passed on.
Jobs handed over are registered as this process's open leases (a graceful stop waits for them).
"""

from __future__ import annotations

import trio

from chronos_server.core.models import ClaimedJob
from chronos_server.pipeline.services import Pipeline
from chronos_server.pipeline.signals import HAND_OFF_EARLY_MS, Key, Waiter
from chronos_server.telemetry import logs

CLAIM_SECONDS = 10.0
UNCLAIM_SECONDS = 5.0


async def claim_jobs(
    p: Pipeline,
    account_id: str,
    handlers: list[str],
    worker: str | None,
    wait_seconds: float,
    limit: int = 1,
    early: bool = False,
) -> list[ClaimedJob]:
    """Up to `limit` jobs of `handlers`, waiting up to `wait_seconds` for one; [] if none came
    (or the stop began). Cancelling the caller at any point leaves no job claimed. `early`: the
    caller starts each job at its execution's `started_at` itself, so admission may hand it
    jobs up to `HAND_OFF_EARLY_MS` before they are due (their `started_at` is the due instant).
    """
    received = trio.current_time()
    claimed = await _claim_jobs(p, account_id, handlers, worker, wait_seconds, limit, early)
    p.metrics.claim_answered(len(claimed), trio.current_time() - received)
    return claimed


async def claim_ready(
    p: Pipeline,
    account_id: str,
    handlers: list[str],
    worker: str | None,
    limit: int = 1,
    early: bool = False,
) -> list[ClaimedJob]:
    """One claim attempt that never parks: the jobs of `handlers` ready now, or []. A claim
    request tries this first, so one that finds work costs no task watching its connection;
    [] sends it on to `claim_jobs`, whose first attempt the board skips unless a job may have
    become ready since this one (`known_empty`). Cancelled while the statement runs, it leaves
    no job claimed, as `claim_jobs` does. `early`: as for `claim_jobs`, the jobs due within the
    hand-off window too."""
    received = trio.current_time()
    # `_claim_jobs` with no wait: registered on the board while its statement runs (a wake-up
    # that comes meanwhile is passed on, and admission's hand-off sees a claimer), then gone.
    claimed = await _claim_jobs(p, account_id, handlers, worker, 0, limit, early)
    if claimed:
        p.metrics.claim_answered(len(claimed), trio.current_time() - received)
    return claimed


async def _claim_jobs(
    p: Pipeline,
    account_id: str,
    handlers: list[str],
    worker: str | None,
    wait_seconds: float,
    limit: int,
    early: bool = False,
) -> list[ClaimedJob]:
    board = p.board
    deadline = trio.current_time() + wait_seconds
    woken_by: Key | None = None  # the wake-up that ended the last wait
    woken: Waiter | None = None
    while not p.shutdown.stopping:
        waiter = board.register(account_id, handlers, early)
        try:
            try:
                at = woken.claim_at if woken is not None else None
                claimed = await _claim_once(p, account_id, handlers, worker, limit, at, early)
            finally:
                if woken is not None:
                    woken.attempted.set()
            if claimed:
                # A wake-up says "one more job for this handler": if what we took is not that
                # job, another claimer of the handler must hear of it, or it waits out its
                # long-poll with the job ready (a spurious wake costs one query; a lost one, up
                # to 20 s).
                if woken_by is not None and all(c.job.handler != woken_by[1] for c in claimed):
                    board.notify(woken_by[0], woken_by[1], 1)
                if waiter.event.is_set():
                    board.pass_on(waiter)
                _hand_over(p, claimed)
                return claimed
            if board.closing or trio.current_time() >= deadline:
                return []
            with trio.move_on_at(deadline):
                await waiter.event.wait()
            woken_by, woken = waiter.woken_by, waiter
        finally:
            board.unregister(waiter)
            if woken is not waiter:
                # No claim of its own follows this waiter's wake-up (it came while the claim
                # above ran, or we are leaving): whoever woke it must not wait for one (an
                # admission hand-off waited out its whole bound at every due instant).
                waiter.attempted.set()
    if woken is not None:
        woken.attempted.set()
    return []


async def _claim_once(
    p: Pipeline,
    account_id: str,
    handlers: list[str],
    worker: str | None,
    limit: int,
    at: int | None = None,
    early: bool = False,
) -> list[ClaimedJob]:
    """One claim statement; `at` (a due instant admission woke us for, at most a millisecond
    ahead) is its `now` if the clock has not reached it yet. An `early` claimer instead takes
    every job due in the next `HAND_OFF_EARLY_MS` (or by `at`), each started as of its own
    due instant: one statement for all the jobs falling due meanwhile, not one each."""
    board = p.board
    if board.known_empty(account_id, handlers):
        return []
    before = board.snapshot(account_id, handlers)
    claimed: list[ClaimedJob] = []
    with trio.move_on_after(CLAIM_SECONDS) as scope:
        scope.shield = True
        now = p.clock.now_ms()
        due_by = None
        if early:
            due_by = max(now + HAND_OFF_EARLY_MS, at or 0)
        elif at is not None and at > now:
            now = at
        claimed = await p.store.claim_ready_jobs(account_id, handlers, worker, now, limit, due_by)
    if len(claimed) < limit and not scope.cancelled_caught:
        # Fewer than asked for: the statement took every job of these handlers it could see
        # (ready, or due as of `now`), so the next claim need not look until a wake-up says
        # one more may be there (a job sent alone costs no empty claim after it).
        board.mark_empty(account_id, handlers, before)
    handed_over = False
    try:
        await trio.lowlevel.checkpoint()  # raises if the caller was cancelled meanwhile
        handed_over = True
        return claimed
    finally:
        if claimed and not handed_over:
            await _undo(p, account_id, claimed)


async def _undo(p: Pipeline, account_id: str, claimed: list[ClaimedJob]) -> None:
    with trio.move_on_after(UNCLAIM_SECONDS) as scope:
        scope.shield = True
        for job in claimed:
            if await p.store.unclaim(job, p.clock.now_ms()):
                p.board.notify(account_id, job.job.handler or "", 1)


def _hand_over(p: Pipeline, claimed: list[ClaimedJob]) -> None:
    grace = p.settings.lease_grace_ms
    for c in claimed:
        limited = p.limited.covers(c.job.account_id, c.job.handler)
        p.leases.add(c.execution.id, (c.execution.lease_expires_at or 0) + grace, limited=limited)
        p.metrics.started("pull", c.execution.started_at - c.job.run_at)
        if logs.states_enabled():
            logs.state_change(
                "job %s running: execution %s, attempt %d, claimed by %s",
                c.job.id,
                c.execution.id,
                c.execution.attempt,
                c.execution.worker or "-",
                job_id=c.job.id,
                execution_id=c.execution.id,
                handler=c.job.handler,
                attempt=c.execution.attempt,
                status="running",
            )

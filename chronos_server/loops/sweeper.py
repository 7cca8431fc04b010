"""Sweeper: times out executions whose lease expired (then retry or fail the job) and returns
jobs left in `admitting` by a crashed pass to `pending` (those `admitting_grace_ms`, 30 s, old;
looked for every `ADMITTING_EVERY_MS`).

When to sweep next (`next_sweep_in`): a lease can be swept once it has run out by
`lease_grace_ms`. Each sweep reads when the first lease still running ends; the next sweep comes
when that lease can be swept, never sooner than `sweep_seconds` after this one (spec G-07: a
lease is timed out within a second of its grace running out), and never later than the first
instant a lease begun after this sweep (on any replica) could be swept: a lease lasts at least
`MIN_LEASE_MS` (the smallest `timeout` and `extend_seconds`), so that is `MIN_LEASE_MS +
lease_grace_ms` from now, less `CLOCK_SKEW_MS` for replicas whose clocks disagree a little. With
the default 5 s grace an idle server sweeps every 5 s instead of every second, and no lease is
timed out later than before.
"""

from __future__ import annotations

import logging

import trio

from chronos_server.core.models import ExecutionStatus
from chronos_server.errors import StoreUnavailable
from chronos_server.pipeline.services import Pipeline
from chronos_server.store.base import SweepResult
from chronos_server.telemetry import logs

log = logging.getLogger("chronos.sweeper")
ADMITTING_EVERY_MS = 5_000
MIN_LEASE_MS = 1_000
CLOCK_SKEW_MS = 1_000


def next_sweep_in(
    now: int, next_lease_end: int | None, sweep_seconds: float, lease_grace_ms: int
) -> float:
    """Seconds from a sweep at `now` to the next (see the module doc)."""
    floor = sweep_seconds
    cap = max(floor, (MIN_LEASE_MS + lease_grace_ms - CLOCK_SKEW_MS) / 1000)
    if next_lease_end is None:
        return cap
    return min(cap, max(floor, (next_lease_end + lease_grace_ms - now) / 1000))


async def sweeper_once(
    p: Pipeline, *, admitting_grace_ms: int | None = None, recover_admitting: bool = True
) -> SweepResult:
    grace = p.settings.admitting_grace_ms if admitting_grace_ms is None else admitting_grace_ms
    result = await p.store.sweep(
        p.clock.now_ms(),
        p.settings.lease_grace_ms,
        grace,
        p.rng,
        p.settings.batch_size,
        recover_admitting=recover_admitting,
    )
    p.metrics.executions_timed_out(result.timed_out)
    for t in result.timeouts:
        logs.attempt_failed(
            delivery=t.delivery,
            job_id=t.execution.job_id,
            execution_id=t.execution.id,
            attempt=t.execution.attempt,
            outcome=ExecutionStatus.TIMEOUT,
            handler=t.handler,
            job_status=t.job_status,
            error="lease expired before a result was reported",
        )
    if result.timed_out or result.recovered_admitting:
        log.info(
            "sweeper: %d lease(s) expired, %d admitting job(s) recovered",
            result.timed_out,
            result.recovered_admitting,
        )
        p.outcomes_recorded(failed=result.timed_out + result.recovered_admitting)
    return result


async def run_sweeper(
    p: Pipeline, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    last_recovery: int | None = None
    while True:
        now = p.clock.now_ms()
        delay = p.settings.sweep_seconds
        try:
            recover = last_recovery is None or now - last_recovery >= ADMITTING_EVERY_MS
            result = await sweeper_once(p, recover_admitting=recover)
            if recover:
                last_recovery = now
            p.store_health.ok()
            if result.timed_out >= p.settings.batch_size:
                await trio.lowlevel.checkpoint()
                continue
            delay = next_sweep_in(
                now, result.next_lease_end, p.settings.sweep_seconds, p.settings.lease_grace_ms
            )
        except StoreUnavailable as exc:
            p.store_health.failed("sweeper", exc)
        await trio.sleep(delay)

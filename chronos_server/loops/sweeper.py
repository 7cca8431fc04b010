"""Sweeper: times out executions whose lease expired (then retry or fail the job) and returns
jobs left in `admitting` by a crashed pass to `pending`. Runs every `sweep_seconds` (spec G-07);
the `admitting` recovery, for jobs stuck `admitting_grace_ms` (30 s), only every
`ADMITTING_EVERY`-th sweep: an idle server's database sees one statement a second from here.
"""

from __future__ import annotations

import itertools
import logging

import trio

from chronos_server.core.models import ExecutionStatus
from chronos_server.errors import StoreUnavailable
from chronos_server.pipeline.services import Pipeline
from chronos_server.store.base import SweepResult
from chronos_server.telemetry import logs

log = logging.getLogger("chronos.sweeper")
ADMITTING_EVERY = 5


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
    for n in itertools.count():
        try:
            result = await sweeper_once(p, recover_admitting=n % ADMITTING_EVERY == 0)
            p.store_health.ok()
            if result.timed_out >= p.settings.batch_size:
                await trio.lowlevel.checkpoint()
                continue
        except StoreUnavailable as exc:
            p.store_health.failed("sweeper", exc)
        await trio.sleep(p.settings.sweep_seconds)

"""Recording workers' reports (spec §10.4), apart from any transport: one or several outcomes
in one store call; each report answered for good (recorded, or refused with 404/409) settles this
process's lease for it; a failed attempt wakes admission for its retry, and a finished one of a
handler with limits wakes it to let a waiting job take the freed slot.

A report the store could not take (unavailable) settles nothing: the worker sends it again.
"""

from __future__ import annotations

import logging

from chronos_server.core.models import Execution, ExecutionStatus, Outcome
from chronos_server.errors import ChronosError, ServiceUnavailable
from chronos_server.pipeline.services import Pipeline
from chronos_server.telemetry import logs


async def record_report(
    p: Pipeline, account_id: str, execution_id: str, outcome: Outcome
) -> Execution:
    """One report; raises the store's refusal (404 / 409) after settling the lease."""
    try:
        execution = await p.store.finish_execution(
            account_id, execution_id, outcome, p.clock.now_ms(), p.rng
        )
    except ServiceUnavailable:
        raise
    except ChronosError:
        p.leases.settle(execution_id)
        raise
    freed = p.frees_limited_slot(account_id, execution_id)
    p.leases.settle(execution_id)
    p.outcomes_recorded(
        failed=int(outcome.status is not ExecutionStatus.COMPLETED), freed_limited=freed
    )
    p.metrics.execution_finished(execution.status, "pull", execution.duration_ms)
    await _log_finished(p, account_id, [(execution, outcome)])
    return execution


async def record_reports(
    p: Pipeline, account_id: str, outcomes: list[tuple[str, Outcome]]
) -> list[Execution | ChronosError]:
    """Several reports in one store call; each item recorded or refused on its own."""
    results = await p.store.finish_executions(account_id, outcomes, p.clock.now_ms(), p.rng)
    freed = False
    for (execution_id, _), result in zip(outcomes, results, strict=True):
        if not freed and not isinstance(result, ChronosError):
            freed = p.frees_limited_slot(account_id, execution_id)
        p.leases.settle(execution_id)
    finished = []
    for result, (_, outcome) in zip(results, outcomes, strict=True):
        if not isinstance(result, ChronosError):
            p.metrics.execution_finished(result.status, "pull", result.duration_ms)
            finished.append((result, outcome))
    failed = sum(
        1
        for (_, outcome), result in zip(outcomes, results, strict=True)
        if outcome.status is not ExecutionStatus.COMPLETED and not isinstance(result, ChronosError)
    )
    p.outcomes_recorded(failed=failed, freed_limited=freed)
    await _log_finished(p, account_id, finished)
    return results


async def extend_leases(
    p: Pipeline, account_id: str, items: list[tuple[str, int | None]]
) -> list[Execution | ChronosError]:
    """Heartbeats (extension): each running execution's lease moved forward in one store call;
    a stop waits for the new end. A refused one (404 / 409) is over for this process too."""
    results = await p.store.extend_leases(account_id, items, p.clock.now_ms())
    grace = p.settings.lease_grace_ms
    for (execution_id, _), result in zip(items, results, strict=True):
        if isinstance(result, ChronosError):
            p.leases.settle(execution_id)
        elif execution_id in p.leases:
            p.leases.add(execution_id, (result.lease_expires_at or 0) + grace)
    return results


async def _log_finished(
    p: Pipeline, account_id: str, finished: list[tuple[Execution, Outcome]]
) -> None:
    """The INFO line of each failed attempt (its job read to say whether it is retried: the
    failure path only, never a completed report) and the DEBUG line of each completed one."""
    for execution, outcome in finished:
        if execution.status is ExecutionStatus.COMPLETED:
            if logs.states_enabled():
                logs.state_change(
                    "job %s completed: execution %s, attempt %d",
                    execution.job_id,
                    execution.id,
                    execution.attempt,
                    job_id=execution.job_id,
                    execution_id=execution.id,
                    attempt=execution.attempt,
                    status="completed",
                )
            continue
        if not logs.failures.isEnabledFor(logging.INFO):
            continue
        try:
            job = await p.store.get_job(account_id, execution.job_id)
        except ChronosError:
            job = None
        logs.attempt_failed(
            delivery="pull",
            job_id=execution.job_id,
            execution_id=execution.id,
            attempt=execution.attempt,
            outcome=execution.status,
            handler=job.handler if job is not None else None,
            job_status=job.status if job is not None else None,
            error=logs.describe_error(outcome),
        )

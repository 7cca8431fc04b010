"""Recording workers' reports (spec §10.4), apart from any transport: one or several outcomes
in one store call; each report answered for good (recorded, or refused with 404/409) settles this
process's lease for it; a failed attempt wakes admission for its retry, and a finished one of a
handler with limits wakes it to let a waiting job take the freed slot.

A report the store could not take (unavailable) settles nothing: the worker sends it again.
"""

from __future__ import annotations

from chronos_server.core.models import Execution, ExecutionStatus, Outcome
from chronos_server.errors import ChronosError, ServiceUnavailable
from chronos_server.pipeline.services import Pipeline


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
    failed = sum(
        1
        for (_, outcome), result in zip(outcomes, results, strict=True)
        if outcome.status is not ExecutionStatus.COMPLETED and not isinstance(result, ChronosError)
    )
    p.outcomes_recorded(failed=failed, freed_limited=freed)
    return results

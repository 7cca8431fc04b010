"""The lines the worker logs about each attempt, once its report is settled: what happened to
the job, a report the server refused, or a report given up.

The answer to an accepted report is the Execution (§10.4), which says the attempt failed but
not whether the job will run again: that depends on the job's `max_retries`, which a worker never
sees, and on its schedule. So after a retryable failure the worker reads the job once
(`GET /v1/jobs/:id`, §5.8) and logs what the server decided:

    WARNING  Attempt 1 of job J failed, will be retried at 2026-01-15T09:00:02.000Z  error=...
    ERROR    Job J failed for good after 4 attempts  error=...
    ERROR    Job J failed for good after 1 attempt (non-retryable error)  error=...

A non-retryable failure (`ChronosNonRetryableError`, `retryable: false`) fails the job at once
(G-42), so it needs no lookup. If the lookup fails, the line says that it is not known whether
the job is retried. A success is one INFO line.
"""

from __future__ import annotations

import logging

from .api import WorkerAPI
from .context import ChronosContext
from .errors import ChronosError
from .log import Log
from .outcome import Report

# Job states after which the job runs again (§7.2): everything but the terminal ones.
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})


def job_meta(ctx: ChronosContext) -> dict[str, object]:
    return {
        "job_id": ctx.job_id,
        "execution_id": ctx.execution_id,
        "handler": ctx.handler,
        "attempt": ctx.attempt,
    }


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def log_settled(log: Log, ctx: ChronosContext, report: Report) -> bool:
    """Log what became of the job after the server accepted `report`, when that needs no
    lookup (completed, or failed for good); False when it does (`log_attempt`)."""
    if report.status == "completed":
        if log.enabled(logging.INFO):
            log.info(f"Job {ctx.job_id} completed on attempt {ctx.attempt}", **job_meta(ctx))
        return True
    if not report.retryable:
        log.error(
            f"Job {ctx.job_id} failed for good after {_attempts(ctx.attempt)}"
            " (non-retryable error)",
            error=report.error or "unknown error",
            **job_meta(ctx),
        )
        return True
    return False


async def log_attempt(api: WorkerAPI, log: Log, ctx: ChronosContext, report: Report) -> None:
    """Log what became of the job after the server accepted `report`."""
    if log_settled(log, ctx, report):
        return
    meta = job_meta(ctx)
    error = report.error or "unknown error"
    try:
        job = await api.get_job(ctx.job_id)
    except ChronosError as exc:
        log.warning(
            f"Attempt {ctx.attempt} of job {ctx.job_id} failed;"
            " whether it will be retried is unknown (the job could not be read)",
            error=error,
            lookup_error=str(exc),
            **meta,
        )
        return
    if job.status == "failed":
        log.error(
            f"Job {ctx.job_id} failed for good after {_attempts(ctx.attempt)}", error=error, **meta
        )
    elif job.status in TERMINAL_STATES:
        log.warning(
            f"Attempt {ctx.attempt} of job {ctx.job_id} failed; the job is {job.status},"
            " it will not be retried",
            error=error,
            **meta,
        )
    else:
        log.warning(
            f"Attempt {ctx.attempt} of job {ctx.job_id} failed,"
            f" will be retried at {job.run_at or 'a time the server did not say'}",
            error=error,
            **meta,
        )


def _refusal(code: str | None, status: int | None) -> tuple[bool, str]:
    """(serious, why) for a report the server answered with a definite no."""
    if code == "execution_not_found" or (code is None and status == 404):
        return True, "the server has no such execution"
    if code == "lease_expired":
        return False, (
            "its lease had expired and the server has timed the attempt out"
            " (the job is retried if retries remain)"
        )
    if code == "execution_already_finished":
        return False, "the execution was already finished"
    if status == 409 or code == "conflict":
        return False, "conflict"
    if status in (401, 403):
        return True, "the API key was refused"
    return True, "the server does not accept it"


def log_refusal(
    log: Log,
    ctx: ChronosContext,
    report: Report,
    error: str,
    *,
    code: str | None,
    status: int | None,
) -> None:
    """A 4xx (or a refused batch item) to a report: it is not sent again."""
    serious, why = _refusal(code, status)
    emit = log.error if serious else log.warning
    emit(
        f"Report of attempt {ctx.attempt} of job {ctx.job_id} refused: {why}; not retried",
        outcome=report.status,
        error=error,
        **job_meta(ctx),
    )


def log_give_up(log: Log, ctx: ChronosContext, report: Report, tries: int, error: str) -> None:
    """A report that could not be delivered before the attempt's lease ran out."""
    log.error(
        f"Giving up on the report of attempt {ctx.attempt} of job {ctx.job_id} after"
        f" {tries} {'try' if tries == 1 else 'tries'}: its {ctx.timeout} s lease has run out;"
        " the server will time the attempt out and retry the job if retries remain",
        outcome=report.status,
        error=error,
        **job_meta(ctx),
    )

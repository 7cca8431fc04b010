"""Outcomes: finishing executions (retry or final state from `core`), and the sweep of expired
leases and stuck admissions."""

from __future__ import annotations

import json
import random

from chronos_server import errors
from chronos_server.core.models import (
    Execution,
    ExecutionError,
    ExecutionStatus,
    Job,
    JobStatus,
    ObservedOutcome,
    Outcome,
    Overlap,
    ScheduleStatus,
    describe_failure,
)
from chronos_server.core.transitions import decide_after_failure
from chronos_server.store.base import SweepResult, TimedOut
from chronos_server.store.rows import Row, dump_json, execution_from_row, job_from_row
from chronos_server.store.transactions.tx import Tx


def finish_executions(
    tx: Tx,
    account_id: str | None,
    outcomes: list[tuple[str, Outcome]],
    now: int,
    rng: random.Random,
) -> list[Execution | errors.ChronosError]:
    """Several reports in one transaction; each one succeeds or fails on its own (an item's
    checks all run before its first write, so a refused item writes nothing)."""
    results: list[Execution | errors.ChronosError] = []
    for execution_id, outcome in outcomes:
        try:
            results.append(finish_execution(tx, account_id, execution_id, outcome, now, rng))
        except errors.ChronosError as exc:
            results.append(exc)
    return results


def record_push_outcomes(
    tx: Tx, outcomes: list[ObservedOutcome], now: int, rng: random.Random
) -> dict[str, errors.ChronosError]:
    """The outcomes of push requests; returns the ones that could not be recorded, with why.
    Each execution's `finished_at` (and its duration) is when its attempt ended, `ended_at`.
    Completed ones (nearly all of a healthy burst) take two statements in all, compare-and-set
    on `running` as `finish_execution` does; the others go one by one through it (a retry
    decision needs the job), their backoff counted from `ended_at`. Every job's `updated_at`
    is `now`, the time of this write."""
    refused: dict[str, errors.ChronosError] = {}
    completed = [o for o in outcomes if o.outcome.status is ExecutionStatus.COMPLETED]
    if completed:
        items = [
            {
                "id": o.execution_id,
                "http_status": o.outcome.http_status,
                "response_body": o.outcome.response_body,
                "finished_at": o.ended_at,
            }
            for o in completed
        ]
        rows = tx.all("complete_executions", items=json.dumps(items), now=now)
        jobs = [
            {"job_id": row["job_id"], "execution_id": row["id"], "finished_at": row["finished_at"]}
            for row in rows
        ]
        if jobs:
            tx.run("complete_jobs", items=json.dumps(jobs), now=now)
        done = {row["id"] for row in rows}
        for o in completed:
            if o.execution_id not in done:
                row = tx.one("get_execution_any", id=o.execution_id)
                refused[o.execution_id] = refusal(row) or (
                    errors.ExecutionAlreadyFinished()  # finished between the write and this read
                )
    for o in outcomes:
        if o.outcome.status is not ExecutionStatus.COMPLETED:
            try:
                finish_execution(tx, None, o.execution_id, o.outcome, now, rng, ended_at=o.ended_at)
            except errors.ChronosError as exc:
                refused[o.execution_id] = exc
    return refused


def refusal(row: Row | None) -> errors.ChronosError | None:
    """Why an outcome for this execution row cannot be recorded, or None if it can (spec §10.4):
    unknown, timed out by the sweeper, or already finished."""
    if row is None:
        return errors.ExecutionNotFound()
    if row["status"] == ExecutionStatus.TIMEOUT.value:
        return errors.LeaseExpired()
    if row["status"] != ExecutionStatus.RUNNING.value:
        return errors.ExecutionAlreadyFinished()
    return None


def finish_execution(
    tx: Tx,
    account_id: str | None,
    execution_id: str,
    outcome: Outcome,
    now: int,
    rng: random.Random,
    *,
    ended_at: int | None = None,
) -> Execution:
    """Record an outcome at `now`; `ended_at`, when the attempt ended before this write (push
    outcomes are group-committed), is the execution's end and the base of its retry backoff."""
    row = (
        tx.one("get_execution_any", id=execution_id)
        if account_id is None
        else tx.one("get_execution", id=execution_id, account_id=account_id)
    )
    refused = refusal(row)
    if refused is not None:
        raise refused
    assert row is not None
    _apply_outcome(tx, execution_from_row(row), outcome, now, rng, ended_at)
    done = tx.one("get_execution_any", id=execution_id)
    assert done is not None
    return execution_from_row(done)


def _apply_outcome(
    tx: Tx,
    execution: Execution,
    outcome: Outcome,
    now: int,
    rng: random.Random,
    ended_at: int | None = None,
) -> tuple[Job, JobStatus]:
    """Finish the execution and its job; returns the job as it was read and its new state."""
    # Never before the start: a wall clock stepped back must not give a negative duration.
    end = now if ended_at is None else max(ended_at, execution.started_at)
    changed = tx.run(
        "finish_execution",
        id=execution.id,
        status=outcome.status.value,
        finished_at=end,
        result=dump_json(outcome.result),
        error=dump_json(outcome.error.to_json()) if outcome.error else None,
        http_status=outcome.http_status,
        response_body=outcome.response_body,
    )
    if changed != 1:
        # Finished by another transaction since we read it: on PostgreSQL, a sweep whose row lock
        # this write waited for. Answer as if we had read its outcome (spec §10.4).
        now_row = tx.one("get_execution_any", id=execution.id)
        if now_row is not None and now_row["status"] == ExecutionStatus.TIMEOUT.value:
            raise errors.LeaseExpired()
        raise errors.ExecutionAlreadyFinished()
    job_row = tx.one("get_job_any", id=execution.job_id)
    assert job_row is not None
    job = job_from_row(job_row)
    finished: int | None = end
    if outcome.status is ExecutionStatus.COMPLETED:
        status, run_at = JobStatus.COMPLETED, job.run_at
    else:
        decision = decide_after_failure(
            attempt=execution.attempt,
            max_retries=job.max_retries,
            retryable=outcome.retryable,
            retry_withdrawn=_retry_withdrawn(tx, job),
            now_ms=end,
            rng=rng,
        )
        status = decision.status
        run_at = decision.run_at if decision.run_at is not None else job.run_at
        if status is JobStatus.RETRYING and outcome.retry_after_ms is not None:
            run_at = end + outcome.retry_after_ms
        finished = None if status is JobStatus.RETRYING else end
    tx.run(
        "finish_job",
        id=job.id,
        execution_id=execution.id,
        status=status.value,
        run_at=run_at,
        finished_at=finished,
        last_error=describe_failure(outcome),
        now=now,
    )
    return job, status


def _retry_withdrawn(tx: Tx, job: Job) -> bool:
    """No retry may follow a failure of this job: its schedule was archived (G-30), or, under
    `overlap: cancel_previous`, a later slot of it spawned (this job was replaced)."""
    if job.schedule_id is None:
        return False
    row = tx.one("get_schedule_any", id=job.schedule_id)
    if row is None:
        return False
    if row["status"] == ScheduleStatus.ARCHIVED.value:
        return True
    return row["overlap"] == Overlap.CANCEL_PREVIOUS.value and (
        tx.one("newer_spawned_job", schedule_id=job.schedule_id, scheduled_for=job.scheduled_for)
        is not None
    )


def sweep(
    tx: Tx,
    now: int,
    lease_grace_ms: int,
    admitting_grace_ms: int,
    rng: random.Random,
    limit: int,
    recover_admitting: bool = True,
) -> SweepResult:
    expired = tx.all("expired_leases", deadline=now - lease_grace_ms, limit=limit)
    timeout = Outcome(
        ExecutionStatus.TIMEOUT,
        error=ExecutionError("Lease expired before a result was reported", "LeaseExpired"),
    )
    timeouts = []
    for row in expired:
        execution_row = tx.one("get_execution_any", id=row["id"])
        assert execution_row is not None
        execution = execution_from_row(execution_row)
        job, status = _apply_outcome(tx, execution, timeout, now, rng)
        timeouts.append(TimedOut(execution, job.handler, status, job.delivery.type.value))
    recovered = (
        tx.all("stuck_admitting", older_than=now - admitting_grace_ms, now=now)
        if recover_admitting
        else []
    )
    next_end = tx.one("next_lease_end")
    return SweepResult(
        timed_out=len(expired),
        recovered_admitting=len(recovered),
        timeouts=tuple(timeouts),
        next_lease_end=next_end["at"] if next_end is not None else None,
    )

"""The store's transactions as plain synchronous functions over a `Tx`, shared by every dialect.

Each function here runs inside ONE database transaction opened by the dialect's store (in a worker
thread). Dialects differ only in their named SQL; the decisions (which slot, which retry) come from
the pure `core` functions, applied here as compare-and-set writes.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from dataclasses import replace
from typing import Any, Protocol

from chronos_server import errors
from chronos_server.core import slots
from chronos_server.core.models import (
    ClaimedJob,
    Execution,
    ExecutionError,
    ExecutionStatus,
    Job,
    JobStatus,
    Outcome,
    Schedule,
    ScheduleStatus,
    Trigger,
)
from chronos_server.core.transitions import decide_after_failure, trigger_for_attempt
from chronos_server.store.base import ReadyBatch, Stats, SweepResult
from chronos_server.store.rows import (
    Row,
    dump_json,
    execution_from_row,
    job_from_row,
    job_params,
    schedule_from_row,
    schedule_params,
)


class Tx(Protocol):
    def one(self, query: str, **params: Any) -> Row | None: ...
    def all(self, query: str, **params: Any) -> list[Row]: ...
    def run(self, query: str, **params: Any) -> int: ...


def new_id() -> str:
    return str(uuid.uuid4())


# --- schedules -----------------------------------------------------------------------------


def replace_schedule(
    tx: Tx, s: Schedule, expected_status: ScheduleStatus, expected_updated_at: int
) -> bool:
    params = schedule_params(s)
    params.update(expected_status=expected_status.value, expected_updated_at=expected_updated_at)
    return tx.run("replace_schedule", **params) == 1


def archive_schedule(tx: Tx, account_id: str, schedule_id: str, now: int) -> Schedule:
    current = _schedule_or_404(tx, account_id, schedule_id)
    _require_active(current)
    if tx.run("archive_schedule", id=schedule_id, now=now) != 1:
        raise errors.ScheduleStatusChanged()
    tx.run("cancel_schedule_jobs", schedule_id=schedule_id, now=now)
    return _schedule_or_404(tx, account_id, schedule_id)


def run_schedule_now(tx: Tx, account_id: str, schedule_id: str, job_id: str, now: int) -> Job:
    s = _schedule_or_404(tx, account_id, schedule_id)
    _require_active(s)
    job = _job_from_schedule(s, job_id, now, now, Trigger.MANUAL, idempotency_key=None)
    tx.run("insert_job", **job_params(job))
    run_count = s.run_count + 1
    done = slots.completes_before(s.next_run_at, s.runs, run_count, s.stop_at)
    updated = _advance(s, run_count, s.next_run_at, s.last_run_at, done, now)
    if not replace_schedule(tx, updated, ScheduleStatus.ACTIVE, s.updated_at):
        raise errors.ScheduleStatusChanged()
    return job


def spawn_due_schedules(tx: Tx, now: int, limit: int) -> int:
    spawned = 0
    for row in tx.all("due_schedules", now=now, limit=limit):
        spawned += _spawn_one(tx, schedule_from_row(row), now)
    return spawned


def _spawn_one(tx: Tx, s: Schedule, now: int) -> int:
    assert s.next_run_at is not None
    interval_ms = s.interval.ms if s.interval else None
    slot, following = slots.latest_due_slot(
        s.cron, interval_ms, s.timezone, s.anchor_at, s.next_run_at, now
    )
    if s.stop_at is not None and slot > s.stop_at:
        slot, following = slots.latest_due_slot(
            s.cron, interval_ms, s.timezone, s.anchor_at, s.next_run_at, s.stop_at
        )
    job = _job_from_schedule(s, new_id(), slot, now, Trigger.SCHEDULE, f"{s.id}.{slot}")
    inserted = tx.run("insert_job", **job_params(job))
    run_count = s.run_count + inserted
    done = slots.completes_before(following, s.runs, run_count, s.stop_at)
    updated = _advance(s, run_count, following, slot, done, now)
    replace_schedule(tx, updated, ScheduleStatus.ACTIVE, s.updated_at)
    return inserted


def _advance(
    s: Schedule, run_count: int, next_run: int | None, last_run: int | None, done: bool, now: int
) -> Schedule:
    return replace(
        s,
        run_count=run_count,
        next_run_at=None if done else next_run,
        last_run_at=last_run,
        status=ScheduleStatus.COMPLETED if done else s.status,
        completed_at=now if done else s.completed_at,
        updated_at=max(now, s.updated_at + 1),
    )


def _job_from_schedule(
    s: Schedule, job_id: str, slot: int, now: int, trigger: Trigger, idempotency_key: str | None
) -> Job:
    return Job(
        id=job_id,
        account_id=s.account_id,
        schedule_id=s.id,
        name=s.name,
        description=s.description,
        handler=s.handler,
        delivery=s.delivery,
        payload=s.payload,
        timeout=s.timeout,
        max_retries=s.max_retries,
        idempotency_key=idempotency_key,
        status=JobStatus.PENDING,
        scheduled_for=slot,
        run_at=slot,
        attempt_count=0,
        last_execution_id=None,
        first_trigger=trigger,
        created_at=now,
        updated_at=now,
    )


def _schedule_or_404(tx: Tx, account_id: str, schedule_id: str) -> Schedule:
    row = tx.one("get_schedule", id=schedule_id, account_id=account_id)
    if row is None:
        raise errors.ScheduleNotFound()
    return schedule_from_row(row)


def _require_active(s: Schedule) -> None:
    if s.status is ScheduleStatus.ARCHIVED:
        raise errors.ScheduleArchived()
    if s.status is ScheduleStatus.COMPLETED:
        raise errors.ScheduleCompleted()


# --- jobs ----------------------------------------------------------------------------------


def insert_job(tx: Tx, job: Job) -> None:
    if tx.run("insert_job", **job_params(job)) == 1:
        return
    row = tx.one("job_by_idempotency_key", account_id=job.account_id, key=job.idempotency_key)
    raise errors.IdempotencyKeyConflict(row["id"] if row else "unknown")


def cancel_job(tx: Tx, account_id: str, job_id: str, now: int) -> Job:
    if tx.run("cancel_job", id=job_id, account_id=account_id, now=now) == 1:
        return _job_or_404(tx, account_id, job_id)
    _job_or_404(tx, account_id, job_id)
    raise errors.JobNotCancellable()


def _job_or_404(tx: Tx, account_id: str, job_id: str) -> Job:
    row = tx.one("get_job", id=job_id, account_id=account_id)
    if row is None:
        raise errors.JobNotFound()
    return job_from_row(row)


def stats(tx: Tx, account_id: str, since: int) -> Stats:
    counts = {
        (r["handler"], JobStatus(r["status"])): int(r["n"])
        for query in ("stats_open_counts", "stats_finished_counts")
        for r in tx.all(query, account_id=account_id, since=since)
    }
    oldest = {
        r["handler"]: int(r["oldest"]) for r in tx.all("stats_oldest_ready", account_id=account_id)
    }
    per_minute = {
        (int(r["minute"]), JobStatus(r["status"])): int(r["n"])
        for r in tx.all("stats_per_minute", account_id=account_id, since=since)
    }
    return Stats(counts, oldest, per_minute)


# --- admission and dispatch ----------------------------------------------------------------


def take_due_jobs(tx: Tx, now: int, limit: int) -> list[str]:
    return [r["id"] for r in tx.all("take_due_jobs", now=now, limit=limit)]


def queue_admitted(tx: Tx, job_ids: list[str], now: int) -> int:
    """`admitting` → `queued` (or `cancelled` under an archived schedule), one statement."""
    return tx.run("queue_admitted_jobs", ids=json.dumps(job_ids), now=now)


def next_wakeup(tx: Tx) -> int | None:
    times = [
        row["t"]
        for row in (tx.one("next_due_job"), tx.one("next_due_schedule"))
        if row is not None and row["t"] is not None
    ]
    return min(times) if times else None


def ready_pull_jobs(tx: Tx, now: int, limit: int) -> list[ReadyBatch]:
    counts = Counter(
        (r["account_id"], r["handler"]) for r in tx.all("ready_pull_jobs", now=now, limit=limit)
    )
    return [ReadyBatch(account, handler, n) for (account, handler), n in counts.items()]


def claim_ready_jobs(
    tx: Tx, account_id: str, handlers: list[str], worker: str | None, now: int, limit: int
) -> list[ClaimedJob]:
    """Up to `limit` ready jobs of the named handlers, oldest `run_at` first, each started."""
    candidates = [
        row
        for handler in handlers
        for row in tx.all(
            "oldest_ready_for_handler", account_id=account_id, handler=handler, limit=limit
        )
    ]
    candidates.sort(key=lambda r: (r["run_at"], r["created_at"], r["id"]))
    return start_executions(tx, candidates[:limit], JobStatus.READY, worker, now)


def start_execution(
    tx: Tx, job: Job, expected: JobStatus, worker: str | None, now: int
) -> ClaimedJob | None:
    """Job `expected` -> `running` plus a new `running` execution, or None if the CAS lost."""
    execution_id = new_id()
    moved = tx.run(
        "start_job",
        id=job.id,
        execution_id=execution_id,
        now=now,
        expected_status=expected.value,
        expected_attempts=job.attempt_count,
    )
    if moved != 1:
        return None
    claimed = _started(job, execution_id, worker, now)
    execution = claimed.execution
    tx.run(
        "insert_execution",
        id=execution.id,
        job_id=job.id,
        account_id=job.account_id,
        attempt=execution.attempt,
        trigger=execution.trigger.value,
        started_at=now,
        lease_expires_at=execution.lease_expires_at,
        worker=worker,
    )
    return claimed


def _started(job: Job, execution_id: str, worker: str | None, now: int) -> ClaimedJob:
    """The job and its new execution as `start_job` left them."""
    attempt = job.attempt_count + 1
    started = replace(
        job,
        status=JobStatus.RUNNING,
        attempt_count=attempt,
        last_execution_id=execution_id,
        updated_at=now,
    )
    return ClaimedJob(started, _new_execution(started, execution_id, attempt, worker, now))


def _new_execution(
    job: Job, execution_id: str, attempt: int, worker: str | None, now: int
) -> Execution:
    return Execution(
        id=execution_id,
        job_id=job.id,
        account_id=job.account_id,
        attempt=attempt,
        trigger=trigger_for_attempt(attempt, job.first_trigger),
        status=ExecutionStatus.RUNNING,
        started_at=now,
        finished_at=None,
        duration_ms=None,
        lease_expires_at=now + job.timeout * 1000,
        worker=worker,
        result=None,
        error=None,
    )


def start_push_jobs(tx: Tx, now: int, limit: int) -> list[ClaimedJob]:
    """`queued` push jobs → `running`, each with a new execution; the sender makes the request."""
    return start_executions(
        tx, tx.all("queued_push_jobs", limit=limit), JobStatus.QUEUED, None, now
    )


def start_executions(
    tx: Tx, rows: list[Row], expected: JobStatus, worker: str | None, now: int
) -> list[ClaimedJob]:
    """`start_execution` for the jobs of many rows in three statements, not two per job: a
    burst of thousands of due jobs is bounded by statements, and on SQLite each one hands the
    GIL back and forth with the Trio thread. A job whose compare-and-set lost is left out."""
    if not rows:
        return []
    execution_ids = [new_id() for _ in rows]
    items = [
        {"id": row["id"], "execution_id": execution_id, "attempts": row["attempt_count"]}
        for row, execution_id in zip(rows, execution_ids, strict=True)
    ]
    moved = {
        row["id"]
        for row in tx.all(
            "start_jobs", items=json.dumps(items), now=now, expected_status=expected.value
        )
    }
    started = [
        _started_from_row(row, execution_id, worker, now)
        for row, execution_id in zip(rows, execution_ids, strict=True)
        if row["id"] in moved
    ]
    if started:
        executions = [
            {
                "id": c.execution.id,
                "job_id": c.job.id,
                "account_id": c.job.account_id,
                "attempt": c.execution.attempt,
                "trigger": c.execution.trigger.value,
                "lease_expires_at": c.execution.lease_expires_at,
            }
            for c in started
        ]
        tx.run("insert_executions", items=json.dumps(executions), started_at=now, worker=worker)
    return started


def _started_from_row(row: Row, execution_id: str, worker: str | None, now: int) -> ClaimedJob:
    attempt = row["attempt_count"] + 1
    job = job_from_row(
        row,
        status=JobStatus.RUNNING,
        attempt_count=attempt,
        last_execution_id=execution_id,
        updated_at=now,
    )
    return ClaimedJob(job, _new_execution(job, execution_id, attempt, worker, now))


def unclaim(tx: Tx, claimed: ClaimedJob, now: int) -> bool:
    """Undo a claim whose answer never reached the worker: the job is `ready` again."""
    previous = tx.one(
        "previous_execution_id", job_id=claimed.job.id, attempt=claimed.execution.attempt - 1
    )
    moved = tx.run(
        "unclaim_job",
        job_id=claimed.job.id,
        execution_id=claimed.execution.id,
        previous_execution_id=previous["id"] if previous else None,
        now=now,
    )
    if moved != 1:
        return False
    tx.run("delete_running_execution", id=claimed.execution.id)
    return True


# --- outcomes ------------------------------------------------------------------------------


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


def finish_execution(
    tx: Tx,
    account_id: str | None,
    execution_id: str,
    outcome: Outcome,
    now: int,
    rng: random.Random,
) -> Execution:
    row = (
        tx.one("get_execution_any", id=execution_id)
        if account_id is None
        else tx.one("get_execution", id=execution_id, account_id=account_id)
    )
    if row is None:
        raise errors.ExecutionNotFound()
    execution = execution_from_row(row)
    if execution.status is ExecutionStatus.TIMEOUT:
        raise errors.LeaseExpired()
    if execution.status is not ExecutionStatus.RUNNING:
        raise errors.ExecutionAlreadyFinished()
    _apply_outcome(tx, execution, outcome, now, rng)
    done = tx.one("get_execution_any", id=execution_id)
    assert done is not None
    return execution_from_row(done)


def _apply_outcome(
    tx: Tx, execution: Execution, outcome: Outcome, now: int, rng: random.Random
) -> None:
    changed = tx.run(
        "finish_execution",
        id=execution.id,
        status=outcome.status.value,
        now=now,
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
    finished: int | None = now
    if outcome.status is ExecutionStatus.COMPLETED:
        status, run_at = JobStatus.COMPLETED, job.run_at
    else:
        decision = decide_after_failure(
            attempt=execution.attempt,
            max_retries=job.max_retries,
            retryable=outcome.retryable,
            schedule_archived=_schedule_archived(tx, job),
            now_ms=now,
            rng=rng,
        )
        status = decision.status
        run_at = decision.run_at if decision.run_at is not None else job.run_at
        if status is JobStatus.RETRYING and outcome.retry_after_ms is not None:
            run_at = now + outcome.retry_after_ms
        finished = None if status is JobStatus.RETRYING else now
    tx.run(
        "finish_job",
        id=job.id,
        execution_id=execution.id,
        status=status.value,
        run_at=run_at,
        finished_at=finished,
        now=now,
    )


def _schedule_archived(tx: Tx, job: Job) -> bool:
    if job.schedule_id is None:
        return False
    row = tx.one("get_schedule_any", id=job.schedule_id)
    return row is not None and row["status"] == ScheduleStatus.ARCHIVED.value


def sweep(
    tx: Tx, now: int, lease_grace_ms: int, admitting_grace_ms: int, rng: random.Random, limit: int
) -> SweepResult:
    expired = tx.all("expired_leases", deadline=now - lease_grace_ms, limit=limit)
    timeout = Outcome(
        ExecutionStatus.TIMEOUT,
        error=ExecutionError("Lease expired before a result was reported", "LeaseExpired"),
    )
    for row in expired:
        execution_row = tx.one("get_execution_any", id=row["id"])
        assert execution_row is not None
        _apply_outcome(tx, execution_from_row(execution_row), timeout, now, rng)
    recovered = tx.all("stuck_admitting", older_than=now - admitting_grace_ms, now=now)
    return SweepResult(timed_out=len(expired), recovered_admitting=len(recovered))

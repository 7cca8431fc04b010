"""Admission and dispatch: due jobs taken and queued, ready batches, claims, starting executions,
and undoing a claim that never reached its worker."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

from chronos_server.core.models import ClaimedJob, Execution, ExecutionStatus, Job, JobStatus
from chronos_server.core.transitions import trigger_for_attempt
from chronos_server.store.base import Admitted, ReadyBatch, Released
from chronos_server.store.rows import Row, job_from_row
from chronos_server.store.transactions.limits import release_limited
from chronos_server.store.transactions.schedules import spawn_due_schedules
from chronos_server.store.transactions.tx import Tx, new_id

# While any job is held behind an earlier one of its schedule (`overlap: queue`), admission looks
# again this often (the spec's scheduler tick, G-45) to release it once that one has finished:
# no finishing statement (a report, the sweep, a cancel) has to know about held jobs.
HELD_RECHECK_MS = 1_000


def admit_due(tx: Tx, now: int, limit: int, push_lead: int = 0) -> Admitted:
    """One admission pass: held jobs whose turn came released, due schedule slots spawned, then
    due jobs past admission in one statement (pull `ready`, push `queued` — push jobs due
    within `push_lead` too —, archived schedule's `cancelled`), then the next due time (a push
    job's less the lead) — one transaction, whatever it finds."""
    released = release_held_jobs(tx, now, limit)
    spawned = spawn_due_schedules(tx, now, limit)
    rows = tx.all("admit_due_jobs", now=now, push_by=now + push_lead, limit=limit)
    ready = Counter((r["account_id"], r["handler"]) for r in rows if r["status"] == "ready")
    queued = sum(1 for r in rows if r["status"] == "queued")
    row = tx.one("next_wakeup")
    wake = row["t"] if row is not None else None
    push = tx.one("next_due_push")
    wake = push_wakeup(wake, push["t"] if push is not None else None, push_lead)
    following = tx.one("next_due_pull")
    claimable = None
    if following is not None and following["handler"] is not None and following["run_at"] == wake:
        claimable = (following["account_id"], following["handler"])
    admitted = Admitted(
        spawned=spawned,
        ready=[ReadyBatch(account, handler, n) for (account, handler), n in ready.items()],
        queued_push=queued,
        taken=len(rows),
        next_wakeup=held_recheck(wake, any_held(tx), now),
        released=released,
        next_claimable=claimable,
    )
    if tx.one("any_limited_job") is None:
        return admitted
    return with_limited_released(admitted, release_limited(tx, now, limit))


def with_limited_released(admitted: Admitted, out: Released) -> Admitted:
    """The pass's result with what the limits released added in."""
    wakes = [w for w in (admitted.next_wakeup, out.next_wakeup) if w is not None]
    wake = min(wakes) if wakes else None
    return replace(
        admitted,
        ready=admitted.ready + out.ready,
        queued_push=admitted.queued_push + out.queued_push,
        next_wakeup=wake,
        # The hand-off is for the next due job's instant, not an earlier token's.
        next_claimable=admitted.next_claimable if wake == admitted.next_wakeup else None,
        limited_released=out.count,
        limited_more=out.more,
    )


def push_wakeup(wake: int | None, next_push: int | None, push_lead: int) -> int | None:
    """The next wake-up of admission: the next due time, or the push lead before the next push
    job if that comes first."""
    if next_push is None:
        return wake
    ahead = next_push - push_lead
    return ahead if wake is None else min(wake, ahead)


def release_held_jobs(tx: Tx, now: int, limit: int) -> int:
    """`overlap: queue`: each schedule's oldest held job whose earlier jobs all finished becomes
    `pending` (due now); returns how many."""
    return len(tx.all("release_held_jobs", now=now, limit=limit))


def any_held(tx: Tx) -> bool:
    return tx.one("any_held_job") is not None


def held_recheck(next_wakeup: int | None, held: bool, now: int) -> int | None:
    """The next due time, no later than one tick from now while jobs are held."""
    if not held:
        return next_wakeup
    recheck = now + HELD_RECHECK_MS
    return recheck if next_wakeup is None else min(next_wakeup, recheck)


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
    tx: Tx,
    account_id: str,
    handlers: list[str],
    worker: str | None,
    now: int,
    limit: int,
    due_by: int | None = None,
) -> list[ClaimedJob]:
    """Up to `limit` jobs of the named handlers, oldest `run_at` first, each started: `ready`
    ones, and pull jobs still `pending`/`retrying` due by `due_by` (default `now`: a claimer
    woken at a due instant needs no admission pass first). Each is started as of `started_at`."""
    due = now if due_by is None else max(now, due_by)
    candidates: list[Row] = []
    for handler in handlers:
        key = {"account_id": account_id, "handler": handler, "limit": limit}
        candidates += tx.all("oldest_ready_for_handler", **key)
        candidates += tx.all("oldest_due_for_handler", now=due, **key)
    unique = {row["id"]: row for row in candidates}.values()  # a handler may be named twice
    chosen = sorted(unique, key=lambda r: (r["run_at"], r["created_at"], r["id"]))[:limit]
    groups: dict[tuple[str, int], list[Row]] = {}  # by status and start
    for row in chosen:
        start = started_at(row["run_at"], now, due_by)
        groups.setdefault((row["status"], start), []).append(row)
    started: dict[str, ClaimedJob] = {}
    for (status, at), group in groups.items():
        for claimed in start_executions(tx, group, JobStatus(status), worker, at):
            started[claimed.job.id] = claimed
    return [started[row["id"]] for row in chosen if row["id"] in started]


def started_at(run_at: int, now: int, due_by: int | None) -> int:
    """When a claim at `now` starts a job due at `run_at`: at `now`, unless the claim takes jobs
    ahead of their due instant (`due_by` later than `now`), which start at that instant."""
    if due_by is not None and due_by > now:
        return max(now, run_at)
    return now


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
    """`queued` push jobs → `running`, each with a new execution; the sender makes the request.
    A job admitted ahead of its due instant (within the push lead) is started as of that
    instant, its lease counted from there: the sender sends it then, never before."""
    groups: dict[int, list[Row]] = {}
    for row in tx.all("queued_push_jobs", limit=limit):
        groups.setdefault(max(now, row["run_at"]), []).append(row)
    started: list[ClaimedJob] = []
    for at, group in groups.items():
        started += start_executions(tx, group, JobStatus.QUEUED, None, at)
    return started


def start_executions(
    tx: Tx, rows: list[Row], expected: JobStatus, worker: str | None, now: int
) -> list[ClaimedJob]:
    """`expected` jobs → `running`, each with a new `running` execution, in three statements
    whatever the batch size, not two per job: a
    burst of thousands of due jobs is bounded by statements, and on SQLite each one hands the
    GIL back and forth with the Trio thread. A job whose compare-and-set lost is left out."""
    rows = list({row["id"]: row for row in rows}.values())  # one start per job, whatever came in
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


def claimed_from_started(row: Row, worker: str | None, now: int) -> ClaimedJob:
    """A job row as a claim statement left it (`running`, attempt counted, `last_execution_id`
    the new execution's id), with that execution."""
    job = job_from_row(row)
    assert job.last_execution_id is not None
    return ClaimedJob(
        job, _new_execution(job, job.last_execution_id, job.attempt_count, worker, now)
    )


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

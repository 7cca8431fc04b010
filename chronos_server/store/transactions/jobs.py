"""Jobs: insert, one or several (idempotency-key conflicts), cancel, and the per-account stats."""

from __future__ import annotations

import json

from chronos_server import errors
from chronos_server.core.limits import HandlerLimit
from chronos_server.core.models import Job, JobStatus
from chronos_server.core.transitions import REPLAYABLE_JOB_STATUSES, replay
from chronos_server.store.base import ReplayFilter, Stats
from chronos_server.store.rows import HELD, LIMITED, Row, job_from_row, job_params
from chronos_server.store.transactions.tx import Tx, new_id


def insert_job(tx: Tx, job: Job) -> None:
    holder = _insert(tx, job)
    if holder is not None:
        raise errors.IdempotencyKeyConflict(holder)


def insert_jobs(tx: Tx, jobs: list[Job]) -> list[str | None]:
    """Each job inserted in turn (None), or the id of the job already holding its idempotency
    key, stored before or one of these: what creating each in turn would answer."""
    return [_insert(tx, job) for job in jobs]


def _insert(tx: Tx, job: Job) -> str | None:
    if tx.run("insert_job", **job_params(job)) == 1:
        return None
    return insert_holder(tx, job)


def insert_holder(tx: Tx, job: Job) -> str:
    """The id of the job holding the key that kept `job` out."""
    row = tx.one("job_by_idempotency_key", account_id=job.account_id, key=job.idempotency_key)
    return str(row["id"]) if row else "unknown"


def cancel_job(tx: Tx, account_id: str, job_id: str, now: int) -> Job:
    if tx.run("cancel_job", id=job_id, account_id=account_id, now=now) == 1:
        return _job_or_404(tx, account_id, job_id)
    _job_or_404(tx, account_id, job_id)
    raise errors.JobNotCancellable()


def replay_job(tx: Tx, account_id: str, job_id: str, new_job_id: str, now: int) -> Job:
    original = _job_or_404(tx, account_id, job_id)
    if original.status not in REPLAYABLE_JOB_STATUSES:
        raise errors.InvalidState(
            f"Only completed, failed or cancelled jobs can be replayed; this one is "
            f"{original.status.value}"
        )
    job = replay(original, new_job_id, now)
    tx.run("insert_job", **job_params(job))
    return job


def replay_jobs(tx: Tx, account_id: str, which: ReplayFilter, now: int) -> list[Job]:
    statuses = sorted(s.value for s in which.statuses & REPLAYABLE_JOB_STATUSES)
    rows = tx.all(
        "replayable_jobs",
        account_id=account_id,
        statuses=json.dumps(statuses),
        handler=which.handler,
        schedule_id=which.schedule_id,
        since=which.since,
        until=which.until,
        limit=which.limit,
    )
    jobs = [replay(job_from_row(row), new_id(), now) for row in rows]
    for job in jobs:
        tx.run("insert_job", **job_params(job))
    return jobs


def _job_or_404(tx: Tx, account_id: str, job_id: str) -> Job:
    row = tx.one("get_job", id=job_id, account_id=account_id)
    if row is None:
        raise errors.JobNotFound()
    return job_from_row(row)


# Stored statuses the API shows as another: `held` (overlap: queue) is `pending`; `limited` (a
# handler limit holds the job; h-limits) is `queued`.
SHOWN_AS = {HELD: JobStatus.PENDING, LIMITED: JobStatus.QUEUED}

OPEN_STATES = frozenset(
    s for s in JobStatus if s not in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
)


def stats_from_rows(
    counts: list[Row], finished: list[Row], oldest: list[Row], limits: list[HandlerLimit]
) -> Stats:
    """Stats from the rows of `stats_state_counts` (open states: the kept counts),
    `stats_finished` (terminal states finished in the window, per minute),
    `stats_oldest_ready`, and the account's handler limits. A `held` job is `pending` to the
    API, a `limited` one `queued` (and counted in `limited`); handler '' in the counts is
    none."""
    found: dict[tuple[str | None, JobStatus], int] = {}
    limited: dict[str, int] = {}
    for r in counts:
        status = SHOWN_AS.get(r["status"]) or JobStatus(r["status"])
        if status in OPEN_STATES:
            key = (r["handler"] or None, status)
            found[key] = found.get(key, 0) + int(r["n"])
            if r["status"] == LIMITED and r["handler"]:
                limited[r["handler"]] = limited.get(r["handler"], 0) + int(r["n"])
    per_minute: dict[tuple[int, JobStatus], int] = {}
    for r in finished:
        done, n = JobStatus(r["status"]), int(r["n"])
        found[(r["handler"], done)] = found.get((r["handler"], done), 0) + n
        if done is not JobStatus.CANCELLED:
            minute = (int(r["minute"]), done)
            per_minute[minute] = per_minute.get(minute, 0) + n
    ready = {r["handler"]: int(r["oldest"]) for r in oldest if r["oldest"] is not None}
    return Stats(found, ready, per_minute, {lim.handler: lim for lim in limits}, limited)


def ready_handlers(counts: list[Row]) -> str:
    """The handlers with `ready` jobs in `stats_state_counts` rows, as the JSON array
    `stats_oldest_ready` takes."""
    return json.dumps(
        sorted(r["handler"] for r in counts if r["status"] == "ready" and r["handler"])
    )

"""Jobs: insert, one or several (idempotency-key conflicts), cancel, and the per-account stats."""

from __future__ import annotations

import json

from chronos_server import errors
from chronos_server.core.models import Job, JobStatus
from chronos_server.store.base import Stats
from chronos_server.store.rows import HELD, job_from_row, job_params
from chronos_server.store.transactions.tx import Tx


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


def _job_or_404(tx: Tx, account_id: str, job_id: str) -> Job:
    row = tx.one("get_job", id=job_id, account_id=account_id)
    if row is None:
        raise errors.JobNotFound()
    return job_from_row(row)


OPEN_STATES = frozenset(
    s for s in JobStatus if s not in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
)


def stats(tx: Tx, account_id: str, since: int) -> Stats:
    """Open states from the kept counts (no scan); terminal states finished since `since` from
    one index range. A `held` job is `pending` to the API; handler '' in the counts is none."""
    counts: dict[tuple[str | None, JobStatus], int] = {}
    for r in tx.all("stats_state_counts", account_id=account_id):
        status = JobStatus.PENDING if r["status"] == HELD else JobStatus(r["status"])
        if status in OPEN_STATES:
            key = (r["handler"] or None, status)
            counts[key] = counts.get(key, 0) + int(r["n"])
    per_minute: dict[tuple[int, JobStatus], int] = {}
    for r in tx.all("stats_finished", account_id=account_id, since=since):
        finished, n = JobStatus(r["status"]), int(r["n"])
        counts[(r["handler"], finished)] = counts.get((r["handler"], finished), 0) + n
        if finished is not JobStatus.CANCELLED:
            minute = (int(r["minute"]), finished)
            per_minute[minute] = per_minute.get(minute, 0) + n
    ready = sorted(h for h, s in counts if s is JobStatus.READY and h is not None)
    oldest = {
        r["handler"]: int(r["oldest"])
        for r in tx.all("stats_oldest_ready", account_id=account_id, handlers=json.dumps(ready))
        if r["oldest"] is not None
    }
    return Stats(counts, oldest, per_minute)

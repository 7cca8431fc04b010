"""Jobs: insert, one or several (idempotency-key conflicts), cancel, and the per-account stats."""

from __future__ import annotations

from chronos_server import errors
from chronos_server.core.models import Job, JobStatus
from chronos_server.store.base import Stats
from chronos_server.store.rows import LIMITED, job_from_row, job_params
from chronos_server.store.transactions.limits import list_limits
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


def stats(tx: Tx, account_id: str, since: int) -> Stats:
    counts: dict[tuple[str | None, JobStatus], int] = {}
    limited: dict[str, int] = {}
    for query in ("stats_open_counts", "stats_finished_counts"):
        for r in tx.all(query, account_id=account_id, since=since):
            handler, n = r["handler"], int(r["n"])
            if r["status"] == LIMITED:  # `queued` to the API, waiting for its handler's limit
                limited[handler] = n
                key = (handler, JobStatus.QUEUED)
            else:
                key = (handler, JobStatus(r["status"]))
            counts[key] = counts.get(key, 0) + n
    oldest = {
        r["handler"]: int(r["oldest"]) for r in tx.all("stats_oldest_ready", account_id=account_id)
    }
    per_minute = {
        (int(r["minute"]), JobStatus(r["status"])): int(r["n"])
        for r in tx.all("stats_per_minute", account_id=account_id, since=since)
    }
    limits = {lim.handler: lim for lim in list_limits(tx, account_id)}
    return Stats(counts, oldest, per_minute, limits, limited)

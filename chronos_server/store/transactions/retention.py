"""Retention: one batch of expired finished jobs (with their executions) and ended schedules
deleted in one transaction, or counted for a dry run. The loop is `loops/retention.py`."""

from __future__ import annotations

import json
from collections.abc import Mapping

from chronos_server.core.models import JobStatus
from chronos_server.store.base import Pruned
from chronos_server.store.transactions.tx import Tx

FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


def prune(
    tx: Tx, cutoffs: Mapping[JobStatus, int], schedules_before: int | None, limit: int
) -> Pruned:
    """Up to `limit` finished jobs whose status has a cutoff and that finished before it, their
    executions, then (room left) up to the rest of `limit` ended schedules with no job left."""
    taken: list[str] = []
    for status, before in _finished(cutoffs):
        for account_id in _accounts(tx):
            if len(taken) >= limit:
                break
            rows = tx.all(
                "expired_jobs",
                account_id=account_id,
                status=status.value,
                before=before,
                limit=limit - len(taken),
            )
            taken.extend(str(r["id"]) for r in rows)
    jobs: dict[str, int] = {}
    executions = 0
    if taken:
        ids = json.dumps(taken)
        executions = tx.run("delete_executions_of_jobs", ids=ids)
        for row in tx.all("delete_finished_jobs", ids=ids):
            jobs[row["status"]] = jobs.get(row["status"], 0) + 1
    schedules = 0
    if schedules_before is not None and len(taken) < limit:
        found = tx.all("expired_schedules", before=schedules_before, limit=limit - len(taken))
        if found:
            schedules = tx.run("delete_schedules", ids=json.dumps([r["id"] for r in found]))
    return Pruned(jobs, executions, schedules, tuple(taken))


def count_prunable(
    tx: Tx, cutoffs: Mapping[JobStatus, int], schedules_before: int | None
) -> Pruned:
    """What pruning everything now would delete (a dry run); schedules counted are those with
    no job left now."""
    jobs: dict[str, int] = {}
    executions = 0
    for status, before in _finished(cutoffs):
        for account_id in _accounts(tx):
            params = {"account_id": account_id, "status": status.value, "before": before}
            jobs[status.value] = jobs.get(status.value, 0) + _n(tx, "count_expired_jobs", params)
            executions += _n(tx, "count_expired_executions", params)
    schedules = 0
    if schedules_before is not None:
        schedules = _n(tx, "count_expired_schedules", {"before": schedules_before})
    return Pruned(jobs, executions, schedules, ())


def _finished(cutoffs: Mapping[JobStatus, int]) -> list[tuple[JobStatus, int]]:
    return [(status, cutoffs[status]) for status in FINISHED if status in cutoffs]


def _accounts(tx: Tx) -> list[str]:
    return [str(r["id"]) for r in tx.all("account_ids")]


def _n(tx: Tx, query: str, params: Mapping[str, object]) -> int:
    row = tx.one(query, **params)
    return int(row["n"]) if row else 0

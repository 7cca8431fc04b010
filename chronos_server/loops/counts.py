"""Folds the job-count deltas (migration 0009's statement triggers on PostgreSQL) into the kept
counts every `fold_seconds`, so `GET /v1/stats` reads a few rows however many jobs there are.

Safe across replicas: the fold statement takes a transaction-level advisory lock (the others
fold nothing that round). Stats stay exact without it (they read the unfolded deltas too); the
fold only keeps that tail short. On SQLite the triggers update the counts in place: nothing to
fold.
"""

from __future__ import annotations

import itertools
import logging

import trio

from chronos_server.errors import StoreUnavailable
from chronos_server.pipeline.services import Pipeline

log = logging.getLogger("chronos.counts")
FOLD_SECONDS = 1.0
VACUUM_EVERY = 60  # folds: the deltas table is vacuumed this often, whatever autovacuum does


async def fold_counts_once(p: Pipeline, *, vacuum: bool = False) -> int:
    return await p.store.fold_counts(vacuum=vacuum)


async def run_count_folding(
    p: Pipeline,
    fold_seconds: float = FOLD_SECONDS,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    if p.store.dialect != "postgres":
        return
    for n in itertools.count(1):
        try:
            await fold_counts_once(p, vacuum=n % VACUUM_EVERY == 0)
        except StoreUnavailable as exc:
            log.warning("count folding: store unavailable (%s); backing off", exc)
        await trio.sleep(fold_seconds)

"""Folds the job-count deltas (the statement triggers of migrations 0009 and 0011 on PostgreSQL)
into the kept counts every `fold_seconds` (`IDLE_FACTOR` times that after a fold that found
nothing), so `GET /v1/stats` reads a few rows however many jobs there are; per-minute finished
counts older than `KEEP_MINUTES` are dropped (on SQLite, where row triggers keep the counts in
place, that is all it does, once a minute).

Safe across replicas: the fold statement takes a transaction-level advisory lock (the others
fold nothing that round). Stats stay exact without it (they read the unfolded deltas too); the
fold only keeps that tail short.
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
# Per-minute finished counts are kept this long: the longest stats window (1,440 minutes) and
# a margin for clocks that differ between replicas.
KEEP_MINUTES = 1500
SQLITE_EVERY = 60  # SQLite has nothing to fold: the old minutes are dropped once a minute
IDLE_FACTOR = 10  # after a fold that found no delta, the next one comes this many times later


async def fold_counts_once(p: Pipeline, *, vacuum: bool = False) -> int:
    keep_from = p.clock.now_ms() // 60_000 - KEEP_MINUTES
    return await p.store.fold_counts(vacuum=vacuum, keep_from_minute=keep_from)


async def run_count_folding(
    p: Pipeline,
    fold_seconds: float = FOLD_SECONDS,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    task_status.started()
    if p.store.dialect != "postgres":
        # SQLite's triggers keep the counts in place: only the old minutes go, now and then.
        fold_seconds *= SQLITE_EVERY
    for n in itertools.count(1):
        folded = 0
        try:
            folded = await fold_counts_once(p, vacuum=n % VACUUM_EVERY == 0)
        except StoreUnavailable as exc:
            log.warning("count folding: store unavailable (%s); backing off", exc)
        # Nothing to fold: nothing is moving, so the next fold can wait (an idle server's
        # database sees one statement every IDLE_FACTOR seconds from here, not one a second).
        await trio.sleep(fold_seconds * (1 if folded else IDLE_FACTOR))

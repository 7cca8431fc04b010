"""`chronos prune [--dry-run]`: apply the retention rule (`CHRONOS_RETENTION`) once, now, from
the command line: what the server's retention loop does every minute, in the same batches
(or, with `--dry-run`, only count what would go). Kept apart from the argument parsing so any
CLI front end calls the same thing."""

from __future__ import annotations

from chronos_server.clock import Clock, SystemClock
from chronos_server.loops.retention import Pruner, batch_size_for
from chronos_server.settings import Retention
from chronos_server.store.base import Pruned
from chronos_server.store.open import open_store


async def prune(
    database_url: str, retention: Retention, *, dry_run: bool, clock: Clock | None = None
) -> Pruned:
    clock = clock or SystemClock()
    async with open_store(database_url) as store:
        if dry_run:
            now = clock.now_ms()
            return await store.count_prunable(
                retention.cutoffs(now), retention.schedules_before(now)
            )
        pruner = Pruner(store, clock, retention, batch_size_for(store), pause_seconds=0)
        return await pruner.round_once()


def report(pruned: Pruned, retention: Retention, *, dry_run: bool) -> str:
    """One line for people (and a stable shape for scripts)."""
    detail = ", ".join(f"{status} {n}" for status, n in sorted(pruned.jobs.items()) if n)
    verb = "Would delete" if dry_run else "Deleted"
    return (
        f"{verb} {pruned.total_jobs} job(s){f' ({detail})' if detail else ''},"
        f" {pruned.executions} execution(s), {pruned.schedules} schedule(s)"
        f" [retention: {retention.describe()}]"
    )

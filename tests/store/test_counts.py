"""The kept job counts behind `GET /v1/stats` (migration 0009) on every store: after inserts,
moves, cancels, finishes and deletes they equal a full count; on PostgreSQL the deltas fold
into `job_counts` without changing what stats answer, and concurrent folds never count twice."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import trio

from chronos_server.core.models import JobStatus
from chronos_server.store.base import Store
from tests.pg import connect, open_test_store
from tests.store.conftest import (
    DONE,
    FAIL,
    T0,
    Accounts,
    advance_to_ready,
    insert_running,
    make_job,
)

FINISHED = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


async def shown(store: Store, account_id: str) -> Counter[tuple[str | None, str]]:
    stats = await store.stats(account_id, 0)
    return Counter({(h, s.value): n for (h, s), n in stats.counts.items() if n})


async def counted(store: Store, account_id: str) -> Counter[tuple[str | None, str]]:
    found: Counter[tuple[str | None, str]] = Counter()
    for status in JobStatus:
        page = await store.list_jobs(
            account_id, statuses=[status], schedule_id=None, handler=None, offset=0, limit=100
        )
        for job in page.items:
            found[(job.handler, status.value)] += 1
    return found


async def workload(store: Store, acct: Accounts, rng: random.Random) -> None:
    await store.insert_jobs([make_job(acct.a, handler=h) for h in ("h", "g", "h")])
    await store.insert_job(make_job(acct.a, handler=None, run_at=T0 + 10**9))  # a push-less none
    await store.insert_job(make_job(acct.b, handler="h"))
    await advance_to_ready(store, T0)
    done = await insert_running(store, acct.a, T0 + 1, handler="r")
    await store.finish_execution(acct.a, done.execution.id, DONE, T0 + 2, rng)
    retry = await insert_running(store, acct.a, T0 + 3, handler="q")
    await store.finish_execution(acct.a, retry.execution.id, FAIL, T0 + 4, rng)
    await insert_running(store, acct.a, T0 + 5, handler="s")
    cancelled = make_job(acct.a, run_at=T0 + 10**9)
    await store.insert_job(cancelled)
    await store.cancel_job(acct.a, cancelled.id, T0 + 6)
    await store.prune({JobStatus.COMPLETED: T0 + 3}, None, 10)  # a delete moves counts too


async def test_stats_counts_equal_a_full_count(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    await workload(store, acct, rng)
    assert await shown(store, acct.a) == await counted(store, acct.a)
    assert sum((await shown(store, acct.a)).values()) >= 6
    assert await shown(store, acct.b) == await counted(store, acct.b)
    await store.fold_counts()
    assert await shown(store, acct.a) == await counted(store, acct.a)


@pytest.mark.stores("postgres")
async def test_folding_moves_deltas_into_counts_once(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    await workload(store, acct, rng)
    before = await shown(store, acct.a)
    url = store._conninfo  # type: ignore[attr-defined]
    with connect(url) as conn:
        pending = conn.execute("SELECT count(*) FROM job_count_deltas").fetchone()
    assert pending is not None
    deltas = int(str(pending[0]))
    assert deltas > 0
    async with open_test_store(url) as other:
        folded: list[int] = []

        async def fold(s: Store) -> None:
            for _ in range(5):
                folded.append(await s.fold_counts(vacuum=True))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fold, store)
            nursery.start_soon(fold, other)
    assert sum(folded) == deltas
    with connect(url) as conn:
        left = conn.execute("SELECT count(*) FROM job_count_deltas").fetchone()
    assert left == (0,)
    assert await shown(store, acct.a) == before == await counted(store, acct.a)

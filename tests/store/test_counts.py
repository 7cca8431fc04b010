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
OPEN = {s.value for s in JobStatus if s not in FINISHED}


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
        pending = conn.execute(
            "SELECT (SELECT count(*) FROM job_count_deltas)"
            " + (SELECT count(*) FROM job_finished_deltas)"
        ).fetchone()
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


async def finished_by_minute(store: Store, account_id: str) -> Counter[tuple[int, str]]:
    found: Counter[tuple[int, str]] = Counter()
    for status in (JobStatus.COMPLETED, JobStatus.FAILED):
        page = await store.list_jobs(
            account_id, statuses=[status], schedule_id=None, handler=None, offset=0, limit=100
        )
        for job in page.items:
            assert job.finished_at is not None
            found[(job.finished_at // 60_000, status.value)] += 1
    return found


async def test_finished_per_minute_equals_a_full_count(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    await workload(store, acct, rng)
    for minute in (1, 3):
        late = await insert_running(store, acct.a, T0 + minute * 60_000, handler="r")
        await store.finish_execution(acct.a, late.execution.id, DONE, T0 + minute * 60_000, rng)
    expected = await finished_by_minute(store, acct.a)
    assert len(expected) >= 2  # two minutes at least
    stats = await store.stats(acct.a, 0)
    assert Counter({(m, s.value): n for (m, s), n in stats.per_minute.items() if n}) == expected
    window = await store.stats(acct.a, (T0 // 60_000 + 2) * 60_000)  # the later minutes only
    assert {m for m, _ in window.per_minute} == {(T0 + 3 * 60_000) // 60_000}
    await store.fold_counts()
    stats = await store.stats(acct.a, 0)
    assert Counter({(m, s.value): n for (m, s), n in stats.per_minute.items() if n}) == expected


async def test_folding_drops_the_minutes_before_the_longest_window(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    await workload(store, acct, rng)
    late = await insert_running(store, acct.a, T0 + 3 * 60_000, handler="r")
    await store.finish_execution(acct.a, late.execution.id, DONE, T0 + 3 * 60_000 + 5, rng)
    last = (T0 + 3 * 60_000) // 60_000
    await store.fold_counts(keep_from_minute=last)
    stats = await store.stats(acct.a, 0)
    assert {m for m, _ in stats.per_minute} == {last}
    # The open states' counts are not per minute: folding keeps them whole.
    assert {k: n for k, n in (await shown(store, acct.a)).items() if k[1] in OPEN} == {
        k: n for k, n in (await counted(store, acct.a)).items() if k[1] in OPEN
    }
    await store.prune({JobStatus.COMPLETED: T0 + 10**9}, None, 100)  # old minutes' deltas
    await store.fold_counts(keep_from_minute=last)
    if store.dialect == "postgres":
        url = store._conninfo  # type: ignore[attr-defined]
        with connect(url) as conn:
            kept = conn.execute(
                "SELECT count(*) FROM job_finished_counts WHERE minute < %s", (last,)
            ).fetchone()
            left = conn.execute("SELECT count(*) FROM job_finished_deltas").fetchone()
        assert kept == (0,) and left == (0,)
    # The completed job of the kept minute is gone too: its delta (-1) folded into that minute.
    assert not {k: n for k, n in (await store.stats(acct.a, 0)).per_minute.items() if n}

"""Retention on every store: only finished jobs past their status's period go, with their
executions; a job that is not finished never does; ended schedules with no job left follow;
replicas pruning at once (PostgreSQL) take disjoint batches."""

from __future__ import annotations

import random

import pytest
import trio

from chronos_server.core.models import JobStatus, ScheduleStatus
from chronos_server.settings import DAY_MS, Retention, parse_retention
from chronos_server.store.base import Store
from tests.pg import open_test_store
from tests.store.conftest import (
    DONE,
    FAIL,
    FATAL,
    T0,
    Accounts,
    insert_running,
    make_job,
    make_schedule,
    must_job,
)

LATER = T0 + 31 * DAY_MS  # 30 days (the default period) and one day after T0


async def finished(store: Store, acct: Accounts, now: int, rng: random.Random, how: str) -> str:
    """A job finished at `now` (`completed`, `failed` or `cancelled`), with an execution unless
    cancelled; its id."""
    if how == "cancelled":
        job = make_job(acct.a, created_at=now, run_at=now + 1000)
        await store.insert_job(job)
        await store.cancel_job(acct.a, job.id, now)
        return job.id
    claimed = await insert_running(store, acct.a, now)
    await store.finish_execution(
        acct.a, claimed.execution.id, DONE if how == "completed" else FATAL, now, rng
    )
    return claimed.job.id


async def test_only_finished_jobs_past_the_period_go_with_their_executions(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    old = {how: await finished(store, acct, T0, rng, how) for how in ("completed", "failed")}
    old["cancelled"] = await finished(store, acct, T0, rng, "cancelled")
    young = await finished(store, acct, T0 + 2 * DAY_MS, rng, "completed")
    running = (await insert_running(store, acct.a, T0)).job.id
    retrying = await insert_running(store, acct.a, T0 + 1)
    await store.finish_execution(acct.a, retrying.execution.id, FAIL, T0 + 2, rng)
    assert (await must_job(store, acct.a, retrying.job.id)).status is JobStatus.RETRYING
    pending = make_job(acct.a, created_at=T0, run_at=T0)
    await store.insert_job(pending)
    old_runs = {
        job_id: [
            e.id
            for e in (
                await store.list_executions(
                    acct.a, job_id=job_id, statuses=None, offset=0, limit=10
                )
            ).items
        ]
        for job_id in old.values()
    }
    retention = Retention()

    dry = await store.count_prunable(retention.cutoffs(LATER), None)
    assert dry.jobs == {"completed": 1, "failed": 1, "cancelled": 1} and dry.executions == 2
    assert await store.get_job(acct.a, old["completed"]) is not None  # a dry run deletes nothing

    pruned = await store.prune(retention.cutoffs(LATER), None, 100)
    assert sorted(pruned.job_ids) == sorted(old.values())
    assert pruned.jobs == {"completed": 1, "failed": 1, "cancelled": 1}
    assert pruned.executions == 2
    for job_id in old.values():
        assert await store.get_job(acct.a, job_id) is None
        for execution_id in old_runs[job_id]:
            assert await store.get_execution(acct.a, execution_id) is None
    for job_id in (young, running, retrying.job.id, pending.id):
        assert await store.get_job(acct.a, job_id) is not None
    assert await store.get_execution(acct.a, retrying.execution.id) is not None

    # Long after: still only finished jobs (the young one now), never the others.
    much_later = await store.prune(retention.cutoffs(LATER + 365 * DAY_MS), None, 100)
    assert list(much_later.job_ids) == [young]
    for job_id in (running, retrying.job.id, pending.id):
        assert await store.get_job(acct.a, job_id) is not None


async def test_periods_per_status_and_off(store: Store, acct: Accounts, rng: random.Random) -> None:
    done = await finished(store, acct, T0, rng, "completed")
    failed = await finished(store, acct, T0, rng, "failed")
    keep_failed = parse_retention("30d,failed=90d")
    assert list((await store.prune(keep_failed.cutoffs(LATER), None, 100)).job_ids) == [done]
    assert await store.get_job(acct.a, failed) is not None
    nothing = parse_retention("off")
    assert not nothing.enabled
    assert (await store.prune(nothing.cutoffs(LATER + 999 * DAY_MS), None, 100)).job_ids == ()
    gone = await store.prune(keep_failed.cutoffs(T0 + 91 * DAY_MS), None, 100)
    assert list(gone.job_ids) == [failed]


async def test_batches_are_bounded_and_add_up(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    ids = {await finished(store, acct, T0, rng, "completed") for _ in range(7)}
    cutoffs = Retention().cutoffs(LATER)
    seen: list[str] = []
    while batch := (await store.prune(cutoffs, None, 3)).job_ids:
        assert len(batch) <= 3
        seen.extend(batch)
    assert sorted(seen) == sorted(ids)


async def test_ended_schedules_with_no_job_left_follow(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    active = make_schedule(acct.a)
    empty = make_schedule(acct.a)
    busy = make_schedule(acct.a)
    for schedule in (active, empty, busy):
        await store.insert_schedule(schedule)
    await store.archive_schedule(acct.a, empty.id, T0)
    await store.archive_schedule(acct.a, busy.id, T0)
    kept = make_job(acct.a, schedule_id=busy.id, created_at=T0, run_at=T0 + DAY_MS * 400)
    await store.insert_job(kept)  # still pending: its schedule stays
    retention = Retention()
    dry = await store.count_prunable({}, retention.schedules_before(LATER))
    assert dry.schedules == 1
    pruned = await store.prune({}, retention.schedules_before(LATER), 100)
    assert pruned.schedules == 1
    assert await store.get_schedule(acct.a, empty.id) is None
    assert (await store.get_schedule(acct.a, busy.id)) is not None
    assert (await store.get_schedule(acct.a, active.id)).status is ScheduleStatus.ACTIVE  # type: ignore[union-attr]
    none_yet = await store.prune({}, retention.schedules_before(T0 + DAY_MS), 100)
    assert none_yet.schedules == 0


@pytest.mark.stores("postgres")
async def test_two_replicas_never_delete_the_same_batch_nor_deadlock(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    expired = {await finished(store, acct, T0, rng, how) for how in ("completed", "failed") * 60}
    url = store._conninfo  # type: ignore[attr-defined]
    cutoffs = Retention().cutoffs(LATER)
    taken: list[list[str]] = [[], []]
    async with open_test_store(url) as other:

        async def replica(s: Store, mine: list[str]) -> None:
            while batch := await s.prune(cutoffs, None, 7):
                if not batch.job_ids:
                    return
                mine.extend(batch.job_ids)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(replica, store, taken[0])
                nursery.start_soon(replica, other, taken[1])
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == sorted(expired)
    assert len(taken[0]) + len(taken[1]) == len(expired)

"""Per-handler limits in the store (README "Handler limits"): admission holds a limited handler's
due jobs in `queued` (stored `limited`) and lets them go as `max_running` and `max_per_second`
allow; a claim never takes one straight from `pending`; a finish, a lease's end and removing the
limit free what they should. On every store."""

from __future__ import annotations

import random

import trio

from chronos_server.core.models import (
    Delivery,
    DeliveryType,
    ExecutionStatus,
    HttpTarget,
    JobStatus,
    Outcome,
)
from chronos_server.store.base import Store

from .conftest import DONE, FAIL, T0, Accounts, make_job, must_job

PUSH = Delivery(DeliveryType.PUSH, HttpTarget("https://example.com/hook", "POST"))
BATCH = 500


async def active(store: Store, account_id: str, handler: str = "h") -> int:
    """Jobs of the handler counted against `max_running`: ready or running."""
    page = await store.list_jobs(
        account_id,
        statuses=[JobStatus.READY, JobStatus.RUNNING],
        schedule_id=None,
        handler=handler,
        offset=0,
        limit=1,
    )
    return page.total


async def count(store: Store, account_id: str, status: JobStatus, handler: str = "h") -> int:
    page = await store.list_jobs(
        account_id, statuses=[status], schedule_id=None, handler=handler, offset=0, limit=1
    )
    return page.total


async def insert_due(store: Store, account_id: str, n: int, **kw: object) -> list[str]:
    jobs = [make_job(account_id, run_at=T0 - 1000 + i, **kw) for i in range(n)]  # type: ignore[arg-type]
    for job in jobs:
        await store.insert_job(job)
    return [job.id for job in jobs]


async def test_max_running_never_lets_a_third_job_go_while_fifty_drain(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    await store.set_handler_limits(acct.a, "h", 2, None, T0)
    await insert_due(store, acct.a, 50)
    await insert_due(store, acct.a, 5, handler="free")  # an unlimited handler is not held back
    now = T0
    admitted = await store.admit_due(now, BATCH)
    assert sorted((b.handler, b.count) for b in admitted.ready) == [("free", 5), ("h", 2)]
    assert await count(store, acct.a, JobStatus.QUEUED) == 48
    finished = 0
    while finished < 50:
        assert await active(store, acct.a) <= 2
        now += 10
        claimed = await store.claim_ready_jobs(acct.a, ["h"], "w", now, 10)
        assert 1 <= len(claimed) <= 2
        assert await active(store, acct.a) <= 2
        # One fails (its retry comes back through admission, and waits its turn too).
        outcome = FAIL if finished % 7 == 3 else DONE
        await store.finish_execution(acct.a, claimed[0].execution.id, outcome, now, rng)
        finished += outcome is DONE
        now += 60_000 if outcome is FAIL else 0  # the retry falls due
        admitted = await store.admit_due(now, BATCH)
        assert sum(b.count for b in admitted.ready) <= 2
        assert await active(store, acct.a) <= 2
        if len(claimed) == 2:
            await store.finish_execution(acct.a, claimed[1].execution.id, DONE, now, rng)
            finished += 1
            await store.admit_due(now, BATCH)
    assert await count(store, acct.a, JobStatus.QUEUED) == 0
    assert await count(store, acct.a, JobStatus.COMPLETED) == 50


async def test_a_claim_never_starts_a_limited_handlers_due_job_straight_from_pending(
    store: Store, acct: Accounts
) -> None:
    await store.set_handler_limits(acct.a, "h", 1, None, T0)
    [first, second] = await insert_due(store, acct.a, 2)
    assert await store.claim_ready_jobs(acct.a, ["h"], "w", T0, 10) == []
    admitted = await store.admit_due(T0, BATCH)
    assert admitted.next_claimable is None
    assert (await must_job(store, acct.a, first)).status is JobStatus.READY
    # Waiting for the limit shows as `queued` in every job representation and filter.
    assert (await must_job(store, acct.a, second)).status is JobStatus.QUEUED
    claimed = await store.claim_ready_jobs(acct.a, ["h"], "w", T0, 10)
    assert [c.job.id for c in claimed] == [first]


async def test_stats_count_waiting_jobs_as_queued_and_say_how_many_wait_for_the_limit(
    store: Store, acct: Accounts
) -> None:
    await store.set_handler_limits(acct.a, "h", 1, 5.0, T0)
    await insert_due(store, acct.a, 3)
    await store.admit_due(T0, BATCH)
    stats = await store.stats(acct.a, T0 - 60_000)
    assert stats.counts[("h", JobStatus.QUEUED)] == 2
    assert stats.counts[("h", JobStatus.READY)] == 1
    assert stats.limited == {"h": 2}
    assert stats.limits["h"].max_running == 1
    assert stats.limits["h"].max_per_second == 5.0
    assert (await store.stats(acct.b, T0 - 60_000)).limits == {}  # another account's own


async def test_a_start_rate_releases_one_job_per_token_and_says_when_the_next_comes(
    store: Store, acct: Accounts
) -> None:
    await store.set_handler_limits(acct.a, "h", None, 10.0, T0)  # one per 100 ms, burst 1
    await insert_due(store, acct.a, 40)
    now, released, wakes = T0, 0, 0
    while now < T0 + 2_000:
        admitted = await store.admit_due(now, BATCH)
        released += sum(b.count for b in admitted.ready)
        claimed = await store.claim_ready_jobs(acct.a, ["h"], "w", now, 100)
        assert len(claimed) <= 1
        assert admitted.next_wakeup is not None and admitted.next_wakeup > now
        now, wakes = admitted.next_wakeup, wakes + 1
    # 2 s at 10/s: the full bucket's one, then one per token (t = 0, 100, ..., 1900 ms).
    assert released == 20
    assert wakes == 20  # each wake-up released one: the token time is exact, nothing polls


async def test_removing_a_limit_lets_every_waiting_job_go_at_once(
    store: Store, acct: Accounts
) -> None:
    await store.set_handler_limits(acct.a, "h", 1, None, T0)
    await insert_due(store, acct.a, 4)
    await insert_due(store, acct.a, 2, handler="h", delivery=PUSH)
    await store.admit_due(T0, BATCH)
    assert await count(store, acct.a, JobStatus.QUEUED) == 5
    released = await store.delete_handler_limits(acct.a, "h", T0 + 1)
    assert released is not None
    assert [(b.handler, b.count) for b in released.ready] == [("h", 3)]
    assert released.queued_push == 2
    assert await count(store, acct.a, JobStatus.READY) == 4
    assert await store.delete_handler_limits(acct.a, "h", T0 + 2) is None
    assert await store.get_handler_limits(acct.a, "h") is None


async def test_push_jobs_count_from_their_release_until_they_are_answered(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    await store.set_handler_limits(acct.a, "h", 2, None, T0)
    await insert_due(store, acct.a, 5, delivery=PUSH)
    admitted = await store.admit_due(T0, BATCH)
    assert admitted.queued_push == 2 and admitted.limited_released == 2
    started = await store.start_push_jobs(T0, 10)
    assert len(started) == 2
    assert (await store.admit_due(T0 + 1, BATCH)).queued_push == 0
    outcome = Outcome(ExecutionStatus.COMPLETED, http_status=200)
    from chronos_server.core.models import ObservedOutcome

    await store.record_push_outcomes(
        [ObservedOutcome(started[0].execution.id, outcome, T0 + 2)], T0 + 2, rng
    )
    assert (await store.admit_due(T0 + 3, BATCH)).queued_push == 1


async def test_a_slot_held_by_an_expired_lease_frees_when_the_sweep_ends_it(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    await store.set_handler_limits(acct.a, "h", 1, None, T0)
    await insert_due(store, acct.a, 2)
    await store.admit_due(T0, BATCH)
    [claimed] = await store.claim_ready_jobs(acct.a, ["h"], "w", T0, 10)  # the worker dies
    assert (await store.admit_due(T0 + 1, BATCH)).ready == []
    late = T0 + 31_000 + 5_000
    await store.sweep(late, 5_000, 30_000, rng, 100)
    admitted = await store.admit_due(late, BATCH)
    assert [(b.handler, b.count) for b in admitted.ready] == [("h", 1)]
    assert (await must_job(store, acct.a, claimed.job.id)).status is JobStatus.RETRYING


async def test_cancelling_a_waiting_job_and_archiving_leave_nothing_behind(
    store: Store, acct: Accounts
) -> None:
    await store.set_handler_limits(acct.a, "h", 1, None, T0)
    [_, waiting] = await insert_due(store, acct.a, 2)
    await store.admit_due(T0, BATCH)
    cancelled = await store.cancel_job(acct.a, waiting, T0 + 1)
    assert cancelled.status is JobStatus.CANCELLED
    assert (await store.stats(acct.a, T0)).limited == {}


async def test_setting_limits_replaces_them_and_keeps_the_bucket_within_its_new_burst(
    store: Store, acct: Accounts
) -> None:
    first = await store.set_handler_limits(acct.a, "h", 3, 100.0, T0)
    assert (first.max_running, first.max_per_second, first.tokens) == (3, 100.0, 10.0)
    second = await store.set_handler_limits(acct.a, "h", None, 2.0, T0 + 5)
    assert (second.max_running, second.max_per_second, second.tokens) == (None, 2.0, 1.0)
    assert second.created_at == T0 and second.updated_at == T0 + 5
    await store.set_handler_limits(acct.a, "a-first", 1, None, T0)
    assert [x.handler for x in await store.list_handler_limits(acct.a)] == ["a-first", "h"]
    assert await store.list_handler_limits(acct.b) == []
    assert await store.limited_handlers() == {(acct.a, "h"), (acct.a, "a-first")}


async def test_concurrent_admission_passes_never_exceed_the_limit(
    store: Store, acct: Accounts
) -> None:
    """Several passes at once (on PostgreSQL each its own connection, as replicas would be):
    the limit row's lock makes them count one after another."""
    await store.set_handler_limits(acct.a, "h", 3, None, T0)
    await insert_due(store, acct.a, 30)
    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(store.admit_due, T0 + i, 5)
    assert await active(store, acct.a) == 3

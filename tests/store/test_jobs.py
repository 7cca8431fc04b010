"""Jobs: storage round trip, idempotency keys (§12, §16), listing (§5.8, G-36), cancel (G-41)."""

from __future__ import annotations

import random

import pytest

from chronos_server import errors
from chronos_server.core.models import (
    Delivery,
    DeliveryType,
    HttpTarget,
    JobStatus,
    Trigger,
)
from chronos_server.store.base import Store

from .conftest import (
    DONE,
    FATAL,
    T0,
    Accounts,
    insert_running,
    job_ids,
    make_job,
    make_schedule,
    must_job,
)

CANCELLABLE = [
    JobStatus.PENDING,
    JobStatus.ADMITTING,
    JobStatus.QUEUED,
    JobStatus.READY,
    JobStatus.RETRYING,
]


async def test_job_round_trips_every_field(store: Store, acct: Accounts) -> None:
    push = Delivery(
        DeliveryType.PUSH,
        HttpTarget("https://example.com/hook", "PUT", {"X-Tenant": "t_1", "X-Ünïcode": "ö"}),
    )
    job = make_job(
        acct.a,
        handler=None,
        delivery=push,
        payload={"nested": {"list": [1, 2.5, None, True]}, "text": "snow ☃"},
        idempotency_key="order-42",
        timeout=17,
        max_retries=0,
        first_trigger=Trigger.MANUAL,
        run_at=T0 + 1234,
    )
    await store.insert_job(job)
    assert await store.get_job(acct.a, job.id) == job
    assert await store.get_job(acct.a, "job-missing") is None


async def test_same_idempotency_key_conflicts_and_names_the_holder(
    store: Store, acct: Accounts
) -> None:
    first = make_job(acct.a, idempotency_key="webhook-7")
    await store.insert_job(first)
    second = make_job(acct.a, idempotency_key="webhook-7", handler="other")

    with pytest.raises(errors.IdempotencyKeyConflict) as info:
        await store.insert_job(second)

    assert info.value.existing_job_id == first.id
    assert [e.to_json() for e in info.value.errors] == [
        {
            "field": "idempotency_key",
            "message": f"already used by job {first.id}",
            "job_id": first.id,
        }
    ]
    assert await store.get_job(acct.a, second.id) is None
    assert await job_ids(store, acct.a) == [first.id]


async def test_idempotency_key_is_scoped_to_the_account(store: Store, acct: Accounts) -> None:
    mine = make_job(acct.a, idempotency_key="shared")
    theirs = make_job(acct.b, idempotency_key="shared")
    await store.insert_job(mine)
    await store.insert_job(theirs)
    assert await store.get_job(acct.b, theirs.id) == theirs


async def test_null_idempotency_keys_never_conflict(store: Store, acct: Accounts) -> None:
    jobs = [make_job(acct.a, idempotency_key=None, created_at=T0 + i) for i in range(3)]
    for job in jobs:
        await store.insert_job(job)
    assert await job_ids(store, acct.a) == [j.id for j in reversed(jobs)]


async def test_list_jobs_filters_orders_and_pages(store: Store, acct: Accounts) -> None:
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    specs = [
        (JobStatus.PENDING, "a", None),
        (JobStatus.READY, "b", schedule.id),
        (JobStatus.PENDING, "b", schedule.id),
        (JobStatus.COMPLETED, "a", None),
        (JobStatus.PENDING, "a", schedule.id),
    ]
    jobs = [
        make_job(acct.a, status=st, handler=h, schedule_id=sid, created_at=T0 + 10 * i)
        for i, (st, h, sid) in enumerate(specs)
    ]
    # Inserted out of creation order: the listing must sort, not echo insertion order.
    for job in [jobs[2], jobs[0], jobs[4], jobs[1], jobs[3]]:
        await store.insert_job(job)
    await store.insert_job(make_job(acct.b, created_at=T0 + 100))
    ids = [j.id for j in jobs]

    assert await job_ids(store, acct.a) == ids[::-1]
    assert await job_ids(store, acct.a, status=JobStatus.PENDING) == [ids[4], ids[2], ids[0]]
    assert await job_ids(store, acct.a, handler="b") == [ids[2], ids[1]]
    assert await job_ids(store, acct.a, schedule_id=schedule.id) == [ids[4], ids[2], ids[1]]
    assert await job_ids(
        store, acct.a, status=JobStatus.PENDING, schedule_id=schedule.id, handler="a"
    ) == [ids[4]]
    assert await job_ids(store, acct.a, status=JobStatus.FAILED) == []

    page = await store.list_jobs(
        acct.a, statuses=None, schedule_id=None, handler=None, offset=1, limit=2
    )
    assert [j.id for j in page.items] == [ids[3], ids[2]] and page.total == 5
    filtered = await store.list_jobs(
        acct.a, statuses=[JobStatus.PENDING], schedule_id=None, handler=None, offset=2, limit=2
    )
    assert [j.id for j in filtered.items] == [ids[0]] and filtered.total == 3
    past_end = await store.list_jobs(
        acct.a, statuses=None, schedule_id=None, handler=None, offset=50, limit=10
    )
    assert past_end.items == [] and past_end.total == 5


@pytest.mark.parametrize("status", CANCELLABLE)
async def test_cancel_from_each_cancellable_state(
    store: Store, acct: Accounts, status: JobStatus
) -> None:
    job = make_job(acct.a, status=status)
    await store.insert_job(job)

    cancelled = await store.cancel_job(acct.a, job.id, T0 + 500)

    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.finished_at == T0 + 500
    assert await must_job(store, acct.a, job.id) == cancelled
    assert await store.take_due_jobs(T0 + 10_000, 10) == []
    assert await store.claim_ready_job(acct.a, ["h"], None, T0 + 10_000) is None


async def test_cancel_running_job_is_refused(store: Store, acct: Accounts) -> None:
    running = await insert_running(store, acct.a, T0)
    with pytest.raises(errors.JobNotCancellable):
        await store.cancel_job(acct.a, running.job.id, T0 + 1)
    assert await must_job(store, acct.a, running.job.id) == running.job


@pytest.mark.parametrize("outcome_name", ["completed", "failed"])
async def test_cancel_finished_job_is_refused(
    store: Store, acct: Accounts, rng: random.Random, outcome_name: str
) -> None:
    running = await insert_running(store, acct.a, T0)
    outcome = DONE if outcome_name == "completed" else FATAL
    await store.finish_execution(acct.a, running.execution.id, outcome, T0 + 10, rng)
    before = await must_job(store, acct.a, running.job.id)

    with pytest.raises(errors.JobNotCancellable):
        await store.cancel_job(acct.a, running.job.id, T0 + 20)
    assert await must_job(store, acct.a, running.job.id) == before


async def test_cancel_twice_is_refused(store: Store, acct: Accounts) -> None:
    job = make_job(acct.a)
    await store.insert_job(job)
    first = await store.cancel_job(acct.a, job.id, T0 + 1)
    with pytest.raises(errors.JobNotCancellable):
        await store.cancel_job(acct.a, job.id, T0 + 2)
    assert await must_job(store, acct.a, job.id) == first


async def test_cancel_missing_job(store: Store, acct: Accounts) -> None:
    with pytest.raises(errors.JobNotFound):
        await store.cancel_job(acct.a, "job-missing", T0)

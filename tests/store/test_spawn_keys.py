"""Spawn keys and client idempotency keys live in separate namespaces (§6.5, §12).

A spawned job holds its slot as `(schedule_id, spawn_slot)` under its own unique index; client keys
keep `(account_id, idempotency_key)`. So a one-off job whose key reads exactly like a spawn key
`{schedule_id}.{slot_ms}` can neither make the schedule skip that slot nor be refused because of
it, while each slot still spawns once. The API shows a spawned job's key as before (§5 table).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from chronos_server import errors
from chronos_server.core.models import Job, ScheduleStatus, Trigger
from chronos_server.store.base import Store

from .conftest import (
    MINUTE,
    T0,
    Accounts,
    job_ids,
    make_job,
    make_schedule,
    must_job,
    must_schedule,
    schedule_jobs,
)

SLOT = T0 + MINUTE  # the first slot of a `make_schedule` (anchor T0, every minute)


async def spawned(store: Store, account_id: str, schedule_id: str) -> list[Job]:
    jobs = await schedule_jobs(store, account_id, schedule_id)
    return [j for j in jobs if j.first_trigger is Trigger.SCHEDULE]


async def test_a_one_off_job_holding_the_next_spawn_key_does_not_block_the_slot(
    store: Store, acct: Accounts
) -> None:
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    squatter = make_job(acct.a, idempotency_key=f"{schedule.id}.{SLOT}")
    await store.insert_job(squatter)

    assert await store.spawn_due_schedules(SLOT + 3, 100) == 1

    [job] = await spawned(store, acct.a, schedule.id)
    assert job.id != squatter.id
    assert (job.scheduled_for, job.schedule_id) == (SLOT, schedule.id)
    assert job.idempotency_key == f"{schedule.id}.{SLOT}"  # shown as before (§5, §12.2)
    after = await must_schedule(store, acct.a, schedule.id)
    assert (after.run_count, after.last_run_at) == (1, SLOT)
    assert await must_job(store, acct.a, squatter.id) == squatter  # untouched, still a one-off


async def test_squatting_every_key_form_of_a_slot_blocks_nothing(
    store: Store, acct: Accounts
) -> None:
    """The spawn key and look-alikes, taken in this account and in the other one."""
    schedule = make_schedule(acct.a, runs=1)
    await store.insert_schedule(schedule)
    for key in (f"{schedule.id}.{SLOT}", f"{schedule.id}.{SLOT}.0", f" {schedule.id}.{SLOT}"):
        await store.insert_job(make_job(acct.a, idempotency_key=key))
        await store.insert_job(make_job(acct.b, idempotency_key=key))

    assert await store.spawn_due_schedules(SLOT, 100) == 1

    assert [j.scheduled_for for j in await spawned(store, acct.a, schedule.id)] == [SLOT]
    assert (await must_schedule(store, acct.a, schedule.id)).status is ScheduleStatus.COMPLETED


async def test_a_client_key_equal_to_a_spawned_jobs_key_is_neither_refused_nor_merged(
    store: Store, acct: Accounts
) -> None:
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    assert await store.spawn_due_schedules(SLOT, 100) == 1
    [spawn] = await spawned(store, acct.a, schedule.id)
    key = f"{schedule.id}.{SLOT}"

    first = make_job(acct.a, idempotency_key=key, created_at=SLOT + 1)
    await store.insert_job(first)  # a new job of its own, not a conflict with the spawned one

    assert await must_job(store, acct.a, first.id) == first
    assert await must_job(store, acct.a, spawn.id) == spawn
    # The client namespace still works as §12.1 says: the second use names the client's job.
    second = make_job(acct.a, idempotency_key=key, created_at=SLOT + 2)
    with pytest.raises(errors.IdempotencyKeyConflict) as info:
        await store.insert_job(second)
    assert info.value.existing_job_id == first.id
    assert await job_ids(store, acct.a) == [first.id, spawn.id]


async def test_a_slot_spawns_once_even_if_the_schedule_comes_back_to_it(
    store: Store, acct: Accounts
) -> None:
    """The spawn namespace's own unique index, not the schedule's next_run_at, makes the second
    insert a no-op (as a replica holding a stale read would find)."""
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    assert await store.spawn_due_schedules(SLOT, 100) == 1
    after = await must_schedule(store, acct.a, schedule.id)
    rewound = replace(after, next_run_at=SLOT, updated_at=after.updated_at + 1)
    assert await store.replace_schedule(
        rewound, expected_status=ScheduleStatus.ACTIVE, expected_updated_at=after.updated_at
    )

    assert await store.spawn_due_schedules(SLOT + 5, 100) == 0

    assert [j.scheduled_for for j in await spawned(store, acct.a, schedule.id)] == [SLOT]
    assert (await must_schedule(store, acct.a, schedule.id)).run_count == 1


async def test_run_now_jobs_and_spawned_jobs_do_not_collide(store: Store, acct: Accounts) -> None:
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    manual = await store.run_schedule_now(acct.a, schedule.id, "job-manual-1", SLOT)
    assert manual.idempotency_key is None and manual.scheduled_for == SLOT

    assert await store.spawn_due_schedules(SLOT, 100) == 1

    jobs = await schedule_jobs(store, acct.a, schedule.id)
    assert sorted((j.first_trigger, j.idempotency_key) for j in jobs) == [
        (Trigger.MANUAL, None),
        (Trigger.SCHEDULE, f"{schedule.id}.{SLOT}"),
    ]

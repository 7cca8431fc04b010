"""Schedules: storage, listing, spawning (§6.5, §12.2, G-27, G-29) and CAS updates (G-31)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chronos_server.core.models import JobStatus, ScheduleStatus, Trigger
from chronos_server.store.base import Store

from .conftest import (
    MINUTE,
    T0,
    Accounts,
    advance_to_ready,
    claim,
    make_schedule,
    must_schedule,
    schedule_jobs,
)

HOUR = 60 * MINUTE


async def test_schedule_round_trips_every_field(store: Store, acct: Accounts) -> None:
    schedule = replace(
        make_schedule(acct.a, cron="0 9 * * 1-5", runs=5, stop_at=T0 + 10 * HOUR),
        timezone="America/New_York",
        description=None,
        payload=None,
    )
    await store.insert_schedule(schedule)
    assert await store.get_schedule(acct.a, schedule.id) == schedule
    assert await store.get_schedule(acct.a, "sch-missing") is None


async def test_list_schedules_filters_orders_and_pages(store: Store, acct: Accounts) -> None:
    specs = [
        (ScheduleStatus.ACTIVE, "a"),
        (ScheduleStatus.ARCHIVED, "b"),
        (ScheduleStatus.ACTIVE, "b"),
        (ScheduleStatus.COMPLETED, "a"),
    ]
    made = [
        make_schedule(acct.a, status=st, handler=h, created_at=T0 + 10 * i)
        for i, (st, h) in enumerate(specs)
    ]
    for s in reversed(made):
        await store.insert_schedule(s)
    await store.insert_schedule(make_schedule(acct.b, created_at=T0 + 100))
    ids = [s.id for s in made]

    async def listed(
        status: ScheduleStatus | None = None, handler: str | None = None, offset: int = 0
    ) -> tuple[list[str], int]:
        page = await store.list_schedules(
            acct.a, status=status, handler=handler, offset=offset, limit=2
        )
        return [s.id for s in page.items], page.total

    assert await listed() == ([ids[3], ids[2]], 4)
    assert await listed(offset=2) == ([ids[1], ids[0]], 4)
    assert await listed(offset=4) == ([], 4)
    assert await listed(status=ScheduleStatus.ACTIVE) == ([ids[2], ids[0]], 2)
    assert await listed(handler="b") == ([ids[2], ids[1]], 2)
    assert await listed(status=ScheduleStatus.COMPLETED, handler="b") == ([], 0)


# --- spawning ------------------------------------------------------------------------------


async def test_spawn_creates_one_job_per_due_slot(store: Store, acct: Accounts) -> None:
    schedule = make_schedule(acct.a, every_ms=MINUTE, timeout=12, max_retries=5)
    await store.insert_schedule(schedule)
    slot = T0 + MINUTE

    assert await store.spawn_due_schedules(slot - 1, 100) == 0
    assert await store.spawn_due_schedules(slot + 3, 100) == 1
    assert await store.spawn_due_schedules(slot + 3, 100) == 0  # same now: nothing more

    [job] = await schedule_jobs(store, acct.a, schedule.id)
    assert job.idempotency_key == f"{schedule.id}.{slot}"
    assert (job.scheduled_for, job.run_at, job.created_at) == (slot, slot, slot + 3)
    assert (job.status, job.first_trigger, job.attempt_count) == (
        JobStatus.PENDING,
        Trigger.SCHEDULE,
        0,
    )
    assert (job.handler, job.payload, job.timeout, job.max_retries) == (
        schedule.handler,
        schedule.payload,
        12,
        5,
    )
    after = await must_schedule(store, acct.a, schedule.id)
    assert (after.status, after.run_count) == (ScheduleStatus.ACTIVE, 1)
    assert (after.last_run_at, after.next_run_at) == (slot, slot + MINUTE)

    await advance_to_ready(store, slot + 3)
    claimed = await claim(store, acct.a, slot + 4)
    assert claimed.job.id == job.id and claimed.execution.trigger is Trigger.SCHEDULE


async def test_spawn_follows_the_anchored_grid(store: Store, acct: Accounts) -> None:
    schedule = make_schedule(acct.a, every_ms=MINUTE)
    await store.insert_schedule(schedule)
    for k, lateness in [(1, 3), (2, 2_900), (3, 0)]:
        assert await store.spawn_due_schedules(T0 + k * MINUTE + lateness, 100) == 1
    slots = sorted(j.scheduled_for for j in await schedule_jobs(store, acct.a, schedule.id))
    assert slots == [T0 + MINUTE, T0 + 2 * MINUTE, T0 + 3 * MINUTE]
    assert (await must_schedule(store, acct.a, schedule.id)).next_run_at == T0 + 4 * MINUTE


async def test_downtime_spawns_only_the_most_recent_missed_interval_slot(
    store: Store, acct: Accounts
) -> None:
    schedule = make_schedule(acct.a, every_ms=MINUTE)
    await store.insert_schedule(schedule)
    back_at = T0 + 10 * MINUTE + 500  # slots 1..10 were missed

    assert await store.spawn_due_schedules(back_at, 100) == 1

    [job] = await schedule_jobs(store, acct.a, schedule.id)
    assert job.scheduled_for == job.run_at == T0 + 10 * MINUTE
    after = await must_schedule(store, acct.a, schedule.id)
    assert (after.run_count, after.last_run_at) == (1, T0 + 10 * MINUTE)
    assert after.next_run_at == T0 + 11 * MINUTE
    assert await store.spawn_due_schedules(T0 + 11 * MINUTE, 100) == 1


async def test_downtime_spawns_only_the_most_recent_missed_cron_slot(
    store: Store, acct: Accounts
) -> None:
    schedule = make_schedule(acct.a, cron="*/5 * * * *", next_run_at=T0 + 5 * MINUTE)
    await store.insert_schedule(schedule)

    assert await store.spawn_due_schedules(T0 + HOUR + 10, 100) == 1

    [job] = await schedule_jobs(store, acct.a, schedule.id)
    assert job.scheduled_for == T0 + HOUR
    assert job.idempotency_key == f"{schedule.id}.{T0 + HOUR}"
    after = await must_schedule(store, acct.a, schedule.id)
    assert after.next_run_at == T0 + HOUR + 5 * MINUTE


@pytest.mark.parametrize("runs", [1, 3])
async def test_runs_completes_right_after_the_last_job(
    store: Store, acct: Accounts, runs: int
) -> None:
    schedule = make_schedule(acct.a, every_ms=MINUTE, runs=runs)
    await store.insert_schedule(schedule)
    for k in range(1, runs + 1):
        before = await must_schedule(store, acct.a, schedule.id)
        assert before.status is ScheduleStatus.ACTIVE
        assert await store.spawn_due_schedules(T0 + k * MINUTE, 100) == 1

    done = await must_schedule(store, acct.a, schedule.id)
    assert (done.status, done.run_count, done.next_run_at) == (ScheduleStatus.COMPLETED, runs, None)
    assert done.completed_at == T0 + runs * MINUTE
    assert await store.spawn_due_schedules(T0 + 100 * MINUTE, 100) == 0
    jobs = await schedule_jobs(store, acct.a, schedule.id)
    assert len(jobs) == runs
    assert {j.status for j in jobs} == {JobStatus.PENDING}  # completion cancels nothing
    assert await store.next_wakeup() == T0 + MINUTE  # only the first, still pending job


async def test_stop_at_never_spawns_a_later_slot_and_completes(
    store: Store, acct: Accounts
) -> None:
    schedule = make_schedule(acct.a, every_ms=MINUTE, stop_at=T0 + 2 * MINUTE + 30_000)
    await store.insert_schedule(schedule)

    assert await store.spawn_due_schedules(T0 + MINUTE, 100) == 1
    assert (await must_schedule(store, acct.a, schedule.id)).status is ScheduleStatus.ACTIVE
    assert await store.spawn_due_schedules(T0 + 2 * MINUTE, 100) == 1

    # Slot 3 (T0 + 3 min) would pass stop_at: completed at once, without waiting for it.
    done = await must_schedule(store, acct.a, schedule.id)
    assert (done.status, done.next_run_at, done.run_count) == (ScheduleStatus.COMPLETED, None, 2)
    assert await store.spawn_due_schedules(T0 + 10 * MINUTE, 100) == 0
    slots = sorted(j.scheduled_for for j in await schedule_jobs(store, acct.a, schedule.id))
    assert slots == [T0 + MINUTE, T0 + 2 * MINUTE]


async def test_stop_at_on_a_slot_spawns_that_slot_last(store: Store, acct: Accounts) -> None:
    schedule = make_schedule(acct.a, every_ms=MINUTE, stop_at=T0 + 2 * MINUTE)
    await store.insert_schedule(schedule)
    assert await store.spawn_due_schedules(T0 + MINUTE, 100) == 1
    assert await store.spawn_due_schedules(T0 + 2 * MINUTE, 100) == 1
    done = await must_schedule(store, acct.a, schedule.id)
    assert (done.status, done.run_count, done.last_run_at) == (
        ScheduleStatus.COMPLETED,
        2,
        T0 + 2 * MINUTE,
    )


async def test_stop_at_caps_the_coalesced_slot_after_downtime(store: Store, acct: Accounts) -> None:
    stop_at = T0 + 2 * MINUTE + 30_000
    schedule = make_schedule(acct.a, every_ms=MINUTE, stop_at=stop_at)
    await store.insert_schedule(schedule)

    assert await store.spawn_due_schedules(T0 + 10 * MINUTE, 100) == 1

    [job] = await schedule_jobs(store, acct.a, schedule.id)
    assert job.scheduled_for == T0 + 2 * MINUTE  # the last slot not after stop_at
    done = await must_schedule(store, acct.a, schedule.id)
    assert (done.status, done.next_run_at) == (ScheduleStatus.COMPLETED, None)


async def test_spawn_respects_limit(store: Store, acct: Accounts) -> None:
    for _ in range(3):
        await store.insert_schedule(make_schedule(acct.a))
    assert await store.spawn_due_schedules(T0 + MINUTE, 2) == 2
    assert await store.spawn_due_schedules(T0 + MINUTE, 2) == 1
    assert await store.spawn_due_schedules(T0 + MINUTE, 2) == 0


# --- compare-and-set updates ---------------------------------------------------------------


async def test_replace_schedule_is_compare_and_set(store: Store, acct: Accounts) -> None:
    original = make_schedule(acct.a)
    await store.insert_schedule(original)
    renamed = replace(original, name="renamed", updated_at=original.updated_at + 5)

    assert await store.replace_schedule(
        renamed, expected_status=ScheduleStatus.ACTIVE, expected_updated_at=original.updated_at
    )
    assert await must_schedule(store, acct.a, original.id) == renamed

    stale = replace(original, name="stale write", updated_at=original.updated_at + 9)
    assert not await store.replace_schedule(
        stale, expected_status=ScheduleStatus.ACTIVE, expected_updated_at=original.updated_at
    )
    wrong_status = replace(renamed, name="wrong status", updated_at=renamed.updated_at + 1)
    assert not await store.replace_schedule(
        wrong_status,
        expected_status=ScheduleStatus.ARCHIVED,
        expected_updated_at=renamed.updated_at,
    )
    assert await must_schedule(store, acct.a, original.id) == renamed


async def test_spawn_invalidates_a_read_taken_before_it(store: Store, acct: Accounts) -> None:
    """A PATCH that read the schedule before a spawn must not overwrite the spawn's counters."""
    original = make_schedule(acct.a)
    await store.insert_schedule(original)
    await store.spawn_due_schedules(T0 + MINUTE, 100)

    patched = replace(original, name="patched", updated_at=original.updated_at + 1)
    assert not await store.replace_schedule(
        patched, expected_status=ScheduleStatus.ACTIVE, expected_updated_at=original.updated_at
    )
    assert (await must_schedule(store, acct.a, original.id)).run_count == 1

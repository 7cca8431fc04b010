"""Ending a schedule by hand (§5.5, G-30) and running it out of cadence (§5.6)."""

from __future__ import annotations

import random

import pytest

from chronos_server import errors
from chronos_server.core.models import JobStatus, ScheduleStatus, Trigger
from chronos_server.store.base import Store

from .conftest import (
    DONE,
    FAIL,
    FATAL,
    MINUTE,
    T0,
    Accounts,
    advance_to_ready,
    claim,
    insert_running,
    make_job,
    make_schedule,
    must_job,
    must_schedule,
    schedule_jobs,
)

HOUR = 60 * MINUTE


# --- archive -------------------------------------------------------------------------------


async def test_archive_cancels_jobs_without_an_attempt_in_flight(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    waiting = {
        status: make_job(acct.a, status=status, schedule_id=schedule.id)
        for status in (
            JobStatus.PENDING,
            JobStatus.ADMITTING,
            JobStatus.QUEUED,
            JobStatus.READY,
            JobStatus.RETRYING,
        )
    }
    for job in waiting.values():
        await store.insert_job(job)
    running = await insert_running(store, acct.a, T0, handler="r", schedule_id=schedule.id)
    finished = await insert_running(store, acct.a, T0, handler="f", schedule_id=schedule.id)
    await store.finish_execution(acct.a, finished.execution.id, DONE, T0 + 1, rng)
    unrelated = make_job(acct.a)
    await store.insert_job(unrelated)

    archived = await store.archive_schedule(acct.a, schedule.id, T0 + 100)

    assert (archived.status, archived.archived_at, archived.next_run_at) == (
        ScheduleStatus.ARCHIVED,
        T0 + 100,
        None,
    )
    assert await must_schedule(store, acct.a, schedule.id) == archived
    for job in waiting.values():
        after = await must_job(store, acct.a, job.id)
        assert (after.status, after.finished_at) == (JobStatus.CANCELLED, T0 + 100), job.status
    assert (await must_job(store, acct.a, running.job.id)).status is JobStatus.RUNNING
    assert (await must_job(store, acct.a, finished.job.id)).status is JobStatus.COMPLETED
    assert (await must_job(store, acct.a, unrelated.id)).status is JobStatus.PENDING
    assert await store.spawn_due_schedules(T0 + 100 * MINUTE, 100) == 0


async def test_archive_twice_or_after_completion_is_refused(store: Store, acct: Accounts) -> None:
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    archived = await store.archive_schedule(acct.a, schedule.id, T0 + 1)
    with pytest.raises(errors.ScheduleArchived):
        await store.archive_schedule(acct.a, schedule.id, T0 + 2)
    assert await must_schedule(store, acct.a, schedule.id) == archived

    once = make_schedule(acct.a, runs=1)
    await store.insert_schedule(once)
    await store.spawn_due_schedules(T0 + MINUTE, 100)
    with pytest.raises(errors.ScheduleCompleted):
        await store.archive_schedule(acct.a, once.id, T0 + MINUTE + 1)
    [job] = await schedule_jobs(store, acct.a, once.id)
    assert job.status is JobStatus.PENDING

    with pytest.raises(errors.ScheduleNotFound):
        await store.archive_schedule(acct.a, "sch-missing", T0)


@pytest.mark.parametrize(
    ("outcome_name", "expected"),
    [
        ("retryable", JobStatus.CANCELLED),
        ("non_retryable", JobStatus.FAILED),
        ("completed", JobStatus.COMPLETED),
    ],
)
async def test_running_job_of_archived_schedule_gets_no_further_attempt(
    store: Store, acct: Accounts, rng: random.Random, outcome_name: str, expected: JobStatus
) -> None:
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    running = await insert_running(store, acct.a, T0, schedule_id=schedule.id)
    await store.archive_schedule(acct.a, schedule.id, T0 + 1)
    outcome = {"retryable": FAIL, "non_retryable": FATAL, "completed": DONE}[outcome_name]

    await store.finish_execution(acct.a, running.execution.id, outcome, T0 + 2, rng)

    job = await must_job(store, acct.a, running.job.id)
    assert (job.status, job.finished_at) == (expected, T0 + 2)
    assert await store.take_due_jobs(T0 + HOUR, 10) == []


async def test_lease_expiry_of_archived_schedule_job_cancels_it(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    running = await insert_running(store, acct.a, T0, timeout=1, schedule_id=schedule.id)
    await store.archive_schedule(acct.a, schedule.id, T0 + 1)

    assert (await store.sweep(T0 + 10_000, 5_000, 30_000, rng, 100)).timed_out == 1

    assert (await must_job(store, acct.a, running.job.id)).status is JobStatus.CANCELLED


# --- run now -------------------------------------------------------------------------------


async def test_run_now_creates_a_manual_job_without_moving_the_cadence(
    store: Store, acct: Accounts
) -> None:
    schedule = make_schedule(acct.a, every_ms=MINUTE)
    await store.insert_schedule(schedule)
    now = T0 + 1_234

    job = await store.run_schedule_now(acct.a, schedule.id, "job-manual-1", now)

    assert job.id == "job-manual-1"
    assert await must_job(store, acct.a, job.id) == job
    assert (job.status, job.scheduled_for, job.run_at) == (JobStatus.PENDING, now, now)
    assert (job.first_trigger, job.idempotency_key, job.schedule_id) == (
        Trigger.MANUAL,
        None,
        schedule.id,
    )
    after = await must_schedule(store, acct.a, schedule.id)
    assert (after.status, after.run_count, after.next_run_at) == (
        ScheduleStatus.ACTIVE,
        1,
        T0 + MINUTE,
    )
    await advance_to_ready(store, now)
    claimed = await claim(store, acct.a, now + 1)
    assert claimed.job.id == job.id and claimed.execution.trigger is Trigger.MANUAL


async def test_run_now_as_the_last_run_completes_the_schedule(store: Store, acct: Accounts) -> None:
    schedule = make_schedule(acct.a, runs=2)
    await store.insert_schedule(schedule)
    await store.spawn_due_schedules(T0 + MINUTE, 100)

    await store.run_schedule_now(acct.a, schedule.id, "job-manual-2", T0 + MINUTE + 5)

    done = await must_schedule(store, acct.a, schedule.id)
    assert (done.status, done.run_count, done.next_run_at) == (ScheduleStatus.COMPLETED, 2, None)
    assert done.completed_at == T0 + MINUTE + 5
    assert await store.spawn_due_schedules(T0 + 10 * MINUTE, 100) == 0
    with pytest.raises(errors.ScheduleCompleted):
        await store.run_schedule_now(acct.a, schedule.id, "job-manual-3", T0 + MINUTE + 6)
    assert await store.get_job(acct.a, "job-manual-3") is None


async def test_run_now_on_archived_or_missing_schedule(store: Store, acct: Accounts) -> None:
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    await store.archive_schedule(acct.a, schedule.id, T0 + 1)
    with pytest.raises(errors.ScheduleArchived):
        await store.run_schedule_now(acct.a, schedule.id, "job-manual-4", T0 + 2)
    assert await store.get_job(acct.a, "job-manual-4") is None
    assert (await must_schedule(store, acct.a, schedule.id)).run_count == 0
    with pytest.raises(errors.ScheduleNotFound):
        await store.run_schedule_now(acct.a, "sch-missing", "job-manual-5", T0 + 2)

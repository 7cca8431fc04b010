"""The job pipeline (§7.2, G-01): admission, dispatch, claim and unclaim (§10.2)."""

from __future__ import annotations

import random

import pytest
import trio

from chronos_server.core.models import (
    ClaimedJob,
    Delivery,
    DeliveryType,
    ExecutionStatus,
    HttpTarget,
    Job,
    JobStatus,
    ScheduleStatus,
    Trigger,
)
from chronos_server.store.base import Store

from .conftest import (
    DONE,
    FAIL,
    T0,
    Accounts,
    advance_to_ready,
    claim,
    insert_running,
    make_job,
    make_schedule,
    must_execution,
    must_job,
)

PUSH = Delivery(DeliveryType.PUSH, HttpTarget("https://example.com/hook", "POST"))


async def statuses(store: Store, account_id: str, ids: list[str]) -> list[JobStatus]:
    return [(await must_job(store, account_id, i)).status for i in ids]


# --- admission -----------------------------------------------------------------------------


async def test_take_due_jobs_takes_only_due_pending_and_retrying(
    store: Store, acct: Accounts
) -> None:
    due = make_job(acct.a, run_at=T0 - 1)
    due_now = make_job(acct.a, run_at=T0)
    later = make_job(acct.a, run_at=T0 + 1)
    retry_due = make_job(acct.a, status=JobStatus.RETRYING, run_at=T0 - 50)
    retry_later = make_job(acct.a, status=JobStatus.RETRYING, run_at=T0 + 50)
    others = [
        make_job(acct.a, status=s, run_at=T0 - 100)
        for s in (JobStatus.QUEUED, JobStatus.READY, JobStatus.COMPLETED, JobStatus.CANCELLED)
    ]
    foreign_due = make_job(acct.b, run_at=T0 - 1)
    for job in [due, due_now, later, retry_due, retry_later, *others, foreign_due]:
        await store.insert_job(job)

    taken = await store.take_due_jobs(T0, 100)

    assert sorted(taken) == sorted([due.id, due_now.id, retry_due.id, foreign_due.id])
    assert (
        await statuses(store, acct.a, [due.id, due_now.id, retry_due.id])
        == [JobStatus.ADMITTING] * 3
    )
    assert await statuses(store, acct.b, [foreign_due.id]) == [JobStatus.ADMITTING]
    assert await statuses(store, acct.a, [later.id, retry_later.id]) == [
        JobStatus.PENDING,
        JobStatus.RETRYING,
    ]
    assert await statuses(store, acct.a, [j.id for j in others]) == [j.status for j in others]
    assert await store.take_due_jobs(T0, 100) == []  # admitting jobs are not taken twice


async def test_take_due_jobs_respects_limit_earliest_first(store: Store, acct: Accounts) -> None:
    run_ats = [T0 - 5, T0 - 1, T0 - 4, T0 - 2, T0 - 3]
    jobs = [make_job(acct.a, run_at=r) for r in run_ats]
    for job in jobs:
        await store.insert_job(job)
    by_run_at = [j.id for j in sorted(jobs, key=lambda j: j.run_at)]

    first = await store.take_due_jobs(T0, 2)
    second = await store.take_due_jobs(T0, 2)
    third = await store.take_due_jobs(T0, 2)

    assert sorted(first) == sorted(by_run_at[:2])
    assert sorted(second) == sorted(by_run_at[2:4])
    assert third == by_run_at[4:]


async def test_queue_admitted_queues_only_admitting_jobs(store: Store, acct: Accounts) -> None:
    jobs = [make_job(acct.a, run_at=T0 - i) for i in range(3)]
    for job in jobs:
        await store.insert_job(job)
    taken = await store.take_due_jobs(T0, 10)
    await store.cancel_job(acct.a, jobs[1].id, T0 + 1)  # cancelled between take and queue

    queued = await store.queue_admitted(taken, T0 + 2)

    assert queued == 2
    assert await statuses(store, acct.a, [j.id for j in jobs]) == [
        JobStatus.QUEUED,
        JobStatus.CANCELLED,
        JobStatus.QUEUED,
    ]
    assert await store.queue_admitted(taken, T0 + 3) == 0  # queued jobs are not re-queued


async def test_queue_admitted_cancels_jobs_of_archived_schedules(
    store: Store, acct: Accounts
) -> None:
    # The schedule was archived without the job being cancelled (e.g. by another process
    # between take and queue); admission's re-check must catch it.
    archived = make_schedule(acct.a, status=ScheduleStatus.ARCHIVED)
    active = make_schedule(acct.a)
    await store.insert_schedule(archived)
    await store.insert_schedule(active)
    orphan = make_job(acct.a, schedule_id=archived.id, run_at=T0 - 1)
    kept = make_job(acct.a, schedule_id=active.id, run_at=T0 - 1)
    await store.insert_job(orphan)
    await store.insert_job(kept)

    await store.queue_admitted(await store.take_due_jobs(T0, 10), T0 + 7)

    cancelled = await must_job(store, acct.a, orphan.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at == T0 + 7
    assert (await must_job(store, acct.a, kept.id)).status is JobStatus.QUEUED


async def test_next_wakeup_is_earliest_due_job_or_active_schedule(
    store: Store, acct: Accounts
) -> None:
    assert await store.next_wakeup() is None
    await store.insert_job(make_job(acct.a, status=JobStatus.QUEUED, run_at=T0 + 10))
    await store.insert_job(make_job(acct.a, status=JobStatus.READY, run_at=T0 + 20))
    await store.insert_schedule(
        make_schedule(acct.a, status=ScheduleStatus.ARCHIVED, next_run_at=T0 + 30)
    )
    assert await store.next_wakeup() is None

    await store.insert_job(make_job(acct.a, run_at=T0 + 500))
    assert await store.next_wakeup() == T0 + 500
    await store.insert_job(make_job(acct.b, status=JobStatus.RETRYING, run_at=T0 + 300))
    assert await store.next_wakeup() == T0 + 300
    await store.insert_schedule(make_schedule(acct.a, next_run_at=T0 + 200))
    assert await store.next_wakeup() == T0 + 200


async def test_admission_takes_push_jobs_within_the_push_lead_and_wakes_ahead_of_them(
    store: Store, acct: Accounts
) -> None:
    """Push jobs due within `push_lead` are queued (the sender starts them ahead); pull jobs
    only when due; the next wake-up is the lead before the next push job, or the next pull
    job's instant if that comes first (the claimable hand-off only then)."""
    push_soon = make_job(acct.a, delivery=PUSH, handler=None, run_at=T0 + 300)
    push_edge = make_job(acct.a, delivery=PUSH, handler=None, run_at=T0 + 500)
    push_later = make_job(acct.a, delivery=PUSH, handler=None, run_at=T0 + 900)
    pull_soon = make_job(acct.a, run_at=T0 + 100)
    for job in (push_soon, push_edge, push_later, pull_soon):
        await store.insert_job(job)

    admitted = await store.admit_due(T0, 100, push_lead=500)

    assert admitted.queued_push == 2 and admitted.ready == [] and admitted.taken == 2
    assert await statuses(store, acct.a, [push_soon.id, push_edge.id, push_later.id]) == [
        JobStatus.QUEUED,
        JobStatus.QUEUED,
        JobStatus.PENDING,
    ]
    assert (await must_job(store, acct.a, pull_soon.id)).status is JobStatus.PENDING
    # The pull job at +100 comes before the push job's lead (+900 - 500 = +400).
    assert admitted.next_wakeup == T0 + 100
    assert admitted.next_claimable == (acct.a, "h")

    admitted = await store.admit_due(T0 + 100, 100, push_lead=500)
    assert [(r.handler, r.count) for r in admitted.ready] == [("h", 1)]
    assert admitted.next_wakeup == T0 + 400 and admitted.next_claimable is None

    # Without a lead (the default) nothing is taken ahead of its instant.
    assert (await store.admit_due(T0 + 400, 100)).taken == 0
    assert (await store.admit_due(T0 + 400, 100, push_lead=500)).queued_push == 1


async def test_a_push_job_started_ahead_starts_at_its_due_instant(
    store: Store, acct: Accounts
) -> None:
    """`start_push_jobs` starts a job admitted ahead as of its run_at (lease from there); a
    job already due starts now."""
    ahead = make_job(acct.a, delivery=PUSH, handler=None, run_at=T0 + 300, timeout=10)
    overdue = make_job(acct.a, delivery=PUSH, handler=None, run_at=T0 - 50, timeout=10)
    for job in (ahead, overdue):
        await store.insert_job(job)
    await store.admit_due(T0, 100, push_lead=500)

    started = await store.start_push_jobs(T0, 10)

    assert [c.job.id for c in started] == [overdue.id, ahead.id]  # oldest due first
    by_job = {c.job.id: c.execution for c in started}
    assert (by_job[overdue.id].started_at, by_job[overdue.id].lease_expires_at) == (
        T0,
        T0 + 10_000,
    )
    assert (by_job[ahead.id].started_at, by_job[ahead.id].lease_expires_at) == (
        T0 + 300,
        T0 + 10_300,
    )
    stored = await must_execution(store, acct.a, by_job[ahead.id].id)
    assert (stored.started_at, stored.lease_expires_at) == (T0 + 300, T0 + 10_300)


# --- dispatch ------------------------------------------------------------------------------


async def test_ready_pull_jobs_moves_pull_jobs_and_counts_per_handler(
    store: Store, acct: Accounts
) -> None:
    queued = [
        make_job(acct.a, status=JobStatus.QUEUED, handler="h1"),
        make_job(acct.a, status=JobStatus.QUEUED, handler="h1"),
        make_job(acct.a, status=JobStatus.QUEUED, handler="h2"),
        make_job(acct.b, status=JobStatus.QUEUED, handler="h1"),
    ]
    push = make_job(acct.a, status=JobStatus.QUEUED, handler=None, delivery=PUSH)
    pending = make_job(acct.a, status=JobStatus.PENDING, handler="h1", run_at=T0 + 1)
    for job in [*queued, push, pending]:
        await store.insert_job(job)

    batches = await store.ready_pull_jobs(T0, 100)

    assert sorted((b.account_id, b.handler, b.count) for b in batches) == sorted(
        [(acct.a, "h1", 2), (acct.a, "h2", 1), (acct.b, "h1", 1)]
    )
    for job in queued:
        moved = await must_job(store, job.account_id, job.id)
        assert moved.status is JobStatus.READY
    assert await statuses(store, acct.a, [push.id, pending.id]) == [
        JobStatus.QUEUED,
        JobStatus.PENDING,
    ]
    assert await store.ready_pull_jobs(T0, 100) == []


async def test_ready_pull_jobs_respects_limit(store: Store, acct: Accounts) -> None:
    for i in range(5):
        await store.insert_job(make_job(acct.a, status=JobStatus.QUEUED, run_at=T0 - i))
    first = await store.ready_pull_jobs(T0, 3)
    rest = await store.ready_pull_jobs(T0, 3)
    assert sum(b.count for b in first) == 3
    assert sum(b.count for b in rest) == 2


async def test_pending_pull_job_reaches_ready_through_the_pipeline(
    store: Store, acct: Accounts
) -> None:
    job = make_job(acct.a, run_at=T0 + 1000)
    await store.insert_job(job)
    assert await advance_to_ready(store, T0 + 999) == []
    assert (await must_job(store, acct.a, job.id)).status is JobStatus.PENDING

    batches = await advance_to_ready(store, T0 + 1000)

    assert [(b.account_id, b.handler, b.count) for b in batches] == [(acct.a, "h", 1)]
    assert (await must_job(store, acct.a, job.id)).status is JobStatus.READY


# --- claim ---------------------------------------------------------------------------------


async def test_claim_picks_smallest_run_at_then_created_at_of_named_handlers(
    store: Store, acct: Accounts
) -> None:
    jobs: list[Job] = []

    def ready(handler: str, run_at: int, created_at: int, account: str = acct.a) -> str:
        job = make_job(
            account, status=JobStatus.READY, handler=handler, run_at=run_at, created_at=created_at
        )
        jobs.append(job)
        return job.id

    late = ready("h1", T0 + 10, T0)
    early_newer = ready("h1", T0 + 5, T0 + 3)
    early_older = ready("h1", T0 + 5, T0 + 1)
    other_handler = ready("h3", T0 - 100, T0 - 100)
    second_handler = ready("h2", T0 + 7, T0 - 50)
    ready("h1", T0 - 100, T0 - 100, account=acct.b)
    for job in jobs:
        await store.insert_job(job)

    order = []
    while (c := await store.claim_ready_job(acct.a, ["h1", "h2"], None, T0 + 20)) is not None:
        order.append(c.job.id)

    assert order == [early_older, early_newer, second_handler, late]
    assert (await must_job(store, acct.a, other_handler)).status is JobStatus.READY


@pytest.mark.parametrize("trigger", [Trigger.API, Trigger.SCHEDULE, Trigger.MANUAL])
async def test_claim_starts_an_execution(store: Store, acct: Accounts, trigger: Trigger) -> None:
    job = make_job(acct.a, status=JobStatus.READY, timeout=45, first_trigger=trigger)
    await store.insert_job(job)
    now = T0 + 3_333

    claimed = await store.claim_ready_job(acct.a, ["h"], "host-1/42", now)

    assert claimed is not None
    ex = claimed.execution
    assert (ex.job_id, ex.account_id, ex.attempt, ex.trigger) == (job.id, acct.a, 1, trigger)
    assert (ex.status, ex.started_at, ex.lease_expires_at) == (
        ExecutionStatus.RUNNING,
        now,
        now + 45_000,
    )
    assert (ex.worker, ex.finished_at, ex.result, ex.error) == ("host-1/42", None, None, None)
    assert await must_execution(store, acct.a, ex.id) == ex
    stored = await must_job(store, acct.a, job.id)
    assert stored.status is JobStatus.RUNNING
    assert (stored.attempt_count, stored.last_execution_id) == (1, ex.id)
    assert claimed.job.id == job.id and claimed.job.status is JobStatus.RUNNING
    assert claimed.job.attempt_count == 1 and claimed.job.last_execution_id == ex.id


async def test_claim_returns_none_when_nothing_is_ready(store: Store, acct: Accounts) -> None:
    assert await store.claim_ready_job(acct.a, ["h"], None, T0) is None
    for status in (JobStatus.PENDING, JobStatus.RETRYING):  # not due yet
        await store.insert_job(make_job(acct.a, status=status, run_at=T0 + 1000))
    await store.insert_job(make_job(acct.a, status=JobStatus.QUEUED, run_at=T0 - 1000))
    await store.insert_job(make_job(acct.a, status=JobStatus.READY, handler="x"))
    await store.insert_job(
        make_job(acct.a, status=JobStatus.PENDING, handler="h", delivery=PUSH, run_at=T0)
    )
    assert await store.claim_ready_job(acct.a, ["h"], None, T0) is None


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RETRYING])
async def test_a_claim_starts_a_due_pull_job_without_an_admission_pass(
    store: Store, acct: Accounts, status: JobStatus
) -> None:
    """At its due instant, admission wakes a parked claimer, whose claim takes the job from
    `pending` (or `retrying`) to `running` in one statement; oldest first with ready jobs."""
    due = make_job(acct.a, status=status, run_at=T0 - 5)
    ready = make_job(acct.a, status=JobStatus.READY, run_at=T0 - 1)
    later = make_job(acct.a, status=status, run_at=T0 + 1)
    for job in (due, ready, later):
        await store.insert_job(job)
    first = await store.claim_ready_jobs(acct.a, ["h"], "w", T0, 5)
    assert [c.job.id for c in first] == [due.id, ready.id]
    assert all(c.job.status is JobStatus.RUNNING for c in first)
    assert first[0].execution.attempt == 1 and first[0].execution.lease_expires_at == T0 + 30_000
    assert (await must_job(store, acct.a, due.id)).status is JobStatus.RUNNING
    assert (await must_job(store, acct.a, later.id)).status is status


async def test_a_claim_ahead_of_due_instants_starts_each_job_at_its_own(
    store: Store, acct: Accounts
) -> None:
    """`due_by` later than `now` (a worker channel whose worker starts each job at its due
    instant): jobs due by then are taken too, each started, and its lease counted, as of its
    own due instant; a job already due or ready starts at `now`; one due later stays."""
    ready = make_job(acct.a, status=JobStatus.READY, run_at=T0 - 1)
    soon = make_job(acct.a, run_at=T0 + 4)
    sooner = make_job(acct.a, status=JobStatus.RETRYING, run_at=T0 + 2)
    later = make_job(acct.a, run_at=T0 + 11)
    for job in (ready, soon, sooner, later):
        await store.insert_job(job)
    claimed = await store.claim_ready_jobs(acct.a, ["h"], "w", T0, 10, due_by=T0 + 10)
    assert [(c.job.id, c.execution.started_at) for c in claimed] == [
        (ready.id, T0),
        (sooner.id, T0 + 2),
        (soon.id, T0 + 4),
    ]
    assert [c.execution.lease_expires_at for c in claimed] == [
        T0 + 30_000,
        T0 + 30_002,
        T0 + 30_004,
    ]
    for c in claimed:
        stored = await store.get_execution(acct.a, c.execution.id)
        assert stored is not None and stored.started_at == c.execution.started_at
        assert stored.lease_expires_at == c.execution.lease_expires_at
    assert (await must_job(store, acct.a, later.id)).status is JobStatus.PENDING
    # Without `due_by` (or with it at `now`), only what is due now: the claim of the spec.
    assert await store.claim_ready_jobs(acct.a, ["h"], "w", T0 + 10, 10) == []
    assert await store.claim_ready_jobs(acct.a, ["h"], "w", T0 + 10, 10, due_by=T0 + 10) == []


async def test_a_due_job_of_an_archived_schedule_is_not_claimed(
    store: Store, acct: Accounts
) -> None:
    schedule = make_schedule(acct.a, status=ScheduleStatus.ARCHIVED)
    await store.insert_schedule(schedule)
    await store.insert_job(
        make_job(acct.a, status=JobStatus.PENDING, run_at=T0 - 5, schedule_id=schedule.id)
    )
    assert await store.claim_ready_job(acct.a, ["h"], None, T0) is None


async def test_sequential_claims_never_return_the_same_job(store: Store, acct: Accounts) -> None:
    for i in range(20):
        await store.insert_job(make_job(acct.a, status=JobStatus.READY, run_at=T0 + i % 3))
    ids = [(await claim(store, acct.a, T0 + 10)).job.id for _ in range(20)]
    assert len(set(ids)) == 20
    assert await store.claim_ready_job(acct.a, ["h"], None, T0 + 10) is None


async def test_concurrent_claims_never_return_the_same_job(store: Store, acct: Accounts) -> None:
    for _ in range(8):
        await store.insert_job(make_job(acct.a, status=JobStatus.READY))
    results: list[ClaimedJob | None] = []

    async def one_claim() -> None:
        results.append(await store.claim_ready_job(acct.a, ["h"], None, T0 + 1))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(one_claim)

    won = [r.job.id for r in results if r is not None]
    assert len(won) == 8 and len(set(won)) == 8
    assert results.count(None) == 12


async def test_unclaim_restores_ready_and_deletes_the_execution(
    store: Store, acct: Accounts
) -> None:
    job = make_job(acct.a, status=JobStatus.READY)
    await store.insert_job(job)
    claimed = await claim(store, acct.a, T0 + 5)

    assert await store.unclaim(claimed, T0 + 6) is True

    restored = await must_job(store, acct.a, job.id)
    assert restored.status is JobStatus.READY
    assert (restored.attempt_count, restored.last_execution_id) == (0, None)
    assert await store.get_execution(acct.a, claimed.execution.id) is None
    again = await claim(store, acct.a, T0 + 7)
    assert again.job.id == job.id and again.execution.attempt == 1
    assert again.execution.trigger is Trigger.API


async def test_unclaim_of_a_retry_restores_the_previous_attempt(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    first = await insert_running(store, acct.a, T0)
    retry = await store.finish_execution(acct.a, first.execution.id, FAIL, T0 + 10, rng)
    await advance_to_ready(store, T0 + 10_000)
    second = await claim(store, acct.a, T0 + 10_000)
    assert second.execution.attempt == 2 and second.execution.trigger is Trigger.SYSTEM_RETRY

    assert await store.unclaim(second, T0 + 10_001) is True

    restored = await must_job(store, acct.a, first.job.id)
    assert restored.status is JobStatus.READY
    assert (restored.attempt_count, restored.last_execution_id) == (1, first.execution.id)
    assert await must_execution(store, acct.a, first.execution.id) == retry


async def test_unclaim_after_a_report_changes_nothing(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    claimed = await insert_running(store, acct.a, T0)
    reported = await store.finish_execution(acct.a, claimed.execution.id, DONE, T0 + 5, rng)
    job = await must_job(store, acct.a, claimed.job.id)

    assert await store.unclaim(claimed, T0 + 6) is False

    assert await must_job(store, acct.a, claimed.job.id) == job
    assert await must_execution(store, acct.a, claimed.execution.id) == reported


async def test_unclaim_twice_is_a_no_op(store: Store, acct: Accounts) -> None:
    claimed = await insert_running(store, acct.a, T0)
    assert await store.unclaim(claimed, T0 + 1) is True
    again = await claim(store, acct.a, T0 + 2)
    # The stale handle must not undo the new claim.
    assert await store.unclaim(claimed, T0 + 3) is False
    assert (await must_job(store, acct.a, claimed.job.id)).last_execution_id == again.execution.id
    assert await must_execution(store, acct.a, again.execution.id) == again.execution


async def test_batch_claim_with_a_handler_named_twice_starts_each_job_once(
    store: Store, acct: Accounts
) -> None:
    jobs = [make_job(acct.a, run_at=T0) for _ in range(2)]
    for job in jobs:
        await store.insert_job(job)
    await advance_to_ready(store, T0)

    claimed = await store.claim_ready_jobs(acct.a, ["h", "h"], "worker-1", T0, 10)

    assert sorted(c.job.id for c in claimed) == sorted(j.id for j in jobs)
    for c in claimed:
        assert (await must_execution(store, acct.a, c.execution.id)).attempt == 1

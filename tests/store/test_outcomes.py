"""Reports and retries (§8, §10.4, G-07, G-08), the sweeper (§10.3) and execution listing (§5.9)."""

from __future__ import annotations

import random

import pytest

from chronos_server import errors
from chronos_server.core.backoff import retry_delay_ms
from chronos_server.core.models import (
    ExecutionStatus,
    JobStatus,
    ObservedOutcome,
    Outcome,
    Trigger,
)
from chronos_server.store.base import Store

from .conftest import (
    DONE,
    FAIL,
    FATAL,
    SEED,
    T0,
    Accounts,
    advance_to_ready,
    claim,
    insert_running,
    make_job,
    must_execution,
    must_job,
)

LEASE_GRACE = 5_000
ADMITTING_GRACE = 30_000


async def test_completed_report_completes_the_job(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    claimed = await insert_running(store, acct.a, T0)

    done = await store.finish_execution(acct.a, claimed.execution.id, DONE, T0 + 1_500, rng)

    assert done.status is ExecutionStatus.COMPLETED
    assert (done.finished_at, done.duration_ms) == (T0 + 1_500, 1_500)
    assert done.result == {"synced": 12} and done.error is None
    assert await must_execution(store, acct.a, done.id) == done
    job = await must_job(store, acct.a, claimed.job.id)
    assert (job.status, job.finished_at, job.attempt_count) == (JobStatus.COMPLETED, T0 + 1_500, 1)


async def test_retryable_failure_schedules_a_retry_with_backoff(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    claimed = await insert_running(store, acct.a, T0)
    now = T0 + 2_000

    failed = await store.finish_execution(acct.a, claimed.execution.id, FAIL, now, rng)

    assert failed.status is ExecutionStatus.FAILED
    assert failed.error == FAIL.error and failed.finished_at == now
    job = await must_job(store, acct.a, claimed.job.id)
    assert job.status is JobStatus.RETRYING and job.finished_at is None
    assert now + 1_000 <= job.run_at <= now + 2_000
    # The jitter is drawn from the injected rng, not from a private source.
    assert job.run_at == now + retry_delay_ms(1, random.Random(SEED))


async def test_non_retryable_failure_fails_the_job(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    claimed = await insert_running(store, acct.a, T0)
    await store.finish_execution(acct.a, claimed.execution.id, FATAL, T0 + 10, rng)
    job = await must_job(store, acct.a, claimed.job.id)
    assert (job.status, job.finished_at) == (JobStatus.FAILED, T0 + 10)


async def test_no_retries_fails_after_the_first_attempt(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    claimed = await insert_running(store, acct.a, T0, max_retries=0)
    await store.finish_execution(acct.a, claimed.execution.id, FAIL, T0 + 10, rng)
    job = await must_job(store, acct.a, claimed.job.id)
    assert (job.status, job.finished_at) == (JobStatus.FAILED, T0 + 10)


async def test_worked_example_four_attempts_then_failed(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    """§8.3: max_retries 3, a handler that always throws, re-admitted through the pipeline."""
    job = make_job(acct.a, run_at=T0, max_retries=3)
    await store.insert_job(job)
    now = T0
    expected_rng = random.Random(SEED)
    for attempt in (1, 2, 3, 4):
        await advance_to_ready(store, now)
        claimed = await claim(store, acct.a, now)
        assert claimed.job.id == job.id and claimed.execution.attempt == attempt
        assert claimed.execution.trigger is (Trigger.API if attempt == 1 else Trigger.SYSTEM_RETRY)
        now += 250
        await store.finish_execution(acct.a, claimed.execution.id, FAIL, now, rng)
        after = await must_job(store, acct.a, job.id)
        if attempt == 4:
            assert (after.status, after.finished_at) == (JobStatus.FAILED, now)
            break
        base = 1_000 * 2 ** (attempt - 1)
        assert after.status is JobStatus.RETRYING
        assert now + base <= after.run_at <= now + 2 * base
        assert after.run_at == now + retry_delay_ms(attempt, expected_rng)
        # Not admitted a millisecond early.
        assert await store.take_due_jobs(after.run_at - 1, 10) == []
        now = after.run_at

    page = await store.list_executions(acct.a, job_id=job.id, statuses=None, offset=0, limit=10)
    assert [e.attempt for e in page.items] == [4, 3, 2, 1] and page.total == 4
    assert {e.status for e in page.items} == {ExecutionStatus.FAILED}
    assert await store.take_due_jobs(now + 10**9, 10) == []


@pytest.mark.parametrize("first", [DONE, FAIL, FATAL], ids=["completed", "retrying", "failed"])
async def test_second_report_is_refused_and_changes_nothing(
    store: Store, acct: Accounts, rng: random.Random, first: Outcome
) -> None:
    claimed = await insert_running(store, acct.a, T0)
    reported = await store.finish_execution(acct.a, claimed.execution.id, first, T0 + 10, rng)
    job = await must_job(store, acct.a, claimed.job.id)

    for second in (DONE, FAIL):
        with pytest.raises(errors.ExecutionAlreadyFinished):
            await store.finish_execution(acct.a, claimed.execution.id, second, T0 + 20, rng)

    assert await must_execution(store, acct.a, claimed.execution.id) == reported
    assert await must_job(store, acct.a, claimed.job.id) == job


async def test_report_after_sweep_is_lease_expired_and_changes_nothing(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    claimed = await insert_running(store, acct.a, T0, timeout=10)
    swept_at = T0 + 10_000 + LEASE_GRACE
    await store.sweep(swept_at, LEASE_GRACE, ADMITTING_GRACE, rng, 100)
    timed_out = await must_execution(store, acct.a, claimed.execution.id)
    job = await must_job(store, acct.a, claimed.job.id)

    with pytest.raises(errors.LeaseExpired):
        await store.finish_execution(acct.a, claimed.execution.id, DONE, swept_at + 1, rng)

    assert await must_execution(store, acct.a, claimed.execution.id) == timed_out
    assert await must_job(store, acct.a, claimed.job.id) == job


async def test_late_report_within_grace_before_sweep_is_accepted(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    claimed = await insert_running(store, acct.a, T0, timeout=10)
    late = T0 + 10_000 + LEASE_GRACE - 1
    assert (await store.sweep(late, LEASE_GRACE, ADMITTING_GRACE, rng, 100)).timed_out == 0
    done = await store.finish_execution(acct.a, claimed.execution.id, DONE, late, rng)
    assert done.status is ExecutionStatus.COMPLETED
    assert (await must_job(store, acct.a, claimed.job.id)).status is JobStatus.COMPLETED


async def test_report_for_unknown_execution(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    with pytest.raises(errors.ExecutionNotFound):
        await store.finish_execution(acct.a, "exec-missing", DONE, T0, rng)
    with pytest.raises(errors.ExecutionNotFound):
        await store.finish_execution(None, "exec-missing", DONE, T0, rng)


# --- push outcomes, recorded together ------------------------------------------------------

PUSHED = Outcome(ExecutionStatus.COMPLETED, http_status=204, response_body='{"ok":true}')


async def test_push_outcomes_complete_in_one_call_and_failures_still_retry(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    first = await insert_running(store, acct.a, T0)
    second = await insert_running(store, acct.b, T0 + 100)
    failing = await insert_running(store, acct.a, T0)
    ended = {first.execution.id: T0 + 2_100, second.execution.id: T0 + 2_300}
    failed_at = T0 + 2_200
    now = T0 + 2_500  # the write comes after the attempts ended (group commit)

    refused = await store.record_push_outcomes(
        [
            ObservedOutcome(first.execution.id, PUSHED, ended[first.execution.id]),
            ObservedOutcome(failing.execution.id, FAIL, failed_at),
            ObservedOutcome(second.execution.id, PUSHED, ended[second.execution.id]),
        ],
        now,
        rng,
    )

    assert refused == {}
    for claimed, account in ((first, acct.a), (second, acct.b)):
        execution = await must_execution(store, account, claimed.execution.id)
        end = ended[claimed.execution.id]
        assert execution.status is ExecutionStatus.COMPLETED
        assert (execution.http_status, execution.response_body) == (204, '{"ok":true}')
        assert execution.finished_at == end
        assert execution.duration_ms == end - claimed.execution.started_at
        assert execution.result is None and execution.error is None
        job = await must_job(store, account, claimed.job.id)
        assert (job.status, job.finished_at, job.updated_at) == (JobStatus.COMPLETED, end, now)
        assert job.run_at == claimed.job.run_at
    failed = await must_execution(store, acct.a, failing.execution.id)
    assert failed.finished_at == failed_at
    assert failed.duration_ms == failed_at - failing.execution.started_at
    retrying = await must_job(store, acct.a, failing.job.id)
    assert retrying.status is JobStatus.RETRYING and retrying.run_at > failed_at
    assert retrying.updated_at == now  # the write, as for the completed ones


async def test_push_outcome_never_ends_before_its_execution_started(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    """A wall clock stepped back between start and end must not give a negative duration."""
    claimed = await insert_running(store, acct.a, T0)
    failing = await insert_running(store, acct.a, T0, max_retries=0)

    refused = await store.record_push_outcomes(
        [
            ObservedOutcome(claimed.execution.id, PUSHED, T0 - 50),
            ObservedOutcome(failing.execution.id, FAIL, T0 - 50),
        ],
        T0 + 10,
        rng,
    )

    assert refused == {}
    for c in (claimed, failing):
        execution = await must_execution(store, acct.a, c.execution.id)
        assert (execution.finished_at, execution.duration_ms) == (c.execution.started_at, 0)
        job = await must_job(store, acct.a, c.job.id)
        assert (job.finished_at, job.updated_at) == (c.execution.started_at, T0 + 10)
    assert (await must_job(store, acct.a, failing.job.id)).status is JobStatus.FAILED


async def test_push_outcomes_that_cannot_be_recorded_say_why_and_change_nothing(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    swept = await insert_running(store, acct.a, T0, timeout=10)
    finished = await insert_running(store, acct.a, T0)
    swept_at = T0 + 10_000 + LEASE_GRACE
    await store.sweep(swept_at, LEASE_GRACE, ADMITTING_GRACE, rng, 100)
    await store.finish_execution(acct.a, finished.execution.id, DONE, swept_at, rng)
    before = [
        (
            await must_execution(store, acct.a, c.execution.id),
            await must_job(store, acct.a, c.job.id),
        )
        for c in (swept, finished)
    ]

    refused = await store.record_push_outcomes(
        [
            ObservedOutcome(swept.execution.id, PUSHED, swept_at),
            ObservedOutcome(finished.execution.id, PUSHED, swept_at),
            ObservedOutcome("exec-missing", PUSHED, swept_at),
            ObservedOutcome(finished.execution.id, FAIL, swept_at),
        ],
        swept_at + 1,
        rng,
    )

    assert isinstance(refused[swept.execution.id], errors.LeaseExpired)
    assert isinstance(refused[finished.execution.id], errors.ExecutionAlreadyFinished)
    assert isinstance(refused["exec-missing"], errors.ExecutionNotFound)
    after = [
        (
            await must_execution(store, acct.a, c.execution.id),
            await must_job(store, acct.a, c.job.id),
        )
        for c in (swept, finished)
    ]
    assert after == before


# --- sweeper -------------------------------------------------------------------------------


async def test_sweep_times_out_only_leases_past_their_grace(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    short = await insert_running(store, acct.a, T0, handler="short", timeout=10)
    long = await insert_running(store, acct.a, T0, handler="long", timeout=60)
    deadline = T0 + 10_000 + LEASE_GRACE

    early = await store.sweep(deadline - 1, LEASE_GRACE, ADMITTING_GRACE, rng, 100)
    assert (early.timed_out, early.recovered_admitting) == (0, 0)
    assert (await must_job(store, acct.a, short.job.id)).status is JobStatus.RUNNING

    result = await store.sweep(deadline, LEASE_GRACE, ADMITTING_GRACE, rng, 100)

    assert result.timed_out == 1
    ex = await must_execution(store, acct.a, short.execution.id)
    assert (ex.status, ex.finished_at) == (ExecutionStatus.TIMEOUT, deadline)
    assert ex.error is not None and ex.error.message
    job = await must_job(store, acct.a, short.job.id)
    assert job.status is JobStatus.RETRYING
    assert deadline + 1_000 <= job.run_at <= deadline + 2_000
    assert await must_execution(store, acct.a, long.execution.id) == long.execution
    assert await must_job(store, acct.a, long.job.id) == long.job
    assert (await store.sweep(deadline, LEASE_GRACE, ADMITTING_GRACE, rng, 100)).timed_out == 0


async def test_sweep_fails_the_job_when_retries_are_used_up(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    claimed = await insert_running(store, acct.a, T0, timeout=1, max_retries=0)
    await store.sweep(T0 + 1_000 + LEASE_GRACE, LEASE_GRACE, ADMITTING_GRACE, rng, 100)
    job = await must_job(store, acct.a, claimed.job.id)
    assert (job.status, job.finished_at) == (JobStatus.FAILED, T0 + 1_000 + LEASE_GRACE)


async def test_sweep_respects_limit(store: Store, acct: Accounts, rng: random.Random) -> None:
    for handler in ("a", "b", "c"):
        await insert_running(store, acct.a, T0, handler=handler, timeout=1)
    now = T0 + 60_000
    assert (await store.sweep(now, LEASE_GRACE, ADMITTING_GRACE, rng, 2)).timed_out == 2
    assert (await store.sweep(now, LEASE_GRACE, ADMITTING_GRACE, rng, 2)).timed_out == 1


async def test_sweep_recovers_only_stale_admitting_jobs(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    stale = make_job(acct.a, run_at=T0)
    fresh = make_job(acct.a, run_at=T0 + 20_000)
    await store.insert_job(stale)
    await store.insert_job(fresh)
    assert await store.take_due_jobs(T0, 10) == [stale.id]  # a pass that then crashed
    assert await store.take_due_jobs(T0 + 20_000, 10) == [fresh.id]

    result = await store.sweep(T0 + 40_000, LEASE_GRACE, ADMITTING_GRACE, rng, 100)

    assert (result.timed_out, result.recovered_admitting) == (0, 1)
    assert (await must_job(store, acct.a, stale.id)).status is JobStatus.PENDING
    assert (await must_job(store, acct.a, fresh.id)).status is JobStatus.ADMITTING
    assert await store.take_due_jobs(T0 + 40_000, 10) == [stale.id]  # carried on


# --- execution listing ---------------------------------------------------------------------


async def test_list_executions_filters_orders_and_pages(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    first = await insert_running(store, acct.a, T0, handler="a")
    await store.finish_execution(acct.a, first.execution.id, DONE, T0 + 5, rng)
    second = await insert_running(store, acct.a, T0 + 10, handler="b")
    await store.finish_execution(acct.a, second.execution.id, FAIL, T0 + 15, rng)
    await advance_to_ready(store, T0 + 10_000)
    third = await claim(store, acct.a, T0 + 10_000, ["b"])
    await insert_running(store, acct.b, T0 + 20, handler="a")

    async def ids(
        job_id: str | None = None, status: ExecutionStatus | None = None
    ) -> tuple[list[str], int]:
        page = await store.list_executions(
            acct.a, job_id=job_id, statuses=[status] if status else None, offset=0, limit=9
        )
        return [e.id for e in page.items], page.total

    e1, e2, e3 = first.execution.id, second.execution.id, third.execution.id
    assert await ids() == ([e3, e2, e1], 3)
    assert await ids(job_id=second.job.id) == ([e3, e2], 2)
    assert await ids(status=ExecutionStatus.RUNNING) == ([e3], 1)
    assert await ids(job_id=first.job.id, status=ExecutionStatus.FAILED) == ([], 0)
    page = await store.list_executions(acct.a, job_id=None, statuses=None, offset=1, limit=1)
    assert [e.id for e in page.items] == [e2] and page.total == 3

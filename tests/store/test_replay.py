"""Replay and `last_error` (extension; migration 0007) on every store: which states may be
replayed, what the new job copies, the bulk filters and limit, and `last_error` written by the
statements that finish an execution (a report, a push outcome, the sweep) and cleared by a
success."""

from __future__ import annotations

import random

import pytest

from chronos_server import errors
from chronos_server.core.models import (
    Delivery,
    DeliveryType,
    ExecutionError,
    ExecutionStatus,
    HttpTarget,
    JobStatus,
    ObservedOutcome,
    Outcome,
    Trigger,
)
from chronos_server.store.base import ReplayFilter, Store

from .conftest import DONE, FAIL, FATAL, T0, Accounts, insert_running, make_job, must_job

MINUTE = 60_000
PUSH = Delivery(DeliveryType.PUSH, HttpTarget("https://example.com/hook", "POST", {"X-A": "1"}))


async def _finished(
    store: Store,
    account_id: str,
    status: JobStatus,
    finished_at: int,
    *,
    handler: str = "h",
    schedule_id: str | None = None,
) -> str:
    job = make_job(account_id, status=status, handler=handler, schedule_id=schedule_id)
    await store.insert_job(job.__class__(**{**job.__dict__, "finished_at": finished_at}))
    return job.id


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
async def test_replay_copies_a_finished_job_as_a_new_one_off_job(
    store: Store, acct: Accounts, status: JobStatus
) -> None:
    original = make_job(
        acct.a,
        status=status,
        handler=None,
        delivery=PUSH,
        payload={"n": 1},
        timeout=17,
        max_retries=5,
        idempotency_key="k-1",
        first_trigger=Trigger.SCHEDULE,
    )
    await store.insert_job(original)
    replayed = await store.replay_job(acct.a, original.id, "job-replay-1", T0 + MINUTE)
    assert await must_job(store, acct.a, "job-replay-1") == replayed
    assert replayed.replay_of == original.id and replayed.id == "job-replay-1"
    copied = ("name", "description", "handler", "delivery", "payload", "timeout", "max_retries")
    assert {f: getattr(replayed, f) for f in copied} == {f: getattr(original, f) for f in copied}
    assert replayed.status is JobStatus.PENDING and replayed.attempt_count == 0
    assert replayed.schedule_id is None and replayed.idempotency_key is None
    assert replayed.run_at == replayed.scheduled_for == replayed.created_at == T0 + MINUTE
    assert replayed.first_trigger is Trigger.MANUAL and replayed.last_error is None
    assert (await must_job(store, acct.a, original.id)).status is status  # untouched


@pytest.mark.parametrize(
    "status",
    [
        JobStatus.PENDING,
        JobStatus.ADMITTING,
        JobStatus.QUEUED,
        JobStatus.READY,
        JobStatus.RUNNING,
        JobStatus.RETRYING,
    ],
)
async def test_replay_of_an_unfinished_job_is_refused_and_writes_nothing(
    store: Store, acct: Accounts, status: JobStatus
) -> None:
    job = make_job(acct.a, status=status)
    await store.insert_job(job)
    with pytest.raises(errors.InvalidState, match=status.value):
        await store.replay_job(acct.a, job.id, "job-never", T0)
    assert await store.get_job(acct.a, "job-never") is None


async def test_replay_of_a_missing_or_foreign_job_is_not_found(
    store: Store, acct: Accounts
) -> None:
    foreign = make_job(acct.b, status=JobStatus.FAILED)
    await store.insert_job(foreign)
    for job_id in (foreign.id, "job-missing"):
        with pytest.raises(errors.JobNotFound):
            await store.replay_job(acct.a, job_id, "job-never", T0)


async def test_bulk_replay_filters_orders_and_limits(store: Store, acct: Accounts) -> None:
    early = await _finished(store, acct.a, JobStatus.FAILED, T0 + 1 * MINUTE)
    middle = await _finished(store, acct.a, JobStatus.FAILED, T0 + 2 * MINUTE)
    late = await _finished(store, acct.a, JobStatus.FAILED, T0 + 3 * MINUTE)
    other_handler = await _finished(store, acct.a, JobStatus.FAILED, T0 + 2 * MINUTE, handler="x")
    completed = await _finished(store, acct.a, JobStatus.COMPLETED, T0 + 2 * MINUTE)
    await _finished(store, acct.b, JobStatus.FAILED, T0 + 2 * MINUTE)  # foreign: never
    running = make_job(acct.a, status=JobStatus.RUNNING)
    await store.insert_job(running)
    now = T0 + 10 * MINUTE

    async def originals(which: ReplayFilter) -> list[str | None]:
        return [j.replay_of for j in await store.replay_jobs(acct.a, which, now)]

    failed = frozenset({JobStatus.FAILED})
    # A window on finished_at (since inclusive, until exclusive) and a handler, earliest first.
    window = ReplayFilter(failed, handler="h", since=T0 + 2 * MINUTE, until=T0 + 3 * MINUTE)
    assert await originals(window) == [middle]
    # Replayed already: the same request again finds nothing new.
    assert await originals(window) == []
    # The limit takes the earliest finished; the next request the following ones.
    assert await originals(ReplayFilter(failed, limit=2)) == [early, other_handler]
    assert await originals(ReplayFilter(failed, limit=2)) == [late]
    # Several statuses; an unfinished status is never replayed.
    both = frozenset({JobStatus.COMPLETED, JobStatus.RUNNING})
    assert await originals(ReplayFilter(both)) == [completed]
    # The new jobs are stored, pending, due now.
    replays = await store.list_jobs(
        acct.a, statuses=[JobStatus.PENDING], schedule_id=None, handler=None, offset=0, limit=50
    )
    assert sorted(j.replay_of or "" for j in replays.items) == sorted(
        [middle, early, other_handler, late, completed]
    )
    assert {j.run_at for j in replays.items} == {now}


async def test_bulk_replay_by_schedule(store: Store, acct: Accounts) -> None:
    from .conftest import make_schedule

    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    of_schedule = await _finished(
        store, acct.a, JobStatus.FAILED, T0 + MINUTE, schedule_id=schedule.id
    )
    await _finished(store, acct.a, JobStatus.FAILED, T0 + MINUTE)
    which = ReplayFilter(frozenset({JobStatus.FAILED}), schedule_id=schedule.id)
    [replayed] = await store.replay_jobs(acct.a, which, T0 + 2 * MINUTE)
    assert replayed.replay_of == of_schedule and replayed.schedule_id is None


async def test_last_error_follows_reports_and_is_cleared_by_a_success(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    claimed = await insert_running(store, acct.a, T0, max_retries=1)
    assert claimed.job.last_error is None
    await store.finish_execution(acct.a, claimed.execution.id, FAIL, T0 + 1000, rng)
    retrying = await must_job(store, acct.a, claimed.job.id)
    assert retrying.status is JobStatus.RETRYING
    assert retrying.last_error == "TimeoutError: db timeout"
    # The retry completes: the last execution has no error any more.
    await store.insert_job(make_job(acct.a, status=JobStatus.READY, run_at=T0))
    second = await store.claim_ready_jobs(acct.a, ["h"], "w", retrying.run_at + 1, 10)
    mine = next(c for c in second if c.job.id == claimed.job.id)
    await store.finish_execution(acct.a, mine.execution.id, DONE, retrying.run_at + 2, rng)
    done = await must_job(store, acct.a, claimed.job.id)
    assert done.status is JobStatus.COMPLETED and done.last_error is None


async def test_last_error_of_a_failed_job_and_after_a_completed_batch(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    failing = await insert_running(store, acct.a, T0)
    await store.finish_execution(acct.a, failing.execution.id, FATAL, T0 + 5, rng)
    failed = await must_job(store, acct.a, failing.job.id)
    assert failed.status is JobStatus.FAILED and failed.last_error == "bad input"
    # A long error is cut to a one-line summary; the execution keeps it whole.
    long_job = make_job(acct.a, status=JobStatus.READY, run_at=T0)
    await store.insert_job(long_job)
    [c] = await store.claim_ready_jobs(acct.a, ["h"], "w", T0 + 30, 10)
    long_error = Outcome(ExecutionStatus.FAILED, error=ExecutionError("x" * 2000), retryable=False)
    await store.finish_execution(acct.a, c.execution.id, long_error, T0 + 31, rng)
    shown = (await must_job(store, acct.a, c.job.id)).last_error
    assert shown is not None and len(shown) == 500 and shown.endswith("…")
    # The batch report path (one statement on PostgreSQL) clears it on success.
    retry = await insert_running(store, acct.a, T0 + 40)
    await store.finish_execution(acct.a, retry.execution.id, FAIL, T0 + 41, rng)
    due = (await must_job(store, acct.a, retry.job.id)).run_at
    [again] = await store.claim_ready_jobs(acct.a, ["h"], "w", due, 10)
    assert again.job.id == retry.job.id and again.job.last_error == "TimeoutError: db timeout"
    [result] = await store.finish_executions(acct.a, [(again.execution.id, DONE)], due + 1, rng)
    assert not isinstance(result, errors.ChronosError)
    assert (await must_job(store, acct.a, retry.job.id)).last_error is None


async def test_last_error_of_push_outcomes_and_of_the_sweep(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    for i in range(2):
        await store.insert_job(
            make_job(acct.a, status=JobStatus.QUEUED, handler=None, delivery=PUSH, max_retries=i)
        )
    started = await store.start_push_jobs(T0, 10)
    assert len(started) == 2
    answered = Outcome(
        ExecutionStatus.FAILED,
        error=ExecutionError("Endpoint answered HTTP 503", "HttpStatus"),
        http_status=503,
        response_body="  busy,\n try later ",
    )
    unreachable = Outcome(
        ExecutionStatus.FAILED, error=ExecutionError("connection refused", "ConnectError")
    )
    refused = await store.record_push_outcomes(
        [
            ObservedOutcome(started[0].execution.id, answered, T0 + 10),
            ObservedOutcome(started[1].execution.id, unreachable, T0 + 10),
        ],
        T0 + 20,
        rng,
    )
    assert refused == {}
    first, second = [await must_job(store, acct.a, c.job.id) for c in started]
    assert first.last_error == "HTTP 503: busy, try later"
    assert second.last_error == "ConnectError: connection refused"
    # A lease that runs out: the sweep's timeout is the last error.
    claimed = await insert_running(store, acct.a, T0, timeout=1)
    swept = await store.sweep(T0 + 5_000, 0, 30_000, rng, 100)
    [told] = swept.timeouts  # what the sweeper's log line says, from the same transaction
    assert (told.execution.id, told.handler, told.delivery) == (claimed.execution.id, "h", "pull")
    assert told.job_status is JobStatus.RETRYING and told.execution.attempt == 1
    timed_out = await must_job(store, acct.a, claimed.job.id)
    assert timed_out.last_error == "LeaseExpired: Lease expired before a result was reported"


async def test_queue_counts_count_open_jobs_per_handler_and_state(
    store: Store, acct: Accounts
) -> None:
    for status, handler in [
        (JobStatus.PENDING, "a"),
        (JobStatus.PENDING, "a"),
        (JobStatus.READY, "a"),
        (JobStatus.QUEUED, None),
        (JobStatus.RETRYING, "b"),
        (JobStatus.COMPLETED, "a"),
        (JobStatus.FAILED, "b"),
    ]:
        await store.insert_job(make_job(acct.a, status=status, handler=handler))
    await store.insert_job(make_job(acct.b, status=JobStatus.READY, handler="a"))  # all accounts
    running = await insert_running(store, acct.a, T0, handler="c")
    assert running.job.status is JobStatus.RUNNING
    assert await store.queue_counts() == {
        ("a", JobStatus.PENDING): 2,
        ("a", JobStatus.READY): 2,
        (None, JobStatus.QUEUED): 1,
        ("b", JobStatus.RETRYING): 1,
        ("c", JobStatus.RUNNING): 1,
    }

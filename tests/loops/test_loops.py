"""The pipeline loops under MockClock, on the inline in-memory SQLite store (no threads, no I/O).

Time is virtual: assertions name exact virtual instants, so "due at T means ready at T" is checked
without a single real sleep.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing

from chronos_server.clock import TrioClock
from chronos_server.core.models import (
    PULL,
    ClaimedJob,
    ExecutionStatus,
    Interval,
    IntervalUnit,
    Job,
    JobStatus,
    Schedule,
    ScheduleStatus,
    Trigger,
)
from chronos_server.loops.admission import HAND_OFF_LEAD_MS, run_admission
from chronos_server.loops.dispatch import run_dispatch
from chronos_server.loops.sweeper import next_sweep_in, run_sweeper
from chronos_server.pipeline.claims import claim_jobs
from chronos_server.pipeline.services import LoopSettings, Pipeline
from chronos_server.pipeline.signals import HAND_OFF_EARLY_MS
from chronos_server.store.sqlite import open_sqlite_store
from chronos_server.store.transactions import new_id

ORIGIN_MS = 1_800_000_000_000  # a whole second


@dataclass
class World:
    p: Pipeline
    account_id: str
    nursery: trio.Nursery

    def now(self) -> int:
        return self.p.clock.now_ms()

    def start_loops(self) -> None:
        for loop in (run_admission, run_dispatch, run_sweeper):
            self.nursery.start_soon(loop, self.p)

    async def add_job(self, *, run_at: int, timeout: int = 30, max_retries: int = 3) -> Job:
        job = Job(
            id=new_id(), account_id=self.account_id, schedule_id=None, name="j",
            description=None, handler="h", delivery=PULL, payload=None, timeout=timeout,
            max_retries=max_retries, idempotency_key=None, status=JobStatus.PENDING,
            scheduled_for=run_at, run_at=run_at, attempt_count=0, last_execution_id=None,
            first_trigger=Trigger.API, created_at=self.now(), updated_at=self.now(),
        )  # fmt: skip
        await self.p.store.insert_job(job)
        self.p.admission_nudge.set()
        return job

    async def status(self, job_id: str) -> JobStatus:
        job = await self.p.store.get_job(self.account_id, job_id)
        assert job is not None
        return job.status


@pytest.fixture
async def world(autojump_clock: trio.testing.MockClock) -> AsyncIterator[World]:
    async with open_sqlite_store("sqlite://:memory:", inline=True) as store:
        clock = TrioClock(ORIGIN_MS)
        account, _ = await store.ensure_account("default", clock.now_ms())
        settings = LoopSettings(idle_seconds=60.0, lease_grace_ms=5_000)
        pipeline = Pipeline(store, clock, random.Random(7), settings)
        async with trio.open_nursery() as nursery:
            yield World(pipeline, account.id, nursery)
            nursery.cancel_scope.cancel()


async def test_job_due_later_becomes_ready_exactly_at_run_at(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.start_loops()
    job = await world.add_job(run_at=ORIGIN_MS + 10_000)
    await trio.sleep(9.999)
    assert await world.status(job.id) is JobStatus.PENDING
    await trio.sleep(0.001)
    await trio.testing.wait_all_tasks_blocked()
    assert await world.status(job.id) is JobStatus.READY
    assert world.now() == ORIGIN_MS + 10_000


async def test_parked_claim_wakes_when_job_becomes_ready(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.start_loops()
    job = await world.add_job(run_at=ORIGIN_MS + 3_000)
    waiter = world.p.board.register(world.account_id, ["h"])
    await waiter.event.wait()
    # The hand-off timer aims HAND_OFF_LEAD_MS early (a real sleep ends up to 1 ms late) and the
    # wake-up carries the due instant the claim is to run as of.
    assert ORIGIN_MS + 3_000 - HAND_OFF_LEAD_MS <= world.now() <= ORIGIN_MS + 3_000
    assert waiter.claim_at == ORIGIN_MS + 3_000
    claimed = await world.p.store.claim_ready_job(world.account_id, ["h"], None, waiter.claim_at)
    assert claimed is not None and claimed.job.id == job.id


async def test_a_parked_claimer_takes_a_job_at_its_due_instant_without_an_admission_pass(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """Admission wakes at the due instant and wakes a parked claimer of the due job first: its
    claim takes the job from `pending` to `running` in one statement (never `ready`)."""
    world.start_loops()
    job = await world.add_job(run_at=ORIGIN_MS + 4_000)
    before_claims: list[JobStatus] = []
    claim_nows: list[int] = []
    real_claim = world.p.store.claim_ready_jobs

    async def watching_claim(
        account_id: str,
        handlers: list[str],
        worker: str | None,
        now: int,
        limit: int,
        due_by: int | None = None,
    ) -> list[ClaimedJob]:
        before_claims.append(await world.status(job.id))
        claim_nows.append(now)
        return await real_claim(account_id, handlers, worker, now, limit, due_by)

    world.p.store.claim_ready_jobs = watching_claim  # type: ignore[method-assign]
    claimed = await claim_jobs(world.p, world.account_id, ["h"], None, 20)
    assert [c.job.id for c in claimed] == [job.id]
    # Woken at most HAND_OFF_LEAD_MS early, the claim ran as of the due instant: the execution
    # is recorded as started then, never before.
    assert ORIGIN_MS + 4_000 - HAND_OFF_LEAD_MS <= world.now() <= ORIGIN_MS + 4_000
    assert claim_nows[-1] == ORIGIN_MS + 4_000
    assert claimed[0].execution.started_at == ORIGIN_MS + 4_000
    # The claim that took it found it still `pending`: no admission pass made it `ready` first.
    assert before_claims[-1] is JobStatus.PENDING
    assert await world.status(job.id) is JobStatus.RUNNING


async def test_an_early_claimer_is_handed_a_due_job_ahead_as_of_its_due_instant(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """A claimer whose worker starts jobs on time itself (a channel after `timed_start`) is
    woken up to HAND_OFF_EARLY_MS ahead: its claim runs as of the due instant (the execution
    starts then, its lease counts from then), while a plain claimer parked beside it is not
    woken ahead and gets nothing early."""
    world.start_loops()
    due = ORIGIN_MS + 5_000
    job = await world.add_job(run_at=due)
    plain = world.p.board.register(world.account_id, ["h"])
    early = world.p.board.register(world.account_id, ["h"], early=True)
    await early.event.wait()
    assert not plain.event.is_set()  # the older, plain claimer was passed over
    assert due - HAND_OFF_EARLY_MS <= world.now() < due - 1
    assert early.claim_at == due
    world.p.board.unregister(plain)
    claimed = await world.p.store.claim_ready_jobs(world.account_id, ["h"], None, due, 1)
    early.attempted.set()
    assert [c.job.id for c in claimed] == [job.id]
    assert claimed[0].execution.started_at == due
    assert claimed[0].execution.lease_expires_at == due + 30_000


async def test_an_early_claimer_parking_after_the_pass_still_gets_the_job_ahead(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """Admission planned a plain hand-off (no early claimer was parked when its pass ended: a
    worker's next claim was on its way); an early claimer that parks inside the window moves
    the timer up, so the job still goes ahead as of its due instant."""
    world.start_loops()
    due = ORIGIN_MS + 5_000
    await world.add_job(run_at=due)
    await trio.sleep((due - 15 - world.now()) / 1000)
    early = world.p.board.register(world.account_id, ["h"], early=True)
    await early.event.wait()
    assert world.now() < due - HAND_OFF_LEAD_MS
    assert early.claim_at == due
    world.p.board.unregister(early)
    early.attempted.set()


async def test_a_plain_claimer_is_never_handed_a_job_ahead_of_time(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """With only plain claimers parked, the hand-off waits for the instant (1 ms lead), and
    when the only early claimer leaves before its early wake-up, the job still goes on time."""
    world.start_loops()
    due = ORIGIN_MS + 6_000
    job = await world.add_job(run_at=due)
    early = world.p.board.register(world.account_id, ["h"], early=True)
    await trio.sleep(1)
    world.p.board.unregister(early)  # gone before the job's early hand-off
    claimed = await claim_jobs(world.p, world.account_id, ["h"], None, 20)
    assert [c.job.id for c in claimed] == [job.id]
    assert due - HAND_OFF_LEAD_MS <= world.now() <= due
    assert claimed[0].execution.started_at == due


async def test_an_early_claim_through_claim_jobs_takes_the_job_ahead(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.start_loops()
    due = ORIGIN_MS + 7_000
    job = await world.add_job(run_at=due)
    claimed = await claim_jobs(world.p, world.account_id, ["h"], None, 20, early=True)
    assert [c.job.id for c in claimed] == [job.id]
    assert due - HAND_OFF_EARLY_MS <= world.now() < due - 1
    assert claimed[0].execution.started_at == due


async def test_interval_schedule_spawns_each_slot_once_on_time(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    schedule = Schedule(
        id=new_id(), account_id=world.account_id, name="s", description=None, handler="h",
        cron=None, interval=Interval(5, IntervalUnit.SECOND), timezone="UTC", runs=3,
        stop_at=None, delivery=PULL, payload=None, timeout=30, max_retries=3,
        status=ScheduleStatus.ACTIVE, run_count=0, next_run_at=ORIGIN_MS + 5_000,
        last_run_at=None, anchor_at=ORIGIN_MS, created_at=ORIGIN_MS, updated_at=ORIGIN_MS,
    )  # fmt: skip
    await world.p.store.insert_schedule(schedule)
    world.start_loops()
    await trio.sleep(30)
    page = await world.p.store.list_jobs(
        world.account_id, statuses=None, schedule_id=schedule.id, handler=None, offset=0, limit=10
    )
    assert sorted(j.scheduled_for for j in page.items) == [
        ORIGIN_MS + 5_000,
        ORIGIN_MS + 10_000,
        ORIGIN_MS + 15_000,
    ]
    assert all(j.created_at == j.scheduled_for for j in page.items)  # spawned exactly on time
    done = await world.p.store.get_schedule(world.account_id, schedule.id)
    assert done is not None and done.status is ScheduleStatus.COMPLETED and done.run_count == 3


async def test_expired_lease_times_out_then_retries_with_backoff(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    world.start_loops()
    job = await world.add_job(run_at=ORIGIN_MS, timeout=2, max_retries=1)
    await trio.testing.wait_all_tasks_blocked()
    first = await world.p.store.claim_ready_job(world.account_id, ["h"], "w", world.now())
    assert first is not None and first.execution.trigger is Trigger.API
    # lease = 2 s, grace = 5 s: untouched before 7 s, timed out by the 1 s sweep after it
    await trio.sleep(6.9)
    assert await world.status(job.id) is JobStatus.RUNNING
    await trio.sleep(1.1)
    expired = await world.p.store.get_execution(world.account_id, first.execution.id)
    assert expired is not None and expired.status is ExecutionStatus.TIMEOUT
    retrying = await world.p.store.get_job(world.account_id, job.id)
    assert retrying is not None and retrying.status is JobStatus.RETRYING
    assert 1_000 <= retrying.run_at - expired.finished_at <= 2_000  # type: ignore[operator]
    await trio.sleep((retrying.run_at - world.now()) / 1000)
    await trio.testing.wait_all_tasks_blocked()
    second = await world.p.store.claim_ready_job(world.account_id, ["h"], "w", world.now())
    assert second is not None and second.execution.attempt == 2
    assert second.execution.trigger is Trigger.SYSTEM_RETRY
    # the last attempt also expires: retries are used up, so the job fails
    await trio.sleep(8)
    assert await world.status(job.id) is JobStatus.FAILED


async def test_admitting_left_by_a_crash_is_recovered(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    job = await world.add_job(run_at=ORIGIN_MS)
    taken = await world.p.store.take_due_jobs(world.now(), 10)  # a pass that "crashed" here
    assert taken == [job.id]
    world.start_loops()
    await trio.sleep(29)
    assert await world.status(job.id) is JobStatus.ADMITTING
    await trio.sleep(2)
    await trio.testing.wait_all_tasks_blocked()
    assert await world.status(job.id) is JobStatus.READY


async def test_an_idle_sweeper_sweeps_once_per_lease_grace_and_recovers_admitting_each_time(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """Nothing runs: no lease can be swept sooner than 1 s (the shortest lease) + 5 s (grace)
    after a sweep, less 1 s for clock skew, so an idle server sweeps every 5 s; stuck
    `admitting` jobs are looked for at most every 5 s, here on every sweep."""
    store = world.p.store
    asked: list[tuple[int, bool]] = []
    sweep = store.sweep

    async def counting(*args: Any, recover_admitting: bool = True) -> Any:
        asked.append((world.now() - ORIGIN_MS, recover_admitting))
        return await sweep(*args, recover_admitting=recover_admitting)

    store.sweep = counting  # type: ignore[method-assign,assignment]
    world.nursery.start_soon(run_sweeper, world.p)
    await trio.sleep(19.5)
    assert asked == [(0, True), (5_000, True), (10_000, True), (15_000, True)]


async def test_a_lease_begun_just_after_a_sweep_is_timed_out_as_soon_as_its_grace_ends(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """A claim right after a sweep (as another replica's would be: this sweeper is not told):
    the next sweep, at most 5 s later, sees the lease and comes back the instant it can be
    swept (1 s lease + 5 s grace), not on a 1 s tick."""
    store = world.p.store
    swept_at: list[int] = []
    sweep = store.sweep

    async def counting(*args: Any, recover_admitting: bool = True) -> Any:
        swept_at.append(world.now() - ORIGIN_MS)
        return await sweep(*args, recover_admitting=recover_admitting)

    store.sweep = counting  # type: ignore[method-assign,assignment]
    job = await world.add_job(run_at=ORIGIN_MS, timeout=1, max_retries=0)
    world.start_loops()  # admission makes the job ready at once; the sweeper sweeps at 0
    await trio.sleep(0.25)
    claimed = await store.claim_ready_job(world.account_id, ["h"], "w", world.now())
    assert claimed is not None and claimed.execution.lease_expires_at == ORIGIN_MS + 1_250
    await trio.sleep(6.0 - 0.001)
    assert await world.status(job.id) is JobStatus.RUNNING
    await trio.sleep(0.002)
    assert await world.status(job.id) is JobStatus.FAILED
    assert swept_at == [0, 5_000, 6_250]


@pytest.mark.parametrize(
    ("next_lease_end", "sweep_seconds", "grace_ms", "expected"),
    [
        (None, 1.0, 5_000, 5.0),  # nothing runs: the first instant a new lease could be swept
        (None, 1.0, 1_000, 1.0),  # a short grace: never sooner than `sweep_seconds`
        (None, 2.0, 0, 2.0),
        (100_000 + 500, 1.0, 5_000, 5.0),  # ends in 0.5 s: sweepable in 5.5 s, capped at 5
        (100_000 - 4_000, 1.0, 5_000, 1.0),  # sweepable in 1 s
        (100_000 - 4_700, 1.0, 5_000, 1.0),  # sweepable in 0.3 s: not before a second
        (100_000 - 2_500, 1.0, 5_000, 2.5),  # sweepable in 2.5 s: then, not on a tick
        (100_000 - 60_000, 1.0, 5_000, 1.0),  # overdue (a batch left over): a second
    ],
)
def test_the_next_sweep_comes_when_the_first_lease_can_be_swept(
    next_lease_end: int | None, sweep_seconds: float, grace_ms: int, expected: float
) -> None:
    assert next_sweep_in(100_000, next_lease_end, sweep_seconds, grace_ms) == expected

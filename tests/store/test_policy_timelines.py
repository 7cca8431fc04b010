"""Schedule policies as exact timelines on every store (README "Schedule policies").

Admission runs as the server runs it, `admission_once` over a real store, at instants the test
sets on trio's `MockClock` (no autojump: the stores do real I/O in threads, and an autojumping
clock would leap forward mid-query). `at(minute)` moves the clock there and lets admission settle
(on PostgreSQL the jobs a pass spawns or releases are admitted by the next pass, which the loop
would run at once). Slots are whole minutes after `T0`; `m(x)` is the instant of minute x. Each
test names `mock_clock` itself: pytest-trio runs a test under a clock only the test asks for.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
import trio
import trio.testing

from chronos_server.clock import TrioClock
from chronos_server.core.models import (
    CatchUp,
    ClaimedJob,
    Job,
    JobStatus,
    Overlap,
    Schedule,
    ScheduleStatus,
)
from chronos_server.loops.admission import AdmissionResult, admission_once
from chronos_server.pipeline.services import LoopSettings, Pipeline
from chronos_server.store.base import Store
from chronos_server.store.transactions.pipeline import HELD_RECHECK_MS

from .conftest import (
    DONE,
    FAIL,
    FATAL,
    MINUTE,
    SEED,
    T0,
    Accounts,
    make_schedule,
    must_schedule,
    schedule_jobs,
)

P, H, R, RUN = JobStatus.PENDING, JobStatus.PENDING, JobStatus.READY, JobStatus.RUNNING
X, C, F, RETRY = JobStatus.CANCELLED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.RETRYING


def m(minute: float) -> int:
    return T0 + round(minute * MINUTE)


@dataclass
class Timeline:
    store: Store
    account_id: str
    mock: trio.testing.MockClock
    p: Pipeline
    schedule_id: str = ""

    def now(self) -> int:
        return self.p.clock.now_ms()

    async def at(self, minute: float) -> AdmissionResult:
        """Move the clock to minute `minute` and run admission until it has nothing left now."""
        target = m(minute)
        assert target >= self.now(), "time only moves forward"
        self.mock.jump((target - self.now()) / 1000)
        assert self.now() == target
        for _ in range(10):
            result = await admission_once(self.p)
            if not result.more and (result.next_wakeup is None or result.next_wakeup > target):
                return result
        raise AssertionError("admission did not settle")

    async def add(self, **fields: object) -> Schedule:
        s = replace(make_schedule(self.account_id, every_ms=MINUTE), **fields)  # type: ignore[arg-type]
        await self.store.insert_schedule(s)
        self.schedule_id = s.id
        return s

    async def schedule(self) -> Schedule:
        return await must_schedule(self.store, self.account_id, self.schedule_id)

    async def jobs(self) -> list[Job]:
        jobs = await schedule_jobs(self.store, self.account_id, self.schedule_id)
        return sorted(jobs, key=lambda j: j.scheduled_for)

    async def timeline(self) -> list[tuple[float, JobStatus]]:
        """(slot minute, status) of every job of the schedule, by slot."""
        return [((j.scheduled_for - T0) / MINUTE, j.status) for j in await self.jobs()]

    async def claim(self) -> ClaimedJob:
        claimed = await self.store.claim_ready_job(self.account_id, ["h"], "w", self.now())
        assert claimed is not None, "expected a ready job"
        return claimed

    async def finish(self, claimed: ClaimedJob, outcome: object = DONE) -> None:
        await self.store.finish_execution(
            self.account_id,
            claimed.execution.id,
            outcome,  # type: ignore[arg-type]
            self.now(),
            random.Random(SEED),
        )


@pytest.fixture
async def tl(
    store: Store, acct: Accounts, mock_clock: trio.testing.MockClock
) -> AsyncIterator[Timeline]:
    pipeline = Pipeline(store, TrioClock(T0), random.Random(SEED), LoopSettings())
    yield Timeline(store, acct.a, mock_clock, pipeline)


# --- catch_up -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("catch_up", "limit", "after_downtime"),
    [
        (CatchUp.LATEST, 10, [10, 40]),  # the most recent missed slot (G-27)
        (CatchUp.NONE, 10, [10]),  # none: 40 was 5 minutes old when looked at
        (CatchUp.ALL, 10, [10, 20, 30, 40]),  # every one, oldest first
        (CatchUp.ALL, 2, [10, 30, 40]),  # the limit keeps the most recent
    ],
)
async def test_catch_up_after_downtime(
    mock_clock: trio.testing.MockClock,
    tl: Timeline,
    catch_up: CatchUp,
    limit: int,
    after_downtime: list[int],
) -> None:
    await tl.add(
        interval=None, cron="*/10 * * * *", next_run_at=m(10), catch_up=catch_up,
        catch_up_limit=limit,
    )  # fmt: skip
    await tl.at(10)  # on time: every policy spawns it
    assert await tl.timeline() == [(10, R)]
    await tl.at(45)  # down from 10:00.001 to 45: slots 20, 30, 40 missed
    assert await tl.timeline() == [(s, R) for s in after_downtime]
    jobs = await tl.jobs()
    assert [j.scheduled_for for j in jobs] == [j.run_at for j in jobs]  # run_at = slot
    s = await tl.schedule()
    assert (s.next_run_at, s.last_run_at) == (m(50), m(after_downtime[-1]))
    assert s.run_count == len(after_downtime)
    await tl.at(50.5)  # 30 s late (a restart, a slow pass) is on time, even for `none`
    assert [slot for slot, _ in await tl.timeline()] == [*after_downtime, 50]
    assert (await tl.schedule()).next_run_at == m(60)


async def test_catch_up_all_respects_runs_and_stop_at(
    mock_clock: trio.testing.MockClock, tl: Timeline
) -> None:
    await tl.add(catch_up=CatchUp.ALL, catch_up_limit=10, runs=3, stop_at=m(8))
    await tl.at(1)
    await tl.at(9.5)  # slots 2..8 missed, 9 after stop_at; `runs` allows two more jobs
    assert await tl.timeline() == [(1, R), (7, R), (8, R)]
    s = await tl.schedule()
    assert (s.status, s.run_count, s.next_run_at) == (ScheduleStatus.COMPLETED, 3, None)


async def test_catch_up_all_spawns_each_slot_once_across_concurrent_passes(
    mock_clock: trio.testing.MockClock, tl: Timeline, store: Store
) -> None:
    """Several replicas (passes at once) and a pass that comes back to old slots: every slot of
    an `all` catch-up is spawned once, each under the (schedule_id, spawn_slot) index."""
    await tl.add(catch_up=CatchUp.ALL, catch_up_limit=10)
    spawned: list[int] = []

    async def one_pass() -> None:
        spawned.append((await store.admit_due(m(5.5), 500)).spawned)

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(one_pass)
    assert sum(spawned) == 5
    assert [slot for slot, _ in await tl.timeline()] == [1, 2, 3, 4, 5]
    # Rewound to slot 1 (as a crash between the job inserts and the schedule write would leave
    # it, were they not one transaction): the slots are not spawned again.
    s = await tl.schedule()
    rewound = replace(s, next_run_at=m(1), updated_at=s.updated_at + 1)
    assert await store.replace_schedule(
        rewound, expected_status=ScheduleStatus.ACTIVE, expected_updated_at=s.updated_at
    )
    assert await store.spawn_due_schedules(m(5.6), 500) == 0
    assert len(await tl.jobs()) == 5
    assert (await tl.schedule()).run_count == 5


# --- overlap --------------------------------------------------------------------------------


async def test_overlap_allow_spawns_beside_a_running_job(
    mock_clock: trio.testing.MockClock, tl: Timeline
) -> None:
    await tl.add()
    await tl.at(1)
    await tl.claim()
    await tl.at(2)
    assert await tl.timeline() == [(1, RUN), (2, R)]


async def test_overlap_skip_consumes_the_slot_and_does_not_count_it(
    mock_clock: trio.testing.MockClock, tl: Timeline
) -> None:
    await tl.add(overlap=Overlap.SKIP, runs=2)
    await tl.at(1)
    first = await tl.claim()
    await tl.at(2)  # job 1 still running: slot 2 is skipped
    assert await tl.timeline() == [(1, RUN)]
    s = await tl.schedule()
    assert (s.run_count, s.last_run_at, s.next_run_at) == (1, m(1), m(3))
    await tl.at(2.5)
    await tl.finish(first)
    await tl.at(3)  # nothing unfinished: slot 3 spawns, the second of `runs: 2`
    assert await tl.timeline() == [(1, C), (3, R)]
    s = await tl.schedule()
    assert (s.status, s.run_count) == (ScheduleStatus.COMPLETED, 2)


async def test_overlap_skip_also_waits_for_a_retrying_job(
    mock_clock: trio.testing.MockClock, tl: Timeline
) -> None:
    await tl.add(overlap=Overlap.SKIP)
    await tl.at(1)
    await tl.finish(await tl.claim(), FAIL)  # retried 1-2 s later
    await tl.at(2)
    assert [slot for slot, _ in await tl.timeline()] == [1]


async def test_overlap_queue_holds_each_job_until_the_previous_finished(
    mock_clock: trio.testing.MockClock, tl: Timeline
) -> None:
    await tl.add(overlap=Overlap.QUEUE)
    await tl.at(1)
    first = await tl.claim()
    result = await tl.at(2)  # job 1 running: job 2 is spawned but held, `pending` to clients
    assert await tl.timeline() == [(1, RUN), (2, H)]
    held = (await tl.jobs())[1]
    assert held.held and held.run_at == m(2)
    assert result.next_wakeup == m(2) + HELD_RECHECK_MS  # admission looks again each second
    pending = await tl.store.list_jobs(
        tl.account_id, statuses=[P], schedule_id=None, handler=None, offset=0, limit=10
    )
    assert [j.id for j in pending.items] == [held.id]
    stats = await tl.store.stats(tl.account_id, T0)
    assert stats.counts[("h", P)] == 1 and stats.counts[("h", RUN)] == 1

    await tl.at(2.5)
    assert await tl.timeline() == [(1, RUN), (2, H)]
    await tl.finish(first)
    await tl.at(2.5 + HELD_RECHECK_MS / MINUTE)  # the next look releases it: run_at = then
    assert await tl.timeline() == [(1, C), (2, R)]
    second = (await tl.jobs())[1]
    assert not second.held and second.run_at == m(2.5) + HELD_RECHECK_MS

    await tl.at(3)  # job 2 ready, not finished: job 3 waits behind it
    assert await tl.timeline() == [(1, C), (2, R), (3, H)]
    await tl.at(4)  # and job 4 behind job 3, one at a time
    assert await tl.timeline() == [(1, C), (2, R), (3, H), (4, H)]
    await tl.finish(await tl.claim())
    await tl.at(4.1)  # only the oldest held job goes
    assert await tl.timeline() == [(1, C), (2, C), (3, R), (4, H)]
    assert (await tl.schedule()).run_count == 4  # a queued job counts when it is spawned


async def test_overlap_queue_releases_after_any_end_and_after_a_restart(
    mock_clock: trio.testing.MockClock, tl: Timeline, store: Store
) -> None:
    """Nothing gets stuck: the held job goes after its predecessor failed for good (here, a
    lease that expired with no retries left), and all the state is in the database, so a new
    process (a new pipeline on the same store) releases it as well."""
    await tl.add(overlap=Overlap.QUEUE, max_retries=0, timeout=30)
    await tl.at(1)
    await tl.claim()  # lease ends at 1.5
    await tl.at(2)
    await tl.at(2.5)
    assert await tl.timeline() == [(1, RUN), (2, H)]
    await store.sweep(tl.now(), 0, 30_000, random.Random(SEED), 100)  # the worker died
    assert await tl.timeline() == [(1, F), (2, H)]
    tl.p = Pipeline(store, TrioClock(tl.now()), random.Random(SEED), LoopSettings())
    await tl.at(2.6)
    assert await tl.timeline() == [(1, F), (2, R)]


async def test_overlap_queue_held_jobs_are_cancelled_by_cancel_and_archive(
    mock_clock: trio.testing.MockClock, tl: Timeline
) -> None:
    await tl.add(overlap=Overlap.QUEUE)
    await tl.at(1)
    first = await tl.claim()
    await tl.at(2)
    await tl.at(3)
    second, third = (await tl.jobs())[1:]
    assert (await tl.store.cancel_job(tl.account_id, second.id, tl.now())).status is X
    await tl.finish(first)
    await tl.at(3.5)  # the cancelled one is skipped: the next held one goes
    assert await tl.timeline() == [(1, C), (2, X), (3, R)]
    await tl.at(4)
    assert await tl.timeline() == [(1, C), (2, X), (3, R), (4, H)]
    await tl.store.archive_schedule(tl.account_id, tl.schedule_id, tl.now())
    assert await tl.timeline() == [(1, C), (2, X), (3, X), (4, X)]
    assert third.id == (await tl.jobs())[2].id


async def test_overlap_cancel_previous(mock_clock: trio.testing.MockClock, tl: Timeline) -> None:
    await tl.add(overlap=Overlap.CANCEL_PREVIOUS, max_retries=3)
    await tl.at(1)
    await tl.at(2)  # job 1 never started: cancelled, job 2 in its place
    assert await tl.timeline() == [(1, X), (2, R)]
    await tl.at(2.2)
    second = await tl.claim()
    await tl.at(3)  # job 2 running: it is left to finish its attempt
    assert await tl.timeline() == [(1, X), (2, RUN), (3, R)]
    await tl.at(3.2)
    await tl.finish(second, FAIL)  # retryable, retries left, but replaced: no retry
    assert await tl.timeline() == [(1, X), (2, X), (3, R)]
    third = await tl.claim()
    await tl.finish(third, FAIL)  # not replaced: retried as usual
    assert await tl.timeline() == [(1, X), (2, X), (3, RETRY)]
    await tl.at(4)  # a retrying job has no attempt in flight: replaced too
    assert await tl.timeline() == [(1, X), (2, X), (3, X), (4, R)]
    fourth = await tl.claim()
    await tl.at(5)
    await tl.finish(fourth, FATAL)  # a terminal failure stays `failed`
    assert await tl.timeline() == [(1, X), (2, X), (3, X), (4, F), (5, R)]
    assert (await tl.schedule()).run_count == 5


# --- pause and resume ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("catch_up", "at_resume", "next_run_at"),
    [
        (CatchUp.LATEST, [1, 4], 5),  # the most recent slot missed while paused
        (CatchUp.NONE, [1], 5),  # none of them
        (CatchUp.ALL, [1, 2, 3, 4], 5),  # each of them, oldest first
    ],
)
async def test_pause_across_slots_then_resume(
    mock_clock: trio.testing.MockClock,
    tl: Timeline,
    catch_up: CatchUp,
    at_resume: list[int],
    next_run_at: int,
) -> None:
    await tl.add(catch_up=catch_up)
    await tl.at(1)
    await tl.at(1.5)
    paused = await tl.store.pause_schedule(tl.account_id, tl.schedule_id, tl.now())
    assert (paused.status, paused.paused_at, paused.next_run_at) == (
        ScheduleStatus.ACTIVE,
        m(1.5),
        None,
    )
    assert paused.paused_next_run_at == m(2)
    for minute in (2, 3, 4):
        result = await tl.at(minute)
        assert result.spawned == 0 and result.next_wakeup is None  # nothing to wake for
    assert await tl.timeline() == [(1, R)]
    assert await tl.store.pause_schedule(tl.account_id, tl.schedule_id, tl.now()) == paused

    await tl.at(4.5)
    resumed = await tl.store.resume_schedule(tl.account_id, tl.schedule_id, tl.now())
    assert (resumed.paused_at, resumed.paused_next_run_at) == (None, None)
    assert resumed.next_run_at == (m(2) if catch_up is not CatchUp.NONE else m(5))
    await tl.at(4.5)
    assert [slot for slot, _ in await tl.timeline()] == at_resume
    s = await tl.schedule()
    assert (s.next_run_at, s.run_count) == (m(next_run_at), len(at_resume))
    assert await tl.store.resume_schedule(tl.account_id, tl.schedule_id, tl.now()) == s
    await tl.at(5)
    assert [slot for slot, _ in await tl.timeline()] == [*at_resume, 5]

"""The claim protocol without HTTP, under MockClock (autojump), with a fake store that has no
threads: parking and waking, the wait bound, wake-up passing, a caller cancelled mid-claim,
the stop, the claim statement's deadline, and the leases a stop waits for."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import trio
import trio.testing

from chronos_server.clock import TrioClock
from chronos_server.core.models import ClaimedJob, Execution, ExecutionStatus, JobStatus, Trigger
from chronos_server.pipeline.claims import CLAIM_SECONDS, claim_jobs, claim_ready
from chronos_server.pipeline.services import Pipeline
from chronos_server.pipeline.signals import HAND_OFF_EARLY_MS
from tests.store.conftest import T0, make_job

ACCOUNT = "acct"


class FakeStore:
    """Ready jobs per handler; a claim may be made to block until `release` is set."""

    def __init__(self) -> None:
        self.ready: list[ClaimedJob] = []
        self.claims = 0
        self.asked: list[tuple[int, int | None]] = []  # (now, due_by) of each claim statement
        self.unclaimed: list[str] = []
        self.block: trio.Event | None = None
        self.inside = trio.Event()

    def add(self, handler: str = "h") -> ClaimedJob:
        job = make_job(ACCOUNT, handler=handler, status=JobStatus.READY)
        execution = Execution(
            id=f"e-{job.id}",
            job_id=job.id,
            account_id=ACCOUNT,
            attempt=1,
            trigger=Trigger.API,
            status=ExecutionStatus.RUNNING,
            started_at=T0,
            finished_at=None,
            duration_ms=None,
            lease_expires_at=T0 + 30_000,
            worker=None,
            result=None,
            error=None,
        )
        claimed = ClaimedJob(replace(job, status=JobStatus.RUNNING), execution)
        self.ready.append(claimed)
        return claimed

    async def claim_ready_jobs(
        self,
        account_id: str,
        handlers: list[str],
        worker: str | None,
        now: int,
        limit: int,
        due_by: int | None = None,
    ) -> list[ClaimedJob]:
        self.claims += 1
        self.asked.append((now, due_by))
        self.inside.set()
        if self.block is not None:
            await self.block.wait()
        taken = [c for c in self.ready if c.job.handler in handlers][:limit]
        for c in taken:
            self.ready.remove(c)
        return taken

    async def unclaim(self, claimed: ClaimedJob, now: int) -> bool:
        self.unclaimed.append(claimed.job.id)
        self.ready.append(claimed)
        return True


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
async def pipeline(store: FakeStore) -> Pipeline:
    return Pipeline(store, TrioClock(T0), random.Random(1))  # type: ignore[arg-type]


async def test_a_ready_job_is_claimed_at_once(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    job = store.add()
    claimed = await claim_jobs(pipeline, ACCOUNT, ["h"], None, 20)
    assert claimed == [job] and trio.current_time() == 0
    assert len(pipeline.leases) == 1  # handed over: a stop would wait for its report


async def test_a_parked_claim_wakes_when_a_job_is_made_ready(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    got: list[ClaimedJob] = []

    async def claimer() -> None:
        got.extend(await claim_jobs(pipeline, ACCOUNT, ["h"], None, 20))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(claimer)
        await trio.sleep(3)
        assert pipeline.board.parked == 1 and store.claims == 1  # one query, then parked
        job = store.add()
        pipeline.board.notify(ACCOUNT, "h", 1)
    assert got == [job] and trio.current_time() == 3
    assert store.claims == 2  # no query on a timer while parked


async def test_nothing_comes_within_the_wait(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    assert await claim_jobs(pipeline, ACCOUNT, ["h"], None, 7) == []
    assert trio.current_time() == 7 and store.claims == 1


async def test_a_known_empty_handler_costs_no_query(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    assert await claim_jobs(pipeline, ACCOUNT, ["h"], None, 0) == []
    assert await claim_jobs(pipeline, ACCOUNT, ["h"], None, 0) == []
    assert store.claims == 1


async def test_a_claim_that_took_fewer_jobs_than_asked_leaves_the_handler_known_empty(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    """The statement took all it could see: the next claim parks without a query until a
    wake-up (a job sent alone costs no empty claim after it)."""
    job = store.add()
    assert await claim_jobs(pipeline, ACCOUNT, ["h"], None, 0, limit=5) == [job]
    assert await claim_jobs(pipeline, ACCOUNT, ["h"], None, 0, limit=5) == []
    assert store.claims == 1
    again = store.add()
    pipeline.board.notify(ACCOUNT, "h", 1)
    assert await claim_jobs(pipeline, ACCOUNT, ["h"], None, 0, limit=5) == [again]
    assert store.claims == 2


async def test_a_claim_that_filled_its_limit_looks_again(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    first, second = store.add(), store.add()
    assert await claim_jobs(pipeline, ACCOUNT, ["h"], None, 0, limit=1) == [first]
    assert await claim_jobs(pipeline, ACCOUNT, ["h"], None, 0, limit=1) == [second]
    assert store.claims == 2


async def test_an_early_claimer_takes_the_jobs_due_within_the_hand_off_window(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A channel whose worker starts each job at its due instant asks for every job due in
    the next `HAND_OFF_EARLY_MS` (one statement for all of them); any other claimer only for
    the jobs due now, or at the due instant admission woke it for."""
    store.add()
    await claim_jobs(pipeline, ACCOUNT, ["h"], None, 0, early=True)
    now = pipeline.clock.now_ms()
    assert store.asked == [(now, now + HAND_OFF_EARLY_MS)]
    store.add()
    pipeline.board.notify(ACCOUNT, "h", 1)
    await claim_jobs(pipeline, ACCOUNT, ["h"], None, 0)
    assert store.asked[1] == (now, None)


async def test_an_early_claim_ready_asks_for_the_hand_off_window_too(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    """A long-poll claim with the timed start tries `claim_ready` first: that one attempt,
    too, takes the jobs due within the window, or they would wait for admission's hand-off."""
    store.add()
    await claim_ready(pipeline, ACCOUNT, ["h"], None, early=True)
    now = pipeline.clock.now_ms()
    assert store.asked == [(now, now + HAND_OFF_EARLY_MS)]
    store.add()
    pipeline.board.notify(ACCOUNT, "h", 1)
    await claim_ready(pipeline, ACCOUNT, ["h"], None)
    assert store.asked[1] == (now, None)


async def test_a_woken_claimer_that_got_another_job_passes_the_wake_up_on(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    results: dict[str, list[ClaimedJob]] = {}

    async def claimer(name: str, handlers: list[str]) -> None:
        results[name] = await claim_jobs(pipeline, ACCOUNT, handlers, None, 20)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(claimer, "both", ["g", "h"])
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(claimer, "h-only", ["h"])
        await trio.testing.wait_all_tasks_blocked()
        g_job, h_job = store.add("g"), store.add("h")
        # Only h's wake-up: the older waiter ("both") is woken, claims oldest-first and gets
        # the g job, so the h wake-up must go on to "h-only".
        pipeline.board.notify(ACCOUNT, "h", 1)
        store.ready.sort(key=lambda c: c.job.handler != "g")
    assert results == {"both": [g_job], "h-only": [h_job]}
    assert trio.current_time() == 0


async def test_a_caller_cancelled_mid_claim_leaves_no_job_claimed(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    job = store.add()
    store.block = trio.Event()
    other: list[ClaimedJob] = []

    async def second() -> None:
        other.extend(await claim_jobs(pipeline, ACCOUNT, ["h"], None, 20))

    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            nursery.start_soon(lambda: _cancel_when_inside(store, scope))
            await claim_jobs(pipeline, ACCOUNT, ["h"], None, 20)
        assert scope.cancelled_caught
        # The claim statement was shielded: it finished, then was undone and its wake-up
        # passed on, so a claimer parked meanwhile gets the job.
        assert store.unclaimed == [job.job.id]
        store.block = None
        nursery.start_soon(second)
    assert other == [job]
    assert len(pipeline.leases) == 1  # only the second hand-over


async def _cancel_when_inside(store: FakeStore, scope: trio.CancelScope) -> None:
    await store.inside.wait()
    scope.cancel()
    await trio.sleep(1)
    assert store.block is not None
    store.block.set()


async def test_claim_ready_hands_over_what_is_ready_without_parking(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    job = store.add()
    assert await claim_ready(pipeline, ACCOUNT, ["h"], None) == [job]
    assert len(pipeline.leases) == 1 and pipeline.board.parked == 0
    # Nothing ready: [] at once, nothing parked, and the board now knows the handler is empty,
    # so the long-poll that follows it parks without a second query.
    assert await claim_ready(pipeline, ACCOUNT, ["h"], None) == []
    assert trio.current_time() == 0 and pipeline.board.parked == 0 and store.claims == 2
    assert await claim_jobs(pipeline, ACCOUNT, ["h"], None, 5) == []
    assert store.claims == 2 and trio.current_time() == 5


async def test_claim_ready_cancelled_mid_claim_leaves_no_job_claimed(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    job = store.add()
    store.block = trio.Event()
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as scope:
            nursery.start_soon(lambda: _cancel_when_inside(store, scope))
            await claim_ready(pipeline, ACCOUNT, ["h"], None)
    assert scope.cancelled_caught
    assert store.unclaimed == [job.job.id] and store.ready == [job]
    assert len(pipeline.leases) == 0


async def test_claim_ready_claims_nothing_once_the_stop_began(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    store.add()
    pipeline.shutdown.begin(10)
    assert await claim_ready(pipeline, ACCOUNT, ["h"], None) == []
    assert store.claims == 0


async def test_the_claim_statement_has_a_deadline(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    store.add()
    store.block = trio.Event()  # never set: a statement that hangs
    assert await claim_jobs(pipeline, ACCOUNT, ["h"], None, 0) == []
    assert trio.current_time() == CLAIM_SECONDS


async def test_the_stop_answers_parked_claims_and_refuses_new_ones(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    answers: list[list[ClaimedJob]] = []

    async def claimer() -> None:
        answers.append(await claim_jobs(pipeline, ACCOUNT, ["h"], None, 20))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(claimer)
        await trio.sleep(2)
        assert pipeline.stop(10)
        assert not pipeline.stop(10)  # one stop, one deadline
    assert answers == [[], [], []] and trio.current_time() == 2
    assert pipeline.shutdown.deadline == 12
    store.add()
    assert await claim_jobs(pipeline, ACCOUNT, ["h"], None, 20) == []


async def test_a_stop_waits_for_leases_until_reported_or_over(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    first, second = store.add(), store.add()
    await claim_jobs(pipeline, ACCOUNT, ["h"], None, 0, limit=2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pipeline.leases.wait_settled, pipeline.clock)
        await trio.sleep(4)
        pipeline.leases.settle(first.execution.id)
    # The second was never reported: its lease (30 s) and the grace (5 s) had to run out.
    assert trio.current_time() == 35
    assert second.execution.lease_expires_at == T0 + 30_000


async def test_a_wake_up_that_comes_while_the_claim_runs_is_marked_attempted(
    pipeline: Pipeline, store: FakeStore, autojump_clock: trio.testing.MockClock
) -> None:
    """Admission's hand-off wakes a registered claimer and waits for `attempted` (bounded).
    A claimer woken while its claim statement ran, which then returns jobs, has no claim of
    its own to follow: it must say so at once, or every hand-off waits out its bound (seen
    at 200 jobs/s: 50 ms at each due instant, lateness p50 18 ms)."""
    store.add("h")
    store.block = trio.Event()
    result: list[ClaimedJob] = []

    async def claimer() -> None:
        result.extend(await claim_jobs(pipeline, ACCOUNT, ["h"], None, 20))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(claimer)
        await store.inside.wait()  # registered, its claim statement running
        [woken] = pipeline.board.wake(ACCOUNT, "h", 1)
        store.block.set()
        with trio.fail_after(1):
            await woken.attempted.wait()
        assert trio.current_time() == 0
    assert len(result) == 1

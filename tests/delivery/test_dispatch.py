"""Dispatch and the push sender under MockClock: the concurrency limit holds, freed slots are
refilled at once, blocked push requests never hold up pull jobs, a batch reads the signing
secret once, and a store failure on that read is recovered by the sweeper."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from chronos_server.core.models import PULL, ExecutionStatus, JobStatus
from chronos_server.delivery.push import START_CHUNK, PushSender, PushSettings
from chronos_server.errors import StoreUnavailable
from chronos_server.loops.admission import PUSH_LEAD_MS, run_admission
from chronos_server.loops.dispatch import run_dispatch
from chronos_server.loops.sweeper import run_sweeper
from chronos_server.pipeline.services import LoopSettings
from chronos_server.store.base import SigningSecrets, Store
from chronos_server.store.transactions import new_id
from chronos_worker import verify_signature
from tests.delivery.fakes import PUBLIC_IP, SECRET, FakeResolver, World, open_world

LIMIT = 3


@dataclass
class Gate:
    """A MockTransport handler that holds every request until the test releases it."""

    held: list[trio.Event] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    current: int = 0
    peak: int = 0
    seen: int = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        self.requests.append(request)
        self.current += 1
        self.peak = max(self.peak, self.current)
        release = trio.Event()
        self.held.append(release)
        try:
            await release.wait()
        finally:
            self.current -= 1
        return httpx.Response(200, text="done")

    def release_oldest(self) -> None:
        self.held.pop(0).set()


@dataclass
class Rig:
    world: World
    gate: Gate
    sender: PushSender


@pytest.fixture
async def rig(autojump_clock: trio.testing.MockClock) -> AsyncIterator[Rig]:
    gate = Gate()
    resolver = FakeResolver({"hooks.example.com": [PUBLIC_IP]})
    # Long idle sleeps: every wake-up in these tests must come from a nudge.
    settings = LoopSettings(idle_seconds=3600.0)
    async with (
        open_world(settings) as world,
        trio.open_nursery() as nursery,
    ):
        transport = httpx.MockTransport(gate)
        sender = PushSender(world.p, transport, PushSettings(concurrency=LIMIT), resolver)
        await nursery.start(run_admission, world.p)
        await nursery.start(run_dispatch, world.p, sender)
        yield Rig(world, gate, sender)
        nursery.cancel_scope.cancel()


async def statuses(world: World, job_ids: list[str]) -> list[JobStatus]:
    return [(await world.job(job_id)).status for job_id in job_ids]


async def test_at_most_the_limit_in_flight_and_freed_slots_refill(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(60):
        jobs = [
            (await rig.world.add_push_job(status=JobStatus.PENDING, timeout=3600)).id
            for _ in range(10)
        ]
        rig.world.p.admission_nudge.set()
        await trio.testing.wait_all_tasks_blocked()
        assert (rig.sender.in_flight, rig.gate.current, rig.gate.seen) == (LIMIT, LIMIT, LIMIT)
        assert (await statuses(rig.world, jobs)).count(JobStatus.RUNNING) == LIMIT
        assert (await statuses(rig.world, jobs)).count(JobStatus.QUEUED) == 10 - LIMIT

        for done in range(1, 11):
            rig.gate.release_oldest()
            await trio.testing.wait_all_tasks_blocked()
            expected = min(LIMIT, 10 - done)
            assert rig.sender.in_flight == expected and rig.gate.current == expected
            assert rig.gate.seen == min(10, done + LIMIT)
            assert (await statuses(rig.world, jobs)).count(JobStatus.COMPLETED) == done

    assert rig.sender.peak_in_flight == LIMIT and rig.gate.peak == LIMIT
    assert rig.gate.seen == 10 and rig.gate.held == []


async def test_a_blocked_endpoint_does_not_hold_up_pull_jobs(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(60):
        for _ in range(LIMIT + 2):
            await rig.world.add_push_job(status=JobStatus.PENDING, timeout=3600)
        template = await rig.world.add_push_job(status=JobStatus.CANCELLED)
        pull = dataclasses.replace(
            template, id=new_id(), delivery=PULL, status=JobStatus.PENDING, handler="h"
        )
        await rig.world.p.store.insert_job(pull)
        rig.world.p.admission_nudge.set()
        await trio.testing.wait_all_tasks_blocked()
        assert rig.sender.in_flight == LIMIT
        assert (await rig.world.job(pull.id)).status is JobStatus.READY
        for _ in range(LIMIT + 2):
            rig.gate.release_oldest()
            await trio.testing.wait_all_tasks_blocked()
    assert rig.sender.in_flight == 0 and rig.gate.peak == LIMIT


async def test_retry_after_5xx_is_sent_at_its_run_at(
    autojump_clock: trio.testing.MockClock,
) -> None:
    answers = [503, 200]
    sent_at: list[int] = []

    async with open_world(LoopSettings(idle_seconds=3600.0)) as world:

        def handler(request: httpx.Request) -> httpx.Response:
            sent_at.append(world.now())
            return httpx.Response(answers.pop(0))

        resolver = FakeResolver({"hooks.example.com": [PUBLIC_IP]})
        transport = httpx.MockTransport(handler)
        async with trio.open_nursery() as nursery:
            sender = PushSender(world.p, transport, PushSettings(), resolver)
            await nursery.start(run_admission, world.p)
            await nursery.start(run_dispatch, world.p, sender)
            with trio.fail_after(60):
                job = await world.add_push_job(status=JobStatus.PENDING)
                world.p.admission_nudge.set()
                await trio.testing.wait_all_tasks_blocked()
                retrying = await world.job(job.id)
                assert retrying.status is JobStatus.RETRYING
                await trio.sleep((retrying.run_at - world.now()) / 1000)
                await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        done = await world.job(job.id)
        assert done.status is JobStatus.COMPLETED and done.attempt_count == 2
        assert sent_at[1] == retrying.run_at  # not a millisecond late
        assert await attempts(world, job.id) == [
            (1, ExecutionStatus.FAILED),
            (2, ExecutionStatus.COMPLETED),
        ]


async def test_one_secret_read_per_batch_and_every_request_verifies(
    rig: Rig, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    store: Store = rig.world.p.store
    get_signing_secrets = store.get_signing_secrets

    async def counting_get_signing_secrets(account_id: str) -> SigningSecrets | None:
        reads.append(account_id)
        return await get_signing_secrets(account_id)

    monkeypatch.setattr(store, "get_signing_secrets", counting_get_signing_secrets)
    with trio.fail_after(60):
        for _ in range(LIMIT):
            await rig.world.add_push_job(status=JobStatus.PENDING, timeout=3600)
        rig.world.p.admission_nudge.set()
        await trio.testing.wait_all_tasks_blocked()
        assert rig.gate.seen == LIMIT and reads == [rig.world.account_id]
        for _ in range(LIMIT):
            rig.gate.release_oldest()
        await trio.testing.wait_all_tasks_blocked()
    for request in rig.gate.requests:
        now = int(request.headers["x-chronos-timestamp"])
        assert verify_signature(SECRET, request.headers, request.content, now=now)


@asynccontextmanager
async def pipeline_running(
    world: World, transport: httpx.AsyncBaseTransport
) -> AsyncIterator[PushSender]:
    """Admission, the sweeper and dispatch with a push sender, as `chronos serve` runs them."""
    resolver = FakeResolver({"hooks.example.com": [PUBLIC_IP]})
    async with trio.open_nursery() as nursery:
        sender = PushSender(world.p, transport, PushSettings(), resolver)
        for loop in (run_admission, run_sweeper):
            await nursery.start(loop, world.p)
        await nursery.start(run_dispatch, world.p, sender)
        yield sender
        nursery.cancel_scope.cancel()


async def attempts(world: World, job_id: str) -> list[tuple[int, ExecutionStatus]]:
    page = await world.p.store.list_executions(
        world.account_id, job_id=job_id, statuses=None, offset=0, limit=10
    )
    return sorted((e.attempt, e.status) for e in page.items)


async def test_store_failure_reading_the_secret_is_recovered_by_the_sweeper(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = LoopSettings(idle_seconds=3600.0, lease_grace_ms=1_000)
    async with open_world(settings) as world:
        store: Store = world.p.store
        get_signing_secrets = store.get_signing_secrets
        failures = [StoreUnavailable("SQLite: database is locked")]

        async def flaky_get_signing_secrets(account_id: str) -> SigningSecrets | None:
            if failures:
                raise failures.pop()
            return await get_signing_secrets(account_id)

        monkeypatch.setattr(store, "get_signing_secrets", flaky_get_signing_secrets)
        transport = httpx.MockTransport(lambda _request: httpx.Response(200))
        async with pipeline_running(world, transport):
            with trio.fail_after(120):
                job = await world.add_push_job(status=JobStatus.PENDING, timeout=5)
                world.p.admission_nudge.set()
                await trio.testing.wait_all_tasks_blocked()
                stuck = await world.job(job.id)
                assert stuck.status is JobStatus.RUNNING  # started, but no request was made
                # lease 5 s + grace 1 s → timeout at the next sweep → 1-2 s backoff → attempt 2
                await trio.sleep(10)
                assert (await world.job(job.id)).status is JobStatus.COMPLETED
        assert await attempts(world, job.id) == [
            (1, ExecutionStatus.TIMEOUT),
            (2, ExecutionStatus.COMPLETED),
        ]


async def test_a_burst_sends_its_first_requests_before_the_last_are_built(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Requests start in chunks with a scheduler pass between them, so the first ones reach the
    network (here: get past their first wait) while later ones are not built yet. Started all
    at once, none would until every one of the burst had been built."""
    n = 3 * START_CHUNK
    entered = 0
    entered_when_the_first_resumed: list[int] = []
    all_answered = trio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal entered
        entered += 1
        first = entered == 1
        await trio.lowlevel.checkpoint()  # where a real transport waits for its connect
        if first:
            entered_when_the_first_resumed.append(entered)
        if entered == n:
            all_answered.set()
        return httpx.Response(200)

    async with open_world(LoopSettings(idle_seconds=3600.0)) as world:
        jobs = [await world.add_push_job(status=JobStatus.PENDING) for _ in range(n)]
        async with pipeline_running(world, httpx.MockTransport(answer)) as sender:
            with trio.fail_after(60):
                world.p.admission_nudge.set()
                await all_answered.wait()
                await sender.wait_idle()  # every outcome written
        assert entered == n
        assert entered_when_the_first_resumed[0] <= 2 * START_CHUNK < n
        assert set(await statuses(world, [j.id for j in jobs])) == {JobStatus.COMPLETED}


async def test_outcome_the_store_could_not_take_is_written_when_it_can(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver that answered 2xx must not be asked again because one write failed: the
    outcome waits (its slot held) and is written on the next try, before the lease runs out."""
    settings = LoopSettings(idle_seconds=3600.0, lease_grace_ms=1_000)
    async with open_world(settings) as world:
        store: Store = world.p.store
        record = store.record_push_outcomes
        failures = [StoreUnavailable("SQLite: database is locked")] * 2

        async def flaky_record(*args: Any) -> Any:
            if failures:
                raise failures.pop()
            return await record(*args)

        monkeypatch.setattr(store, "record_push_outcomes", flaky_record)
        sent: list[httpx.Request] = []
        answered_at: list[int] = []

        def answer(request: httpx.Request) -> httpx.Response:
            sent.append(request)
            answered_at.append(world.p.clock.now_ms())
            return httpx.Response(200)

        async with pipeline_running(world, httpx.MockTransport(answer)) as sender:
            with trio.fail_after(120):
                job = await world.add_push_job(status=JobStatus.PENDING, timeout=30)
                world.p.admission_nudge.set()
                await trio.sleep(10)
                assert (await world.job(job.id)).status is JobStatus.COMPLETED
                assert sender.in_flight == 0
        assert len(sent) == 1 and failures == []
        assert await attempts(world, job.id) == [(1, ExecutionStatus.COMPLETED)]
        # The attempt ended when the receiver answered, not when the write finally went through.
        page = await store.list_executions(
            world.account_id, job_id=job.id, statuses=None, offset=0, limit=10
        )
        (execution,) = page.items
        done = await world.job(job.id)
        assert execution.finished_at == done.finished_at == answered_at[0]
        assert done.updated_at is not None and done.updated_at > answered_at[0]


async def test_a_push_job_is_started_ahead_and_sent_at_its_instant(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Admission takes a push job `PUSH_LEAD_MS` before it falls due and the sender starts it
    then (request built and signed ahead); the request leaves at the due instant, not a
    millisecond before nor after it. The execution starts at that instant, its lease counted
    from there, and the signature carries that instant's timestamp."""
    sent: list[tuple[float, httpx.Request]] = []

    async with open_world(LoopSettings(idle_seconds=3600.0)) as world:

        def answer(request: httpx.Request) -> httpx.Response:
            sent.append((world.p.clock.exact_ms(), request))
            return httpx.Response(200)

        due = world.now() + 5_000 + 3  # not on a whole second
        job = await world.add_push_job(status=JobStatus.PENDING, run_at=due, timeout=30)
        async with pipeline_running(world, httpx.MockTransport(answer)) as sender:
            with trio.fail_after(60):
                world.p.admission_nudge.set()
                await trio.sleep((due - PUSH_LEAD_MS - 1 - world.now()) / 1000)
                assert (await world.job(job.id)).status is JobStatus.PENDING
                await trio.sleep(0.002)  # the lead has begun
                assert (await world.job(job.id)).status is JobStatus.RUNNING
                [execution] = (
                    await world.p.store.list_executions(
                        world.account_id, job_id=job.id, statuses=None, offset=0, limit=10
                    )
                ).items
                assert execution.started_at == due
                assert execution.lease_expires_at == due + 30_000
                await trio.sleep((due - 1 - world.now()) / 1000)
                assert sent == []  # built, signed, waiting
                await trio.sleep(0.002)
                await sender.wait_idle()
        assert (await world.job(job.id)).status is JobStatus.COMPLETED
    [(at, request)] = sent
    assert due <= at < due + 1
    assert request.headers["X-Chronos-Timestamp"] == str(due // 1000)
    assert verify_signature(SECRET, request.headers, request.content, now=due / 1000)


async def test_push_jobs_due_at_one_instant_are_all_started_ahead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A burst larger than a batch: every job is running before the instant (admission and
    dispatch loop until the lead window is empty), and every request leaves at the instant."""
    sent: list[float] = []
    n = 2 * 64 + 5

    async with open_world(LoopSettings(idle_seconds=3600.0, batch_size=64)) as world:

        def answer(request: httpx.Request) -> httpx.Response:
            sent.append(world.p.clock.exact_ms())
            return httpx.Response(200)

        due = world.now() + 2_000
        jobs = [await world.add_push_job(status=JobStatus.PENDING, run_at=due) for _ in range(n)]
        async with pipeline_running(world, httpx.MockTransport(answer)) as sender:
            with trio.fail_after(60):
                world.p.admission_nudge.set()
                await trio.sleep((due - 1 - world.now()) / 1000)
                assert set(await statuses(world, [j.id for j in jobs])) == {JobStatus.RUNNING}
                assert sent == []
                await trio.sleep(0.002)
                await sender.wait_idle()
    assert len(sent) == n and all(due <= at < due + 1 for at in sent)

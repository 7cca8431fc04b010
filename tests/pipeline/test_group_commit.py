"""Group commit of single creates (`JobWriter`) without HTTP or threads: a real SQLite store
(in memory, inline) behind a gate that holds a write in flight, so what arrives meanwhile is
known exactly. Settled with `wait_all_tasks_blocked`, no sleeps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
import trio.testing

from chronos_server.core.models import Job
from chronos_server.errors import ChronosError, IdempotencyKeyConflict, Stopping, StoreUnavailable
from chronos_server.pipeline.group_commit import JobWriter
from chronos_server.store.sqlite import SQLiteStore, open_sqlite_store
from tests.store.conftest import T0, make_job


class GatedStore:
    """The real store's `insert_jobs`, each call recorded; a call waits while `gate` is closed,
    and one whose jobs `fail_if` picks raises `StoreUnavailable` without writing."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.calls: list[list[str]] = []
        self.gate: trio.Event | None = None
        self.fail_if: Callable[[list[Job]], bool] = lambda jobs: False

    async def insert_jobs(self, jobs: list[Job]) -> list[Job | ChronosError]:
        self.calls.append([job.id for job in jobs])
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_if(jobs):
            raise StoreUnavailable("database gone")
        return await self.store.insert_jobs(jobs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
async def account() -> AsyncIterator[tuple[GatedStore, str]]:
    async with open_sqlite_store("sqlite://:memory:", inline=True) as store:
        found, _ = await store.ensure_account("acme", T0)
        yield GatedStore(store), found.id


class Creates:
    """Creates started in the background, one after the other (each has queued or is being
    written before the next starts: Trio runs tasks started together in any order); each
    outcome kept by job id."""

    def __init__(self, writer: JobWriter, nursery: trio.Nursery) -> None:
        self.writer = writer
        self.nursery = nursery
        self.outcomes: dict[str, Job | ChronosError] = {}

    async def start(self, job: Job) -> Job:
        async def create() -> None:
            try:
                self.outcomes[job.id] = await self.writer.insert(job)
            except ChronosError as exc:
                self.outcomes[job.id] = exc

        self.nursery.start_soon(create)
        await trio.testing.wait_all_tasks_blocked()
        return job


async def stored(gated: GatedStore, account_id: str) -> set[str]:
    page = await gated.store.list_jobs(
        account_id, statuses=None, schedule_id=None, handler=None, offset=0, limit=100
    )
    return {job.id for job in page.items}


async def test_an_idle_writer_writes_a_create_at_once_alone(
    account: tuple[GatedStore, str],
) -> None:
    gated, account_id = account
    writer = JobWriter(gated)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        job = make_job(account_id)
        assert await writer.insert(job) == job
        assert gated.calls == [[job.id]]
        nursery.cancel_scope.cancel()
    assert await stored(gated, account_id) == {job.id}


async def test_creates_arriving_during_a_write_share_the_next_one(
    account: tuple[GatedStore, str],
) -> None:
    gated, account_id = account
    writer = JobWriter(gated)
    gated.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        creates = Creates(writer, nursery)
        first = await creates.start(make_job(account_id, idempotency_key="k"))
        assert gated.calls == [[first.id]]  # in flight, held at the gate
        later = [
            await creates.start(make_job(account_id)),
            await creates.start(make_job(account_id, idempotency_key="k")),  # first's key
            await creates.start(make_job(account_id, idempotency_key="k2")),
            await creates.start(make_job(account_id, idempotency_key="k2")),  # an earlier one's key
            await creates.start(make_job(account_id)),
        ]
        assert writer.waiting == len(later) and len(gated.calls) == 1
        gated.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert gated.calls == [[first.id], [job.id for job in later]]  # one write for all five
    assert (writer.writes, writer.written, writer.largest) == (2, 6, 5)
    outcomes = creates.outcomes
    assert outcomes[first.id] == first
    assert [outcomes[j.id] == j for j in later] == [True, False, True, False, True]
    assert _holder(outcomes[later[1].id]) == first.id
    assert _holder(outcomes[later[3].id]) == later[2].id
    assert await stored(gated, account_id) == {first.id, later[0].id, later[2].id, later[4].id}


def _holder(outcome: Job | ChronosError) -> str:
    assert isinstance(outcome, IdempotencyKeyConflict), outcome
    return outcome.existing_job_id


async def test_a_failed_write_fails_exactly_the_creates_it_carried(
    account: tuple[GatedStore, str],
) -> None:
    gated, account_id = account
    writer = JobWriter(gated)
    gated.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        creates = Creates(writer, nursery)
        first = await creates.start(make_job(account_id))
        doomed = [await creates.start(make_job(account_id)) for _ in range(3)]
        gated.fail_if = lambda jobs: doomed[0] in jobs
        gated.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        gated.fail_if = lambda jobs: False
        after = await creates.start(make_job(account_id))
        nursery.cancel_scope.cancel()
    assert len(gated.calls) == 3
    assert creates.outcomes[first.id] == first and creates.outcomes[after.id] == after
    for job in doomed:
        assert isinstance(creates.outcomes[job.id], StoreUnavailable)
    assert await stored(gated, account_id) == {first.id, after.id}


async def test_a_write_carries_at_most_max_group_creates(
    account: tuple[GatedStore, str],
) -> None:
    gated, account_id = account
    writer = JobWriter(gated, max_group=3)
    gated.gate = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        creates = Creates(writer, nursery)
        await creates.start(make_job(account_id))
        for _ in range(7):
            await creates.start(make_job(account_id))
        gated.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert [len(call) for call in gated.calls] == [1, 3, 3, 1]
    assert all(isinstance(o, Job) for o in creates.outcomes.values())
    assert len(await stored(gated, account_id)) == 8


async def test_without_the_service_each_create_is_written_on_its_own(
    account: tuple[GatedStore, str],
) -> None:
    gated, account_id = account
    writer = JobWriter(gated)
    jobs = [make_job(account_id, idempotency_key="same") for _ in range(2)]
    assert await writer.insert(jobs[0]) == jobs[0]
    assert _holder(await writer.insert(jobs[1])) == jobs[0].id
    assert gated.calls == [[jobs[0].id], [jobs[1].id]]


async def test_creates_still_queued_when_the_service_stops_are_told_so(
    account: tuple[GatedStore, str],
) -> None:
    gated, account_id = account
    writer = JobWriter(gated)
    gated.gate = trio.Event()
    async with trio.open_nursery() as outer:
        creates = Creates(writer, outer)
        async with trio.open_nursery() as service:
            await service.start(writer.run)
            in_flight = await creates.start(make_job(account_id))
            queued = await creates.start(make_job(account_id))
            service.cancel_scope.cancel()  # the server's root nursery, at the end of a stop
    assert isinstance(creates.outcomes[in_flight.id], Stopping)
    assert isinstance(creates.outcomes[queued.id], Stopping)
    gated.gate = None
    assert await writer.insert(job := make_job(account_id)) == job  # written directly now

"""The timed start extension over the long-poll (virtual time): asked for only once a claim's
answer offers it and never with concurrency 1; a job handed over with `start_in_ms` starts that
long after its answer arrived, not at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from chronos_worker import ChronosContext, Worker

from .conftest import MakeChronos
from .fakes import FakeServer

LIMIT = 600  # virtual seconds; a hang fails instead of blocking the suite


async def run_until(worker: Worker, server: FakeServer, predicate: Callable[[], bool]) -> None:
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.start)
            await server.wait_for(predicate)
            await worker.stop()


async def test_an_offered_timed_start_is_asked_for_and_a_job_waits_for_its_instant(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    server.timed_start_ms = 20
    chronos = make_chronos(concurrency=4, poll_wait_time_seconds=5)
    started: dict[str, float] = {}

    @chronos.worker.handle("test.job")
    async def work(ctx: ChronosContext) -> None:
        started[ctx.execution_id] = trio.current_time()

    async def feed() -> None:
        await server.wait_for(lambda: len(server.claims) >= 1)
        server.add_job()  # answers the first claim: no `timed_start` in it yet
        await server.wait_for(lambda: len(server.claims) >= 2)
        server.add_job(start_in_ms=15)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        await run_until(
            chronos.worker,
            server,
            lambda: len(server.results) == 2,
        )

    assert "timed_start" not in server.claims[0].body
    assert all(claim.body.get("timed_start") is True for claim in server.claims[1:])
    second = server.claims[1]  # answered at once: the job was queued while it waited
    assert started["exec-2"] - second.at >= 0.015
    assert started["exec-1"] - server.claims[0].at < 0.015


@pytest.mark.parametrize(("concurrency", "offered"), [(4, False), (1, True)])
async def test_no_offer_or_concurrency_one_never_asks_for_the_timed_start(
    server: FakeServer,
    make_chronos: MakeChronos,
    autojump_clock: trio.abc.Clock,
    concurrency: int,
    offered: bool,
) -> None:
    server.timed_start_ms = 20 if offered else None
    chronos = make_chronos(concurrency=concurrency, poll_wait_time_seconds=5)
    done: list[str] = []

    @chronos.worker.handle("test.job")
    async def work(ctx: ChronosContext) -> None:
        done.append(ctx.execution_id)

    for _ in range(3):
        server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.results) == 3)
    assert len(done) == 3 and len(server.claims) >= 2
    assert all("timed_start" not in claim.body for claim in server.claims)

"""Lease extension in the SDK (extension), against the fake server under an autojump clock:
heartbeats every third of the lease while a handler runs (so one may run past its `timeout`),
`ctx.extend()`, a lost lease cancelling an async handler (a flag for a sync one) with nothing
reported, and a server without the extension (the hosted API): logged once, nothing else
changes."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import trio

from chronos_worker import ChronosContext, ChronosError, Worker

from .conftest import MakeChronos
from .fakes import FakeServer, RecordingLogger, error_response

LIMIT = 300  # virtual seconds


async def run_until(worker: Worker, server: FakeServer, predicate: Callable[[], bool]) -> None:
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.start)
            await server.wait_for(predicate)
            await worker.stop()


async def test_a_handler_three_times_its_timeout_keeps_its_lease_and_completes_once(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()
    runs: list[float] = []
    leases: list[str] = []

    @chronos.worker.handle("long")
    async def long(ctx: ChronosContext) -> str:
        runs.append(trio.current_time())
        await trio.sleep(3 * ctx.timeout + 0.5)  # not on a heartbeat's instant
        leases.append(ctx.lease_expires_at.isoformat())
        return "done"

    execution_id = server.add_job("long", timeout=3)
    await run_until(chronos.worker, server, lambda: bool(server.reports))
    assert len(runs) == 1
    assert server.reported(execution_id) == {"status": "completed", "result": "done"}
    # Every third of the 3 s lease: at 1, 2, ..., 9 s after the claim (the handler ends at 9.5).
    beats = [round(b.at - runs[0], 3) for b in server.heartbeats]
    assert beats == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert all(b.body == {} for b in server.heartbeats)
    assert leases == ["2026-01-15T09:00:12+00:00"]  # the last answer: at 9 s, plus 3 s


async def test_extend_asks_for_a_longer_lease_and_moves_the_next_heartbeat(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()
    started: list[float] = []

    @chronos.worker.handle("long")
    async def long(ctx: ChronosContext) -> None:
        started.append(trio.current_time())
        ends = await ctx.extend(60)
        assert ends == ctx.lease_expires_at
        with pytest.raises(ChronosError, match="1 to 3600"):
            await ctx.extend(3601)
        await trio.sleep(45)

    server.add_job("long", timeout=30)
    await run_until(chronos.worker, server, lambda: bool(server.reports))
    [asked, *rest] = server.heartbeats
    assert asked.body == {"extend_seconds": 60}
    # The 60 s lease has 2/3 of the 30 s timeout (20 s) left 40 s after the extension; the
    # heartbeat due at 10 s (a third of the first lease) is not sent.
    assert [round(b.at - started[0], 3) for b in rest] == [40.0]


async def test_a_lost_lease_cancels_the_async_handler_and_reports_nothing(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos()
    reached_end: list[bool] = []

    @chronos.worker.handle("long")
    async def long(ctx: ChronosContext) -> None:
        await trio.sleep(100)
        reached_end.append(True)

    server.heartbeat_script.append(error_response(409, "lease_expired"))
    server.add_job("long", timeout=30)
    await run_until(chronos.worker, server, lambda: bool(server.heartbeats))
    assert reached_end == []
    assert server.report_attempts == [] and server.batch_attempts == []
    [lost] = [m for m in logger.messages("error") if "lost" in m]
    assert "lease_expired" in lost and "cancelling the handler" in lost


async def test_a_lost_lease_sets_the_flag_of_a_sync_handler(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
) -> None:
    # Real clock: a sync handler runs in a thread, which an autojump clock would race past.
    chronos = make_chronos()
    flags: list[bool] = []
    release = threading.Event()

    @chronos.worker.handle("sync")
    def sync(ctx: ChronosContext) -> None:
        release.wait(10)
        flags.append(ctx.lease_lost)

    server.heartbeat_script.append(error_response(404, "execution_not_found"))
    server.add_job("sync", timeout=1)  # first heartbeat after 1/3 s

    async def lose_then_release() -> None:
        await server.wait_for(lambda: bool(server.heartbeats))
        await trio.testing.wait_all_tasks_blocked()
        release.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await lose_then_release()
            await chronos.worker.stop()
    assert flags == [True]
    assert server.report_attempts == [] and server.batch_attempts == []
    assert any("ctx.lease_lost is set" in m for m in logger.messages("error"))


async def test_a_server_without_the_extension_is_logged_once_and_changes_nothing(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(concurrency=2)

    @chronos.worker.handle("long")
    async def long(ctx: ChronosContext) -> None:
        await trio.sleep(2)

    server.heartbeat_route = False
    first = server.add_job("long", timeout=3)
    second = server.add_job("long", timeout=3)
    await run_until(chronos.worker, server, lambda: len(server.results) == 2)
    assert set(server.results) == {first, second}
    assert len(server.heartbeats) == 1  # the first refusal switched them off for the run
    assert [m for m in logger.messages("info") if "no lease extension" in m] != []
    assert not logger.messages("error")

"""`start()` / `stop()` lifecycle (§11.4-§11.5) and sync handlers in threads (real clock)."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from chronos_worker import ChronosContext, ChronosError

from .conftest import MakeChronos
from .fakes import FakeServer, exactly

LIMIT = 600


async def test_stop_waits_for_the_running_handler_and_its_report(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    # Two slots: while the handler runs, the second slot has a long-poll in flight.
    chronos = make_chronos(concurrency=2)
    started, release, stopped = trio.Event(), trio.Event(), trio.Event()

    @chronos.worker.handle("test.job")
    async def slow(ctx: ChronosContext) -> str:
        started.set()
        await release.wait()
        return "finished"

    first = server.add_job()

    async def stop_worker() -> None:
        await chronos.worker.stop()
        stopped.set()

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await started.wait()
            await server.wait_for(lambda: len(server.claims) == 2)
            nursery.start_soon(stop_worker)
            await trio.testing.wait_all_tasks_blocked()
            # The pending long-poll is gone: a job queued now is not handed to anyone.
            server.add_job()
            await trio.testing.wait_all_tasks_blocked()
            assert not stopped.is_set()
            assert server.reports == []
            assert chronos.worker.running

            release.set()
            await stopped.wait()
            assert server.reported(first) == {"status": "completed", "result": "finished"}
            assert not chronos.worker.running

    assert len(server.claims) == 2
    assert len(server.queue) == 1


async def test_stop_with_one_slot_claims_nothing_after_the_running_job(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()
    started, release = trio.Event(), trio.Event()

    @chronos.worker.handle("test.job")
    async def slow(ctx: ChronosContext) -> None:
        started.set()
        await release.wait()

    server.add_job()
    server.add_job()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await started.wait()
            nursery.start_soon(chronos.worker.stop)
            await trio.testing.wait_all_tasks_blocked()
            release.set()

    assert len(server.reports) == 1
    assert len(server.claims) == 1
    assert len(server.queue) == 1


async def test_stop_cancels_an_idle_long_poll_at_once_and_allows_a_restart(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(poll_wait_time_seconds=20)
    chronos.worker.handle("test.job", _noop)
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.claims) == 1)
            await trio.testing.wait_all_tasks_blocked()
            before = trio.current_time()
            await chronos.worker.stop()
            assert trio.current_time() == before
        assert len(server.claims) == 1

        execution_id = server.add_job()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.reports) == 1)
            await chronos.worker.stop()
    assert server.reported(execution_id)["status"] == "completed"


async def test_stop_called_by_a_handler_finishes_its_own_report(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()

    @chronos.worker.handle("test.job")
    async def last(ctx: ChronosContext) -> str:
        await chronos.worker.stop()
        return "bye"

    execution_id = server.add_job()
    server.add_job()
    with trio.fail_after(LIMIT):
        await chronos.worker.start()  # returns on its own

    assert server.reported(execution_id) == {"status": "completed", "result": "bye"}
    assert len(server.claims) == 1


async def test_stop_without_start_returns_at_once(make_chronos: MakeChronos) -> None:
    chronos = make_chronos()
    with trio.fail_after(1):
        await chronos.worker.stop()
    assert not chronos.worker.running


async def test_start_without_handlers_raises(make_chronos: MakeChronos) -> None:
    chronos = make_chronos()
    with pytest.raises(
        ChronosError, match=exactly("Register at least one handler before starting Chronos")
    ):
        await chronos.worker.start()


async def test_second_start_raises_while_running(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()
    chronos.worker.handle("test.job", _noop)
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(ChronosError, match=exactly("Chronos worker is already started")):
                await chronos.worker.start()
            await chronos.worker.stop()


# Sync handlers run in threads: no autojump clock below, and a real-time limit.


async def test_sync_handlers_run_in_threads_up_to_concurrency(
    server: FakeServer, make_chronos: MakeChronos
) -> None:
    chronos = make_chronos(concurrency=3)
    # Each handler only gets past the barrier once three of them are running together.
    barrier = threading.Barrier(3, timeout=10)
    main_thread = threading.get_ident()

    def blocking(ctx: ChronosContext) -> dict[str, object]:
        barrier.wait()
        return {"in_thread": threading.get_ident() != main_thread}

    chronos.worker.handle("test.job", blocking)
    ids = [server.add_job() for _ in range(3)]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.results) == 3)
            await chronos.worker.stop()

    for execution_id in ids:
        assert server.reported(execution_id) == {
            "status": "completed",
            "result": {"in_thread": True},
        }


async def test_sync_handler_exception_is_reported(
    server: FakeServer, make_chronos: MakeChronos
) -> None:
    chronos = make_chronos()

    def broken(ctx: ChronosContext) -> None:
        raise KeyError("tenant")

    chronos.worker.handle("test.job", broken)
    execution_id = server.add_job()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.reports) == 1)
            await chronos.worker.stop()

    report = server.reported(execution_id)
    assert report["error"]["name"] == "KeyError"
    assert report["error"]["message"] == "'tenant'"
    assert report["retryable"] is True


async def _noop(ctx: ChronosContext) -> None:
    return None

"""Adaptive prefetch on the long-poll path (virtual time): jobs claimed beyond `concurrency` wait
for a handler slot, only while handlers are fast; concurrency 1 never prefetches; a stop runs
and reports every prefetched job. `ClaimTokens`' adaptive rule on its own."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from chronos_worker import ChronosContext, Worker
from chronos_worker.prefetch import PREFETCH_WAIT_BUDGET_SECONDS, WARMUP_RUNS, ClaimTokens

from .conftest import MakeChronos
from .fakes import FakeServer, RecordingLogger, error_response

LIMIT = 600  # virtual seconds; a hang fails instead of blocking the suite


async def run_until(worker: Worker, server: FakeServer, predicate: Callable[[], bool]) -> None:
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.start)
            await server.wait_for(predicate)
            await worker.stop()


class Running:
    """Counts the handlers running at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.calls: list[str] = []

    def enter(self, ctx: ChronosContext) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.calls.append(ctx.execution_id)

    def leave(self) -> None:
        self.now -= 1


def max_jobs(server: FakeServer) -> list[int]:
    return [claim.body["max_jobs"] for claim in server.claims]


# -- the adaptive rule ---------------------------------------------------------------------------


def test_no_prefetch_before_the_warm_up() -> None:
    tokens = ClaimTokens(concurrency=2, prefetch=4)
    for _ in range(WARMUP_RUNS - 1):
        tokens.observe(0.0)
    assert (tokens.prefetch_now, tokens.limit) == (0, 2)
    tokens.observe(0.0)
    assert (tokens.prefetch_now, tokens.limit) == (4, 6)


@pytest.mark.parametrize(
    ("concurrency", "seconds", "expected"),
    [
        (2, 0.001, 4),  # 200 jobs in the budget: the full prefetch
        (2, 0.05, 4),  # 2 x 0.1 / 0.05 = 4
        (2, 0.06, 3),  # 3.33
        (2, 0.1, 2),
        (2, 0.2, 1),
        (2, 0.21, 0),  # 0.95: a job would wait more than the budget
        (8, 1.0, 0),  # a 1 s handler never prefetches
    ],
)
def test_prefetch_fits_the_wait_budget(concurrency: int, seconds: float, expected: int) -> None:
    assert PREFETCH_WAIT_BUDGET_SECONDS == 0.1
    tokens = ClaimTokens(concurrency=concurrency, prefetch=4)
    for _ in range(WARMUP_RUNS):
        tokens.observe(seconds)
    assert tokens.prefetch_now == expected


def test_the_moving_average_follows_slower_handlers() -> None:
    tokens = ClaimTokens(concurrency=2, prefetch=4)
    for _ in range(WARMUP_RUNS):
        tokens.observe(0.0)
    assert tokens.prefetch_now == 4
    for _ in range(20):
        tokens.observe(1.0)
    assert tokens.prefetch_now == 0


def test_shrinking_gives_nothing_back_but_frees_no_token() -> None:
    tokens = ClaimTokens(concurrency=2, prefetch=4)
    for _ in range(WARMUP_RUNS):
        tokens.observe(0.0)
    assert tokens.take_free(100) == 6
    for _ in range(20):
        tokens.observe(1.0)
    assert (tokens.held, tokens.limit, tokens.free()) == (6, 2, 0)
    tokens.release(5)
    assert tokens.free() == 1


# -- the long-poll ---------------------------------------------------------------------------------


def held(worker: Worker) -> int:
    """Claim tokens taken: jobs claimed whose handler has not returned, and the claim's own."""
    assert worker._run is not None
    return worker._run.tokens.held


def waiting_for_a_slot(worker: Worker) -> int:
    """Claimed jobs waiting for a handler slot."""
    assert worker._run is not None
    return worker._run.slots.statistics().tasks_waiting


async def test_concurrency_one_ignores_prefetch(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(concurrency=1, prefetch=10)
    assert chronos.worker.settings.prefetch_limit == 0
    running = Running()
    most_held = 0

    @chronos.worker.handle("test.job")
    async def instant(ctx: ChronosContext) -> None:
        nonlocal most_held
        running.enter(ctx)
        most_held = max(most_held, held(chronos.worker))
        await trio.lowlevel.checkpoint()
        running.leave()

    ids = [server.add_job() for _ in range(20)]
    await run_until(chronos.worker, server, lambda: len(server.results) == 20)

    assert all("max_jobs" not in claim.body for claim in server.claims)
    assert server.batch_attempts == []
    assert (running.peak, most_held) == (1, 1)
    assert running.calls == ids
    assert len(server.reports) == 20
    started = [meta for _, message, meta in logger.records if message == "Worker started"]
    assert started[0]["prefetch"] == 0


async def test_fast_handlers_claim_beyond_the_concurrency_and_wait_for_a_slot(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(concurrency=2, prefetch=4)
    running = Running()
    most_waiting = 0

    @chronos.worker.handle("test.job")
    async def fast(ctx: ChronosContext) -> str:
        nonlocal most_waiting
        running.enter(ctx)
        await trio.lowlevel.checkpoint()
        most_waiting = max(most_waiting, waiting_for_a_slot(chronos.worker))
        running.leave()
        return ctx.execution_id

    ids = [server.add_job() for _ in range(60)]
    await run_until(chronos.worker, server, lambda: len(server.results) == 60)

    asked = max_jobs(server)
    assert asked[0] == 2  # no prefetch before the warm-up
    assert max(asked) == 6  # then concurrency + prefetch
    assert running.peak == 2
    assert 0 < most_waiting <= 4  # jobs did wait in the worker for a slot
    assert sorted(running.calls) == sorted(ids)  # each job ran once
    for execution_id in ids:
        assert server.reported(execution_id) == {"status": "completed", "result": execution_id}
    assert sum(server.batch_sizes) == 60  # each reported once
    assert server.report_attempts == []
    started = [meta for _, message, meta in logger.records if message == "Worker started"]
    assert started[0]["prefetch"] == 4


async def test_slow_handlers_never_prefetch(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=2, prefetch=4)
    running = Running()

    @chronos.worker.handle("test.job")
    async def slow(ctx: ChronosContext) -> None:
        running.enter(ctx)
        await trio.sleep(1)
        running.leave()

    for _ in range(30):
        server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.results) == 30)

    assert max(max_jobs(server)) == 2
    assert running.peak == 2
    assert chronos.worker.settings.prefetch_limit == 4


async def test_handlers_turning_slow_shrink_the_claims(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=2, prefetch=4)
    running = Running()

    @chronos.worker.handle("test.job")
    async def job(ctx: ChronosContext) -> None:
        running.enter(ctx)
        await trio.sleep(1 if ctx.payload == "slow" else 0)
        running.leave()

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            for _ in range(30):
                server.add_job(payload="fast")
            await server.wait_for(lambda: len(server.results) == 30)
            assert max(max_jobs(server)) == 6
            fast_claims = len(server.claims)
            for _ in range(20):
                server.add_job(payload="slow")
            await server.wait_for(lambda: len(server.results) == 50)
            await chronos.worker.stop()

    later = max_jobs(server)[fast_claims:]
    assert later[-1] <= 2  # slow now: only the free slots are claimed
    assert running.peak == 2
    assert set(server.results) == set(running.calls)


async def test_prefetch_zero_claims_only_free_slots(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=2, prefetch=0)

    @chronos.worker.handle("test.job")
    async def instant(ctx: ChronosContext) -> None:
        await trio.lowlevel.checkpoint()

    for _ in range(30):
        server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.results) == 30)

    assert max(max_jobs(server)) == 2


async def test_stop_runs_and_reports_the_prefetched_jobs(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=2, prefetch=4)
    running = Running()
    release = trio.Event()
    returned: list[str] = []
    reported_at_return: set[str] = set()

    @chronos.worker.handle("test.job")
    async def job(ctx: ChronosContext) -> None:
        running.enter(ctx)
        if ctx.payload == "hold":
            await release.wait()
        else:
            await trio.lowlevel.checkpoint()
        running.leave()

    warm = [server.add_job(payload="warm") for _ in range(WARMUP_RUNS)]
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:

            async def start() -> None:
                await chronos.worker.start()
                returned.append("start")
                reported_at_return.update(server.results)

            async def stop() -> None:
                await chronos.worker.stop()
                returned.append("stop")

            nursery.start_soon(start)
            await server.wait_for(lambda: len(server.results) == WARMUP_RUNS)
            await trio.testing.wait_all_tasks_blocked()
            holds = [server.add_job(payload="hold") for _ in range(6)]
            await server.wait_for(lambda: not server.queue)
            await trio.testing.wait_all_tasks_blocked()
            assert server.claims[-1].body["max_jobs"] == 6
            assert (running.now, waiting_for_a_slot(chronos.worker)) == (2, 4)

            nursery.start_soon(stop)
            await trio.testing.wait_all_tasks_blocked()
            assert returned == []
            claims = len(server.claims)
            release.set()
            await trio.testing.wait_all_tasks_blocked()
            assert sorted(returned) == ["start", "stop"]

    assert reported_at_return == set(warm + holds)  # start() returned after every report
    assert len(server.claims) == claims  # nothing claimed after the stop
    assert running.peak == 2
    assert sorted(running.calls) == sorted(warm + holds)
    assert set(server.results) == set(warm + holds)


async def test_a_prefetched_job_keeps_its_lease_while_it_waits_for_a_slot(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=2, prefetch=4)
    release = trio.Event()
    started: dict[str, float] = {}

    @chronos.worker.handle("test.job")
    async def job(ctx: ChronosContext) -> None:
        started[ctx.execution_id] = trio.current_time()
        if ctx.payload == "hold":
            await release.wait()

    for _ in range(WARMUP_RUNS):
        server.add_job()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.results) == WARMUP_RUNS)
            holds = [server.add_job(payload="hold") for _ in range(2)]
            await trio.testing.wait_all_tasks_blocked()
            assert all(h in started for h in holds)
            claimed_at = trio.current_time()
            waiting = server.add_job(payload="wait")
            await trio.testing.wait_all_tasks_blocked()
            assert waiting_for_a_slot(chronos.worker) == 1  # two run, one waits for a slot
            beat_path = f"/v1/worker/executions/{waiting}/heartbeat"
            # timeout 30 s: the first heartbeat a third of it after the claim, slot or not
            await server.wait_for(lambda: any(b.path == beat_path for b in server.heartbeats))
            assert waiting not in started
            first = next(b.at for b in server.heartbeats if b.path == beat_path)
            assert first == claimed_at + 10
            release.set()
            await server.wait_for(lambda: len(server.results) == WARMUP_RUNS + 3)
            await chronos.worker.stop()
    assert started[waiting] == first


async def test_a_prefetched_job_whose_lease_is_lost_while_it_waits_is_not_run(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(concurrency=2, prefetch=4)
    started: list[str] = []

    @chronos.worker.handle("test.job")
    async def job(ctx: ChronosContext) -> None:
        started.append(ctx.execution_id)
        if ctx.payload == "hold":
            await trio.sleep_forever()  # until its lease is lost: cancelled

    warm = [server.add_job() for _ in range(WARMUP_RUNS)]
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.results) == WARMUP_RUNS)
            holds = [server.add_job(payload="hold") for _ in range(2)]
            await trio.testing.wait_all_tasks_blocked()
            assert all(h in started for h in holds)
            waiting = server.add_job(payload="wait")
            await trio.testing.wait_all_tasks_blocked()
            assert waiting_for_a_slot(chronos.worker) == 1  # two run, one waits for a slot
            for _ in range(3):
                server.heartbeat_script.append(error_response(409, "lease_expired"))
            await server.wait_for(lambda: len(server.heartbeats) == 3)
            await trio.testing.wait_all_tasks_blocked()
            await chronos.worker.stop()

    assert waiting not in started  # the waiting job never ran
    assert sorted(started) == sorted(warm + holds)
    assert set(server.results) == set(warm)  # nothing reported for the lost attempts
    lost = [m for m in logger.messages("error") if m.startswith("Lease of attempt 1")]
    assert len(lost) == 3


async def test_a_claim_waits_for_half_the_tokens_while_prefetching() -> None:
    """While prefetching, the long-poll's claimer takes its first token only once half the
    limit is free, so each claim asks for a batch; without prefetch one free token is enough."""
    tokens = ClaimTokens(2, 4)
    for _ in range(8):
        tokens.observe(0.0)
    assert tokens.limit == 6
    tokens.held = 4  # 2 running, 2 waiting for a slot
    got = trio.Event()

    async def claimer() -> None:
        await tokens.acquire_for_claim()
        got.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(claimer)
        await trio.testing.wait_all_tasks_blocked()
        assert not got.is_set()  # 2 free of 6: not yet
        tokens.release()
        await trio.testing.wait_all_tasks_blocked()
        assert got.is_set() and tokens.held == 4  # 3 free: it took one

    cold = ClaimTokens(2, 4)  # no prefetch before the warm-up: one free token is enough
    cold.held = 1
    await cold.acquire_for_claim()
    assert cold.held == 2

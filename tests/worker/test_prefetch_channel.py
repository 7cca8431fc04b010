"""Adaptive prefetch over the worker channel (virtual time, `fake_channel.py`): credits cover
concurrency + the prefetch of the moment and never more, handlers never exceed the concurrency,
a shrinking prefetch grants fewer credits (none revoked), and `drain` runs and reports every
prefetched job."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from chronos_worker import Chronos, ChronosContext, Worker, streaming
from chronos_worker.prefetch import WARMUP_RUNS

from .conftest import MakeChronos
from .fake_channel import FakeChannel
from .fakes import FakeServer, RecordingLogger

LIMIT = 600  # virtual seconds; a hang fails instead of blocking the suite


@pytest.fixture
def channel(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeChannel:
    fake = FakeChannel(server)
    monkeypatch.setattr(streaming, "open_channel", fake.open)
    return fake


def stream_chronos(make_chronos: MakeChronos, **options: object) -> Chronos:
    return make_chronos(protocol="stream", **options)


async def run_until(worker: Worker, server: FakeServer, predicate: Callable[[], bool]) -> None:
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.start)
            await server.wait_for(predicate)
            await worker.stop()


class Running:
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


async def test_fast_handlers_get_credits_up_to_concurrency_plus_prefetch(
    server: FakeServer, channel: FakeChannel, make_chronos: MakeChronos, autojump_clock: object
) -> None:
    chronos = stream_chronos(make_chronos, concurrency=2, prefetch=4)
    running = Running()

    @chronos.worker.handle("test.job")
    async def fast(ctx: ChronosContext) -> str:
        running.enter(ctx)
        await trio.lowlevel.checkpoint()
        running.leave()
        return ctx.execution_id

    ids = [channel.add_job() for _ in range(60)]
    await run_until(chronos.worker, server, lambda: len(channel.results) == 60)

    assert channel.hellos[0]["credits"] == 2  # no prefetch before the warm-up
    assert channel.peak_outstanding == 6  # then concurrency + prefetch, never more
    assert all(n > 0 for n in channel.grants)
    assert running.peak == 2
    assert sorted(running.calls) == sorted(ids)
    assert set(channel.results.values()) == {1}  # each reported once
    for execution_id in ids:
        assert server.reported(execution_id) == {"status": "completed", "result": execution_id}


async def test_slow_handlers_get_credits_for_free_slots_only(
    server: FakeServer, channel: FakeChannel, make_chronos: MakeChronos, autojump_clock: object
) -> None:
    chronos = stream_chronos(make_chronos, concurrency=2, prefetch=4)
    running = Running()

    @chronos.worker.handle("test.job")
    async def slow(ctx: ChronosContext) -> None:
        running.enter(ctx)
        await trio.sleep(1)
        running.leave()

    for _ in range(30):
        channel.add_job()
    await run_until(chronos.worker, server, lambda: len(channel.results) == 30)

    assert channel.peak_outstanding == 2
    assert running.peak == 2
    assert set(channel.results.values()) == {1}


async def test_a_shrinking_prefetch_grants_fewer_credits(
    server: FakeServer, channel: FakeChannel, make_chronos: MakeChronos, autojump_clock: object
) -> None:
    chronos = stream_chronos(make_chronos, concurrency=2, prefetch=4)
    running = Running()

    @chronos.worker.handle("test.job")
    async def job(ctx: ChronosContext) -> None:
        running.enter(ctx)
        await trio.sleep(1 if ctx.payload == "slow" else 0)
        running.leave()

    for _ in range(30):
        channel.add_job(payload="fast")
    await run_until(chronos.worker, server, lambda: len(channel.results) == 30)
    assert channel.peak_outstanding == 6
    grants_before = len(channel.outstanding_at_grant)

    # The same worker's handlers turn slow: the credits out drain to the free slots.
    # (A second start: the moving average starts afresh, so warm it up fast first.)
    for _ in range(WARMUP_RUNS):
        channel.add_job(payload="fast")
    for _ in range(20):
        channel.add_job(payload="slow")
    await run_until(chronos.worker, server, lambda: len(channel.results) == 58)

    later = channel.outstanding_at_grant[grants_before:]
    assert max(later) == 6  # fast again after the warm-up
    assert later[-1] <= 2  # slow: credits only for the free slots
    assert all(n > 0 for n in channel.grants)  # none revoked, none negative
    assert running.peak == 2
    assert set(channel.results.values()) == {1}


async def test_drain_runs_and_reports_the_prefetched_jobs(
    server: FakeServer, channel: FakeChannel, make_chronos: MakeChronos, autojump_clock: object
) -> None:
    chronos = stream_chronos(make_chronos, concurrency=2, prefetch=4)
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

    warm = [channel.add_job(payload="warm") for _ in range(WARMUP_RUNS)]
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:

            async def start() -> None:
                await chronos.worker.start()
                returned.append("start")
                reported_at_return.update(channel.results)

            nursery.start_soon(start)
            await server.wait_for(lambda: len(channel.results) == WARMUP_RUNS)
            await trio.testing.wait_all_tasks_blocked()
            held = [channel.add_job(payload="hold") for _ in range(8)]
            await trio.testing.wait_all_tasks_blocked()
            assert len(channel.unreported) == 6  # two run, four wait for a slot
            assert len(server.queue) == 2
            assert running.now == 2

            nursery.start_soon(chronos.worker.stop)
            await trio.testing.wait_all_tasks_blocked()
            assert channel.draining
            assert returned == []
            release.set()

    assert returned == ["start"]
    assert reported_at_return == set(warm + held[:6])  # start() returned after every report
    assert running.peak == 2
    assert sorted(running.calls) == sorted(warm + held[:6])
    assert set(channel.results) == set(warm + held[:6])
    assert set(channel.results.values()) == {1}
    assert len(server.queue) == 2  # nothing taken after the drain


@pytest.mark.parametrize("lead_ms", [10, None])
async def test_a_job_sent_ahead_starts_start_in_ms_after_it_arrived(
    server: FakeServer,
    make_chronos: MakeChronos,
    autojump_clock: object,
    monkeypatch: pytest.MonkeyPatch,
    lead_ms: int | None,
) -> None:
    """A server whose welcome says `lead_ms` is told `timed_start`; a job that then comes with
    `start_in_ms` starts that long after the message arrived (its lease from then), one without
    at once. A server that does not say `lead_ms` is not told."""
    channel = FakeChannel(server, lead_ms=lead_ms)
    monkeypatch.setattr(streaming, "open_channel", channel.open)
    chronos = stream_chronos(make_chronos, concurrency=4)
    started: dict[str, float] = {}

    @chronos.worker.handle("test.job")
    async def record(ctx: ChronosContext) -> None:
        started[ctx.execution_id] = trio.current_time()

    timed = channel.add_job(start_in_ms=8)
    plain = channel.add_job()
    await run_until(chronos.worker, server, lambda: len(channel.results) == 2)
    assert channel.timed_start is (lead_ms is not None)
    assert started[timed] - started[plain] == pytest.approx(0.008, abs=1e-6)


async def test_a_job_sent_ahead_starts_at_its_due_instant_less_no_message_transit(
    server: FakeServer,
    make_chronos: MakeChronos,
    autojump_clock: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Messages say when they left by the server's clock (`sent_at`): the first took 0.5 ms,
    the second 3 ms. The second's job, due 8 ms after it left, starts 5 ms after it arrived
    plus the shortest transit seen (0.5 ms, and the bound's drift allowance: 1 ms per second
    of its age, here 8 ms) — not 8 ms after it arrived, 3 ms late."""
    channel = FakeChannel(server, lead_ms=10, clock_offset_ms=1.8e12, transits_ms=[0.5, 3.0])
    monkeypatch.setattr(streaming, "open_channel", channel.open)
    chronos = stream_chronos(make_chronos, concurrency=4)
    started: dict[str, float] = {}
    second: list[str] = []

    @chronos.worker.handle("test.job")
    async def record(ctx: ChronosContext) -> None:
        started[ctx.execution_id] = trio.current_time()
        if not second:  # the next job leaves the server now
            second.append(channel.add_job(start_in_ms=8))

    first = channel.add_job(start_in_ms=8)
    await run_until(chronos.worker, server, lambda: len(channel.results) == 2)
    assert started[second[0]] - started[first] == pytest.approx(0.005508, abs=2e-6)


@pytest.mark.parametrize("offered", [True, False])
async def test_brief_acks_are_asked_for_only_when_offered(
    server: FakeServer,
    make_chronos: MakeChronos,
    autojump_clock: object,
    monkeypatch: pytest.MonkeyPatch,
    offered: bool,
) -> None:
    """A server whose welcome says `brief_acks` is told the worker does not read an ack's
    execution; a server that does not say it is not told (an older one would close the channel
    on the unknown message)."""
    channel = FakeChannel(server, offers_brief_acks=offered)
    monkeypatch.setattr(streaming, "open_channel", channel.open)
    chronos = stream_chronos(make_chronos, concurrency=2)

    @chronos.worker.handle("test.job")
    async def noop(ctx: ChronosContext) -> None:
        pass

    job = channel.add_job()
    await run_until(chronos.worker, server, lambda: channel.results[job] == 1)
    assert channel.brief_acks is offered


async def test_a_result_never_acknowledged_is_given_up_when_its_lease_is_over(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No ack for a result (a server that recorded nothing, or whose ack was lost): it is given
    up once its lease has run out by the worker's clock plus the grace, logged once, and its
    place is free again (the stop is not held by it)."""
    channel = FakeChannel(server, acks=False)
    monkeypatch.setattr(streaming, "open_channel", channel.open)
    chronos = stream_chronos(make_chronos, concurrency=2)

    @chronos.worker.handle("test.job")
    async def noop(ctx: ChronosContext) -> None:
        pass

    first = channel.add_job(timeout=30)
    second = channel.add_job(timeout=5)
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: channel.results[first] == channel.results[second] == 1)
            await trio.sleep(5 + streaming.ACK_GRACE_SECONDS + 1)
            gave_up = [m for m in logger.messages("error") if m.startswith("Giving up")]
            assert gave_up == [
                "Giving up on the report of attempt 1 of job job-2 after 1 try: its 5 s lease has"
                " run out; the server will time the attempt out and retry the job if retries"
                " remain"
            ]
            await chronos.worker.stop()
    assert trio.current_time() == pytest.approx(30 + streaming.ACK_GRACE_SECONDS, abs=0.1)
    gave_up = [m for m in logger.messages("error") if m.startswith("Giving up")]
    assert len(gave_up) == 2 and "job job-1 " in gave_up[1]


async def test_auto_prefetch_over_the_channel_holds_two_of_the_servers_batches(
    server: FakeServer, channel: FakeChannel, make_chronos: MakeChronos, autojump_clock: object
) -> None:
    """With auto prefetch a fast worker at concurrency 8 holds up to 200 jobs over the channel
    (the long-poll's auto limit is 72: one batch claim), never more, 8 handlers at a time."""
    chronos = stream_chronos(make_chronos, concurrency=8)
    running = Running()

    @chronos.worker.handle("test.job")
    async def fast(ctx: ChronosContext) -> None:
        running.enter(ctx)
        await trio.lowlevel.checkpoint()
        running.leave()

    for _ in range(1000):
        channel.add_job()
    await run_until(chronos.worker, server, lambda: len(channel.results) == 1000)

    assert chronos.worker.settings.prefetch_limit == 64
    assert channel.peak_outstanding == 200
    assert running.peak == 8
    assert set(channel.results.values()) == {1}

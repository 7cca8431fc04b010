"""The shape of the pipeline (virtual time): a slot is free once its handler has returned, so the
next claim goes out while the report is sent, with concurrency 1 (the plain one-job protocol:
one job per claim, one report per job) and in batch mode; at most `concurrency` reports are
unsettled at once; reports are never held back waiting for more."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from chronos_worker import ChronosContext, Worker

from .conftest import MakeChronos
from .fakes import FakeServer, RecordingLogger, Request, error_response

LIMIT = 600  # virtual seconds; a hang fails instead of blocking the suite


async def run_until(worker: Worker, server: FakeServer, predicate: Callable[[], bool]) -> None:
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.start)
            await server.wait_for(predicate)
            await worker.stop()


def times(requests: list[Request]) -> list[float]:
    return [r.at for r in requests]


async def test_concurrency_one_claims_the_next_job_while_the_report_is_in_flight(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()
    server.report_latency = 5
    started: list[float] = []

    @chronos.worker.handle("test.job")
    async def instant(ctx: ChronosContext) -> str:
        started.append(trio.current_time())
        return ctx.execution_id

    ids = [server.add_job() for _ in range(3)]
    await run_until(chronos.worker, server, lambda: len(server.results) == 3)

    # Job 2 is claimed and run while job 1's report is in flight; its own report waits for
    # that one (one unsettled report with concurrency 1), and so does the third claim.
    assert times(server.claims) == [0, 0, 5, 10]
    assert started == [0, 0, 5]
    assert times(server.report_attempts) == [0, 5, 10]
    # Still the plain protocol: one job per claim, one report per job, no batch route.
    assert all("max_jobs" not in claim.body for claim in server.claims)
    assert server.batch_attempts == []
    assert [r.path for r in server.reports] == [
        f"/v1/worker/executions/{execution_id}/result" for execution_id in ids
    ]
    for execution_id in ids:
        assert server.reported(execution_id) == {"status": "completed", "result": execution_id}


async def test_stop_cancels_the_overlapping_claim_and_waits_for_the_report(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()
    server.report_latency = 5
    chronos.worker.handle("test.job", _returns_done)
    first = server.add_job()
    stopped_at: list[float] = []

    async def stop_worker() -> None:
        await chronos.worker.stop()
        stopped_at.append(trio.current_time())

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            # The report is in flight and the next claim is long-polling beside it.
            await server.wait_for(lambda: len(server.claims) == 2)
            await trio.testing.wait_all_tasks_blocked()
            assert server.report_attempts != [] and server.results == {}
            nursery.start_soon(stop_worker)
            await trio.testing.wait_all_tasks_blocked()
            server.add_job()  # the long-poll is gone: nobody claims this one
            await trio.testing.wait_all_tasks_blocked()
            assert stopped_at == []

    assert stopped_at == [5]  # when the report was answered
    assert server.reported(first) == {"status": "completed", "result": "done"}
    assert len(server.report_attempts) == 1
    assert len(server.claims) == 2
    assert len(server.queue) == 1
    assert not chronos.worker.running


async def test_a_report_retried_beside_the_next_job_is_still_bounded_by_its_lease(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos()
    started: list[float] = []

    @chronos.worker.handle("test.job")
    async def instant(ctx: ChronosContext) -> str:
        started.append(trio.current_time())
        return "done"

    # Job 1's report fails at each of its tries until its 30 s lease runs out (7 tries with
    # the seeded jitter); job 2's report, sent after that, goes through.
    server.report_script.extend([error_response(503, "service_unavailable")] * 7)
    first = server.add_job(timeout=30)
    second = server.add_job(timeout=30)
    await run_until(chronos.worker, server, lambda: second in server.results)

    attempts = [(r.path.split("/")[-2], r.at) for r in server.report_attempts]
    tries = [0, 1, 2.1191, 5.1241, 11.1714, 26.0514, 30]
    assert attempts == [("exec-1", pytest.approx(t, abs=1e-3)) for t in tries] + [("exec-2", 30)]
    assert first not in server.results
    assert started == [0, 0]  # job 2 ran while job 1's report was being retried
    assert times(server.claims) == [0, 0, 30]  # no third claim while both were unsettled
    assert [m for m in logger.messages("error") if m.startswith("Giving up")] == [
        "Giving up on the report of attempt 1 of job job-1 after 7 tries: its 30 s lease has"
        " run out; the server will time the attempt out and retry the job if retries remain"
    ]


async def test_batch_claims_go_out_while_the_batch_report_is_in_flight(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=2)
    server.report_latency = 5
    chronos.worker.handle("test.job", _returns_done)
    for _ in range(4):
        server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.results) == 4)

    # The second claim leaves at 0 s, while the first report (answered at 5 s) is in flight.
    # Trio shuffles tasks that are ready together, so how the four reports are grouped, and
    # whether a claim asks for one slot or two, varies from run to run; all are right.
    assert times(server.claims)[:2] == [0, 0]
    assert all(c.body["max_jobs"] in (1, 2) for c in server.claims)
    assert times(server.batch_attempts)[0] == 0
    assert sum(server.batch_sizes) == 4


async def test_a_report_is_sent_at_once_and_those_done_meanwhile_go_together_next(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=4)
    server.report_latency = 5

    @chronos.worker.handle("test.job")
    async def staggered(ctx: ChronosContext) -> None:
        await trio.sleep(ctx.payload)

    for seconds in (0, 1, 2, 2):
        server.add_job(payload=seconds)
    await run_until(chronos.worker, server, lambda: len(server.results) == 4)

    # Nothing in flight at 0 s: the first report leaves at once, alone. The three that finish
    # while it is in flight leave together when it has been answered, not one by one.
    assert times(server.batch_attempts) == [0, 5]
    assert server.batch_sizes == [1, 3]


async def _returns_done(ctx: ChronosContext) -> str:
    return "done"

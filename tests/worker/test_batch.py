"""Batch claim (`max_jobs`) and batch report extensions with `concurrency > 1`, their fallbacks
for servers without them, and concurrency 1 staying on the single-job protocol (virtual time)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import trio
import trio.testing

from chronos_worker import ChronosContext, Worker

from .conftest import MakeChronos
from .fakes import FakeServer, RecordingLogger, error_response

LIMIT = 600  # virtual seconds; a hang fails instead of blocking the suite


async def run_until(worker: Worker, server: FakeServer, predicate: Callable[[], bool]) -> None:
    """Start `worker`, wait until `predicate` holds on the server, then stop it."""
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.start)
            await server.wait_for(predicate)
            await worker.stop()


async def test_batch_claims_take_every_free_slot(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=4)

    @chronos.worker.handle("test.job")
    async def work(ctx: ChronosContext) -> str:
        await trio.sleep(1)
        return ctx.execution_id

    ids = [server.add_job() for _ in range(10)]
    await run_until(chronos.worker, server, lambda: len(server.results) == 10)

    assert all("max_jobs" in claim.body for claim in server.claims)
    assert server.claims[0].body["max_jobs"] == 4
    assert len(server.claims) < 10
    assert server.report_attempts == []
    for execution_id in ids:
        assert server.reported(execution_id) == {"status": "completed", "result": execution_id}


async def test_slots_for_which_no_job_came_are_released(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=4)
    release = trio.Event()
    active = 0

    @chronos.worker.handle("test.job")
    async def slow(ctx: ChronosContext) -> None:
        nonlocal active
        active += 1
        await release.wait()

    server.add_job()
    server.add_job()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.claims) == 2)
            await trio.testing.wait_all_tasks_blocked()
            # Four slots asked for, two jobs came: the two others are free for the next claim.
            assert [c.body["max_jobs"] for c in server.claims] == [4, 2]
            assert active == 2

            for _ in range(3):
                server.add_job()
            await trio.testing.wait_all_tasks_blocked()
            assert active == 4
            assert len(server.claims) == 2  # every slot busy: nothing more is claimed
            assert len(server.queue) == 1

            release.set()
            await server.wait_for(lambda: len(server.results) == 5)
            await chronos.worker.stop()


async def test_reports_that_finish_together_go_as_one_batch(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(concurrency=4)
    release = trio.Event()

    @chronos.worker.handle("test.job")
    async def together(ctx: ChronosContext) -> dict[str, object]:
        await release.wait()
        if ctx.payload == "fail":
            raise ValueError("bad input")
        return {"n": ctx.payload}

    ids = [server.add_job(payload=n) for n in (1, 2, 3)]
    failing = server.add_job(payload="fail")
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.queue) == 0)
            await trio.testing.wait_all_tasks_blocked()
            release.set()
            await server.wait_for(lambda: len(server.results) == 4)
            await chronos.worker.stop()

    assert server.batch_sizes == [4]
    assert server.report_attempts == []
    for n, execution_id in enumerate(ids, start=1):
        assert server.reported(execution_id) == {"status": "completed", "result": {"n": n}}
    failure = server.reported(failing)
    assert failure["status"] == "failed"
    assert failure["retryable"] is True
    assert failure["error"]["name"] == "ValueError"
    assert failure["error"]["message"] == "bad input"
    assert 'raise ValueError("bad input")' in failure["error"]["stack"]
    assert sorted(m for m in logger.messages("info") if " completed on " in m) == [
        f"Job job-{n} completed on attempt 1" for n in (1, 2, 3)
    ]
    assert logger.messages("warning") == [
        "Attempt 1 of job job-4 failed, will be retried at 2026-01-15T09:00:02.000Z"
    ]


async def test_reports_that_come_in_while_a_batch_waits_to_retry_join_it(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    # The first report's batch is refused (503) and retried 1 s later; the three reports that
    # come in meanwhile join that retry.
    chronos = make_chronos(concurrency=4, retry_delay_ms=1000)

    @chronos.worker.handle("test.job")
    async def staggered(ctx: ChronosContext) -> None:
        await trio.sleep(0 if ctx.payload == 0 else 0.5)

    for n in range(4):
        server.add_job(payload=n)
    server.batch_script.append(error_response(503, "service_unavailable"))
    await run_until(chronos.worker, server, lambda: len(server.results) == 4)

    assert server.batch_sizes == [4]
    assert [len(b.body["results"]) for b in server.batch_attempts] == [1, 4]


async def test_a_batch_holds_at_most_100_reports(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=150)
    release = trio.Event()

    @chronos.worker.handle("test.job")
    async def together(ctx: ChronosContext) -> None:
        await release.wait()

    for _ in range(150):
        server.add_job()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.queue) == 0)
            await trio.testing.wait_all_tasks_blocked()
            release.set()
            await server.wait_for(lambda: len(server.results) == 150)
            await chronos.worker.stop()

    assert [c.body["max_jobs"] for c in server.claims[:2]] == [100, 50]
    assert server.batch_sizes == [100, 50]


async def test_large_reports_split_the_batch_by_size(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=10)
    release = trio.Event()

    @chronos.worker.handle("test.job")
    async def big(ctx: ChronosContext) -> str:
        await release.wait()
        return "x" * 60_000

    for _ in range(10):
        server.add_job()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.queue) == 0)
            await trio.testing.wait_all_tasks_blocked()
            release.set()
            await server.wait_for(lambda: len(server.results) == 10)
            await chronos.worker.stop()

    assert server.batch_sizes == [8, 2]  # 8 x 60 KB fit in 512 KiB, 9 do not


@pytest.mark.parametrize(
    ("code", "level", "why"),
    [
        ("execution_already_finished", "warning", "the execution was already finished"),
        (
            "lease_expired",
            "warning",
            "its lease had expired and the server has timed the attempt out"
            " (the job is retried if retries remain)",
        ),
        ("execution_not_found", "error", "the server has no such execution"),
    ],
)
async def test_a_refused_batch_item_is_logged_and_not_retried(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
    code: str,
    level: str,
    why: str,
) -> None:
    chronos = make_chronos(concurrency=2)
    release = trio.Event()

    @chronos.worker.handle("test.job")
    async def together(ctx: ChronosContext) -> None:
        await release.wait()

    refused = server.add_job()
    accepted = server.add_job()
    server.item_errors[refused] = code
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.queue) == 0)
            await trio.testing.wait_all_tasks_blocked()
            release.set()
            await server.wait_for(lambda: len(server.batches) == 1)
            await chronos.worker.stop()

    assert len(server.batch_attempts) == 1
    assert server.report_attempts == []
    assert list(server.results) == [accepted]
    message = f"Report of attempt 1 of job job-1 refused: {why}; not retried"
    [record] = [r for r in logger.records if r[0] == level and r[1] == message]
    assert record[2]["execution_id"] == refused
    assert str(record[2]["error"]).startswith(f"{code}: ")
    assert ("info", "Job job-2 completed on attempt 1") in [
        (lvl, msg) for lvl, msg, _ in logger.records
    ]


async def test_a_503_on_the_batch_is_retried_then_succeeds(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(concurrency=2, retry_delay_ms=2000)
    chronos.worker.handle("test.job", _returns_done)
    server.batch_script.extend(
        [
            error_response(503, "service_unavailable"),
            httpx.ConnectError("connection refused"),
            error_response(429, "rate_limit_exceeded", {"Retry-After": "7"}),
        ]
    )
    execution_id = server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.results) == 1)

    # Backoff from 2 s (then 2.24 s with the seeded jitter); the 429's Retry-After as is.
    first = server.batch_attempts[0].at
    assert [b.at - first for b in server.batch_attempts] == pytest.approx(
        [0, 2, 4.2382, 11.2382], abs=1e-3
    )
    assert server.reported(execution_id) == {"status": "completed", "result": "done"}
    assert logger.messages("warning") == [
        "Server unreachable for reports (POST /v1/worker/executions/results answered"
        " HTTP 503: service_unavailable: HTTP 503); retrying with backoff",
        "Batch report failed; retrying",  # the 429
    ]
    assert logger.messages("info")[-3:-1] == [
        "Server reachable again for reports, after 2 failed requests over 4.2 s",
        "Job job-1 completed on attempt 1",
    ]
    assert server.report_attempts == []


async def test_a_refused_batch_is_resent_one_by_one(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(concurrency=2)
    release = trio.Event()

    @chronos.worker.handle("test.job")
    async def together(ctx: ChronosContext) -> None:
        await release.wait()

    server.batch_script.append(error_response(422, "validation_error"))
    ids = [server.add_job(), server.add_job()]
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.queue) == 0)
            await trio.testing.wait_all_tasks_blocked()
            release.set()
            await server.wait_for(lambda: len(server.results) == 2)
            later = server.add_job()
            await server.wait_for(lambda: len(server.results) == 3)
            await chronos.worker.stop()

    assert sorted(r.path.split("/")[-2] for r in server.reports) == ids
    assert server.batch_sizes == [1]  # batching stays on: the later report is batched
    assert later in server.results
    assert logger.messages("warning") == ["Batch report refused; sending its reports one by one"]


async def test_claims_fall_back_to_single_jobs_after_a_422(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
) -> None:
    server.batch_claims = False
    chronos = make_chronos(concurrency=3)

    @chronos.worker.handle("test.job")
    async def work(ctx: ChronosContext) -> None:
        await trio.sleep(1)

    ids = [server.add_job() for _ in range(5)]
    await run_until(chronos.worker, server, lambda: len(server.results) == 5)

    assert "max_jobs" in server.claims[0].body
    assert all("max_jobs" not in claim.body for claim in server.claims[1:])
    assert len(server.claims) >= 6  # the refused one, then one per job
    assert sorted(server.results) == sorted(ids)
    fallback = "The server has no batch claims; claiming one job at a time"
    assert logger.messages("info").count(fallback) == 1
    assert logger.messages("error") == []


async def test_claims_after_the_fallback_still_use_every_slot(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    server.batch_claims = False
    chronos = make_chronos(concurrency=3)
    release = trio.Event()
    active = 0

    @chronos.worker.handle("test.job")
    async def slow(ctx: ChronosContext) -> None:
        nonlocal active
        active += 1
        await release.wait()

    for _ in range(4):
        server.add_job()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.claims) == 4)
            await trio.testing.wait_all_tasks_blocked()
            assert active == 3
            assert len(server.claims) == 4  # the refused batch claim, then three single ones
            assert len(server.queue) == 1
            release.set()
            await server.wait_for(lambda: len(server.results) == 4)
            await chronos.worker.stop()


@pytest.mark.parametrize("status", [404, 405])
async def test_reports_fall_back_to_single_requests_without_the_batch_route(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
    status: int,
) -> None:
    server.batch_reports = False
    server.missing_route_status = status
    chronos = make_chronos(concurrency=3)
    release = trio.Event()

    @chronos.worker.handle("test.job")
    async def together(ctx: ChronosContext) -> str:
        await release.wait()
        return ctx.execution_id

    ids = [server.add_job() for _ in range(3)]
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.queue) == 0)
            await trio.testing.wait_all_tasks_blocked()
            release.set()
            await server.wait_for(lambda: len(server.results) == 3)
            ids += [server.add_job(), server.add_job()]
            await server.wait_for(lambda: len(server.results) == 5)
            await chronos.worker.stop()

    assert len(server.batch_attempts) == 1  # never tried again
    assert len(server.batch_attempts[0].body["results"]) == 3
    assert len(server.reports) == 5
    for execution_id in ids:
        assert server.reported(execution_id) == {"status": "completed", "result": execution_id}
    fallback = "The server has no batch reports; sending reports one by one"
    assert logger.messages("info").count(fallback) == 1
    assert logger.messages("warning") == []
    assert logger.messages("error") == []


async def test_stop_sends_the_running_jobs_reports_as_a_batch_before_start_returns(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    # Three jobs on four slots: while they run, the fourth slot has a long-poll in flight.
    chronos = make_chronos(concurrency=4)
    server.report_latency = 0.5  # a report in flight when the handlers are done
    release = trio.Event()
    returned: list[list[int]] = []

    @chronos.worker.handle("test.job")
    async def slow(ctx: ChronosContext) -> str:
        await release.wait()
        return "finished"

    ids = [server.add_job() for _ in range(3)]

    async def run_worker() -> None:
        await chronos.worker.start()
        returned.append(server.batch_sizes)

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_worker)
            await server.wait_for(lambda: len(server.claims) == 2)
            await trio.testing.wait_all_tasks_blocked()
            assert [c.body["max_jobs"] for c in server.claims] == [4, 1]
            nursery.start_soon(chronos.worker.stop)
            await trio.testing.wait_all_tasks_blocked()
            server.add_job()  # the long-poll is gone: nobody claims this one
            await trio.testing.wait_all_tasks_blocked()
            assert returned == []
            assert server.batch_attempts == []
            release.set()

    assert returned == [[3]]  # the reports were sent, in one batch, before start() returned
    for execution_id in ids:
        assert server.reported(execution_id) == {"status": "completed", "result": "finished"}
    assert len(server.claims) == 2
    assert len(server.queue) == 1
    assert not chronos.worker.running


async def test_concurrency_one_uses_neither_extension(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()
    chronos.worker.handle("test.job", _returns_done)
    ids = [server.add_job() for _ in range(3)]
    await run_until(chronos.worker, server, lambda: len(server.results) == 3)

    assert len(server.claims) == 4  # one per job, then the pending long-poll
    assert all("max_jobs" not in claim.body for claim in server.claims)
    assert server.batch_attempts == []
    assert [r.path for r in server.reports] == [
        f"/v1/worker/executions/{execution_id}/result" for execution_id in ids
    ]


async def test_a_malformed_batch_claim_answer_is_retried(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(concurrency=2, retry_delay_ms=1500)
    chronos.worker.handle("test.job", _returns_done)
    not_a_list = httpx.Response(200, json={"success": True, "data": {"job_id": "j"}})
    server.claim_script.append(not_a_list)
    execution_id = server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.results) == 1)

    assert [c.at - server.claims[0].at for c in server.claims[:2]] == [0, 1.5]
    assert server.claims[1].body["max_jobs"] == 2
    assert logger.messages("error") == ["Claim failed; polling again later"]
    assert server.reported(execution_id)["status"] == "completed"


async def _returns_done(ctx: ChronosContext) -> str:
    return "done"

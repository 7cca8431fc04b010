"""Backoff while the server is unreachable, reports retried until the lease runs out, and log
lines that say what happened (virtual time; exact lines through the stdlib logger)."""

from __future__ import annotations

import itertools
import logging
import random
import signal
from collections.abc import Callable

import httpx
import pytest
import trio
import trio.testing

from chronos_worker import ChronosContext, ChronosNonRetryableError, Worker
from chronos_worker.backoff import Backoff
from chronos_worker.cli import run_until_signalled

from .conftest import RNG_SEED, MakeChronos
from .fakes import FakeServer, error_response

LIMIT = 600  # virtual seconds; a hang fails instead of blocking the suite
# The pauses of `Backoff(1 s, random.Random(RNG_SEED))`: 1 s, then drawn in [c/2, c] as the
# ceiling c doubles (2, 4, 8, 16) up to 30 s.
PAUSES = [1.0, 1.1191, 3.005, 6.0473, 14.88, 16.5396, 18.3493, 24.0155, 23.3484, 26.7506]
REPORT_PATH = "/v1/worker/executions/exec-1/result"
META_1 = "job_id=job-1 execution_id=exec-1 handler=test.job attempt=1"


def at(*offsets: float) -> object:
    """Times (or pauses) as the seeded jitter makes them, to a millisecond."""
    return pytest.approx(list(offsets), abs=1e-3)


def since_first(times: list[float]) -> list[float]:
    return [t - times[0] for t in times]


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """What the worker logged at INFO and above, but its start and stop lines."""
    return [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.name == "chronos_worker" and not r.getMessage().startswith("Worker st")
    ]


async def run_until(worker: Worker, server: FakeServer, predicate: Callable[[], bool]) -> None:
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.start)
            await server.wait_for(predicate)
            await worker.stop()


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chronos_worker")


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(1.0, random.Random(RNG_SEED))
    pauses = [backoff.next_delay() for _ in range(10)]
    assert pauses == at(*PAUSES)
    ceilings = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    assert all(c / 2 <= p <= c for p, c in zip(pauses[1:], ceilings[1:], strict=True))
    backoff.reset()
    assert backoff.next_delay() == 1.0
    assert Backoff(45.0, random.Random(1)).next_delay() == 45.0  # a longer retry delay is kept


async def test_claims_back_off_while_the_server_is_down_and_log_once_each_way(
    server: FakeServer,
    make_chronos: MakeChronos,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(logger=None)
    chronos.worker.handle("test.job", _returns_done)
    server.down_until = trio.current_time() + 100
    server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    times = since_first([c.at for c in server.claims])
    # Nine refused connections, 1 s apart at first, then further and further apart.
    gaps = [b - a for a, b in itertools.pairwise(times[:10])]
    assert gaps == at(*PAUSES[:9])
    assert times[9] == pytest.approx(108.3, abs=0.01)
    assert lines(caplog) == [
        (
            "WARNING",
            "Server unreachable for claims (POST /v1/worker/jobs/claim failed:"
            " ConnectError('connection refused')); retrying with backoff",
        ),
        ("INFO", "Server reachable again for claims, after 9 failed requests over 108.3 s"),
        ("INFO", f"Job job-1 completed on attempt 1 {META_1}"),
    ]


async def test_claims_back_off_on_503_honouring_retry_after(
    server: FakeServer,
    make_chronos: MakeChronos,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.abc.Clock,
) -> None:
    # A server in its graceful stop: the parked claim gets "no job", new ones a 503.
    chronos = make_chronos(logger=None)
    chronos.worker.handle("test.job", _returns_done)
    unavailable = error_response(503, "service_unavailable", {"Retry-After": "5"})
    no_job = httpx.Response(200, json={"success": True, "message": "No job", "data": None})
    server.claim_script.extend([no_job] + [unavailable] * 4)
    server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    # Retry-After 5 is a floor under the backoff (1, 1.1, 3.0, then 6.05 s).
    assert since_first([c.at for c in server.claims])[:6] == at(0, 0, 5, 10, 15, 21.0473)
    assert lines(caplog) == [
        (
            "WARNING",
            "Server unreachable for claims (POST /v1/worker/jobs/claim answered HTTP 503:"
            " service_unavailable: HTTP 503); retrying with backoff",
        ),
        ("INFO", "Server reachable again for claims, after 4 failed requests over 21.0 s"),
        ("INFO", f"Job job-1 completed on attempt 1 {META_1}"),
    ]


@pytest.mark.parametrize(
    ("timeout", "tries"),
    [
        (30, [0, 1, 2.1191, 5.1241, 11.1714, 26.0514, 30]),
        (120, [0, 1, 2.1191, 5.1241, 11.1714, 26.0514, 42.591, 60.9403, 84.9558, 108.3042, 120]),
    ],
    ids=["30s-lease", "120s-lease"],
)
async def test_a_report_is_retried_until_the_lease_runs_out_then_given_up(
    server: FakeServer,
    make_chronos: MakeChronos,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.abc.Clock,
    timeout: int,
    tries: list[float],
) -> None:
    chronos = make_chronos(logger=None)
    chronos.worker.handle("test.job", _returns_done)
    server.report_script.extend([error_response(503, "service_unavailable")] * 100)
    server.add_job(timeout=timeout)
    # The slot is free once the handler has returned, so the second claim goes out at once;
    # `stop()` then waits for the report, retried until the lease runs out.
    await run_until(chronos.worker, server, lambda: len(server.claims) == 2)

    claimed = server.claims[0].at
    assert [r.at - claimed for r in server.report_attempts] == at(*tries)
    assert server.reports == []
    error = f"POST {REPORT_PATH} answered HTTP 503: service_unavailable: HTTP 503"
    assert lines(caplog) == [
        ("WARNING", f"Server unreachable for reports ({error}); retrying with backoff"),
        (
            "ERROR",
            f"Giving up on the report of attempt 1 of job job-1 after {len(tries)} tries:"
            f" its {timeout} s lease has run out; the server will time the attempt out and"
            f" retry the job if retries remain outcome=completed error={error} {META_1}",
        ),
    ]


async def test_first_sigterm_waits_out_a_server_restart_and_reports_the_running_job(
    server: FakeServer,
    make_chronos: MakeChronos,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(logger=None)
    started, release = trio.Event(), trio.Event()

    @chronos.worker.handle("test.job")
    async def slow(ctx: ChronosContext) -> str:
        started.set()
        await release.wait()
        return "finished"

    execution_id = server.add_job()
    send, receive = trio.open_memory_channel[int](2)
    exits: list[int] = []
    codes: list[int] = []

    async def run() -> None:
        codes.append(await run_until_signalled(chronos.worker, receive, exits.append))

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await started.wait()
            server.down_until = trio.current_time() + 20  # the server restarts for 20 s
            await send.send(signal.SIGTERM)
            await trio.testing.wait_all_tasks_blocked()
            release.set()

    assert codes == [0]
    assert exits == []
    assert server.reported(execution_id) == {"status": "completed", "result": "finished"}
    attempts = since_first([r.at for r in server.report_attempts])
    assert attempts == at(0, 1, 2.1191, 5.1241, 11.1714, 26.0514)
    error = f"POST {REPORT_PATH} failed: ConnectError('connection refused')"
    assert lines(caplog) == [
        ("WARNING", f"Server unreachable for reports ({error}); retrying with backoff"),
        ("INFO", "Server reachable again for reports, after 5 failed requests over 26.1 s"),
        ("INFO", f"Job job-1 completed on attempt 1 {META_1}"),
    ]


@pytest.mark.parametrize(
    ("status", "code", "level", "why"),
    [
        (404, "execution_not_found", "ERROR", "the server has no such execution"),
        (
            409,
            "lease_expired",
            "WARNING",
            "its lease had expired and the server has timed the attempt out"
            " (the job is retried if retries remain)",
        ),
        (409, "execution_already_finished", "WARNING", "the execution was already finished"),
        (422, "validation_error", "ERROR", "the server does not accept it"),
    ],
)
async def test_a_4xx_to_a_report_stops_it_at_once_with_a_clear_line(
    server: FakeServer,
    make_chronos: MakeChronos,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.abc.Clock,
    status: int,
    code: str,
    level: str,
    why: str,
) -> None:
    chronos = make_chronos(logger=None)
    chronos.worker.handle("test.job", _returns_done)
    server.report_script.append(error_response(status, code))
    server.add_job()
    second = server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    assert [r.path for r in server.report_attempts] == [
        REPORT_PATH,
        "/v1/worker/executions/exec-2/result",
    ]
    assert server.reported(second)["status"] == "completed"
    error = f"POST {REPORT_PATH} answered HTTP {status}: {code}: HTTP {status}"
    assert lines(caplog) == [
        (
            level,
            f"Report of attempt 1 of job job-1 refused: {why}; not retried"
            f" outcome=completed error={error} {META_1}",
        ),
        (
            "INFO",
            "Job job-2 completed on attempt 1"
            " job_id=job-2 execution_id=exec-2 handler=test.job attempt=1",
        ),
    ]


@pytest.mark.parametrize("concurrency", [1, 2], ids=["single", "batch"])
@pytest.mark.parametrize(
    ("attempt", "failure", "level", "message", "lookups"),
    [
        (
            1,
            TimeoutError("db timeout"),
            "WARNING",
            "Attempt 1 of job job-1 failed, will be retried at 2026-01-15T09:00:02.000Z"
            " error=TimeoutError: db timeout",
            1,
        ),
        (
            4,  # max_retries 3: the last attempt
            TimeoutError("db timeout"),
            "ERROR",
            "Job job-1 failed for good after 4 attempts error=TimeoutError: db timeout",
            1,
        ),
        (
            1,
            ChronosNonRetryableError("payload has no tenant"),
            "ERROR",
            "Job job-1 failed for good after 1 attempt (non-retryable error)"
            " error=ChronosNonRetryableError: payload has no tenant",
            0,
        ),
    ],
    ids=["retried", "last-attempt", "non-retryable"],
)
async def test_a_failed_attempt_is_logged_as_what_the_server_made_of_it(
    server: FakeServer,
    make_chronos: MakeChronos,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.abc.Clock,
    concurrency: int,
    attempt: int,
    failure: Exception,
    level: str,
    message: str,
    lookups: int,
) -> None:
    chronos = make_chronos(logger=None, concurrency=concurrency)

    @chronos.worker.handle("test.job")
    async def fail(ctx: ChronosContext) -> None:
        raise failure

    server.add_job(attempt=attempt, max_retries=3)
    await run_until(chronos.worker, server, lambda: len(server.results) == 1)
    await trio.testing.wait_all_tasks_blocked()

    meta = f"job_id=job-1 execution_id=exec-1 handler=test.job attempt={attempt}"
    assert lines(caplog) == [(level, f"{message} {meta}")]
    assert [r.path for r in server.lookups] == ["/v1/jobs/job-1"] * lookups


async def test_a_failed_attempt_whose_job_cannot_be_read_says_so(
    server: FakeServer,
    make_chronos: MakeChronos,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(logger=None)

    @chronos.worker.handle("test.job")
    async def fail(ctx: ChronosContext) -> None:
        raise ValueError("bad input")

    server.job_script.append(error_response(500, "internal_error"))
    server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.lookups) == 1)

    assert lines(caplog) == [
        (
            "WARNING",
            "Attempt 1 of job job-1 failed; whether it will be retried is unknown (the job"
            " could not be read) error=ValueError: bad input lookup_error=GET /v1/jobs/job-1"
            f" answered HTTP 500: internal_error: HTTP 500 {META_1}",
        )
    ]


async def test_a_failing_batch_retries_each_report_until_its_own_lease_runs_out(
    server: FakeServer,
    make_chronos: MakeChronos,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.abc.Clock,
) -> None:
    chronos = make_chronos(logger=None, concurrency=2)
    release = trio.Event()

    @chronos.worker.handle("test.job")
    async def together(ctx: ChronosContext) -> None:
        await release.wait()

    server.batch_script.extend([error_response(503, "service_unavailable")] * 100)
    server.add_job(timeout=10)
    server.add_job(timeout=40)
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.queue) == 0)
            await trio.testing.wait_all_tasks_blocked()
            release.set()
            await server.wait_for(lambda: len(server.claims) == 2)  # both slots free again
            await chronos.worker.stop()

    claimed = server.claims[0].at
    attempts = [(b.at - claimed, len(b.body["results"])) for b in server.batch_attempts]
    assert [t for t, _ in attempts] == at(0, 1, 2.1191, 5.1241, 10, 24.88, 40)
    assert [n for _, n in attempts] == [2, 2, 2, 2, 2, 1, 1]
    assert server.results == {}
    assert server.report_attempts == []
    tail = (
        "lease has run out; the server will time the attempt out and retry the job if retries"
        " remain outcome=completed error=POST /v1/worker/executions/results answered HTTP 503:"
        " service_unavailable: HTTP 503"
    )
    assert lines(caplog)[1:] == [
        (
            "ERROR",
            f"Giving up on the report of attempt 1 of job job-1 after 5 tries: its 10 s {tail}"
            f" {META_1}",
        ),
        (
            "ERROR",
            f"Giving up on the report of attempt 1 of job job-2 after 7 tries: its 40 s {tail}"
            " job_id=job-2 execution_id=exec-2 handler=test.job attempt=1",
        ),
    ]


async def _returns_done(ctx: ChronosContext) -> str:
    return "done"

"""The claim/run/report loop against the fake server, in virtual time (async handlers only)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
import trio
import trio.testing

from chronos_worker import (
    ChronosAuthError,
    ChronosContext,
    ChronosNonRetryableError,
    Worker,
)

from .conftest import API_KEY, MakeChronos
from .fakes import FakeServer, RecordingLogger, error_response

LIMIT = 600  # virtual seconds; a hang fails instead of blocking the suite


async def run_until(worker: Worker, server: FakeServer, predicate: Callable[[], bool]) -> None:
    """Start `worker`, wait until `predicate` holds on the server, then stop it."""
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.start)
            await server.wait_for(predicate)
            await worker.stop()


async def test_success_is_reported_with_result_and_full_context(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(poll_wait_time_seconds=5)
    seen: list[ChronosContext] = []

    async def sync_tenant(ctx: ChronosContext) -> dict[str, object]:
        seen.append(ctx)
        return {"synced": 12, "tenant": ctx.payload["tenantId"]}

    chronos.worker.handle("sync-tenant", sync_tenant)
    execution_id = server.add_job("sync-tenant", {"tenantId": "t_1"})
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    assert server.reported(execution_id) == {
        "status": "completed",
        "result": {"synced": 12, "tenant": "t_1"},
    }
    assert seen == [
        ChronosContext(
            job_id="job-1",
            execution_id="exec-1",
            attempt=1,
            payload={"tenantId": "t_1"},
            handler="sync-tenant",
            scheduled_for=datetime(2026, 1, 15, 9, 0, tzinfo=UTC),
            lease_expires_at=datetime(2026, 1, 15, 9, 0, 31, 120000, tzinfo=UTC),
            timeout=30,
        )
    ]
    claim = server.claims[0]
    assert claim.headers["authorization"] == f"Bearer {API_KEY}"
    assert claim.body == {
        "handlers": ["sync-tenant"],
        "wait_time_seconds": 5,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    assert server.reports[0].path == "/v1/worker/executions/exec-1/result"


async def test_exception_is_reported_as_retryable_failure(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()

    async def flaky(ctx: ChronosContext) -> None:
        raise TimeoutError("db timeout")

    chronos.worker.handle("test.job", flaky)
    execution_id = server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    report = server.reported(execution_id)
    stack = report["error"].pop("stack")
    assert report == {
        "status": "failed",
        "error": {"message": "db timeout", "name": "TimeoutError"},
        "retryable": True,
    }
    assert stack.startswith("Traceback (most recent call last):")
    assert 'raise TimeoutError("db timeout")' in stack
    assert stack.rstrip().endswith("TimeoutError: db timeout")


async def test_non_retryable_error_is_reported_with_retryable_false(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()

    class BadPayload(ChronosNonRetryableError):
        pass

    @chronos.worker.handle("test.job")
    async def reject(ctx: ChronosContext) -> None:
        raise BadPayload("payload has no tenant")

    execution_id = server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    report = server.reported(execution_id)
    assert report["retryable"] is False
    assert report["error"]["name"] == "BadPayload"
    assert report["error"]["message"] == "payload has no tenant"


async def test_job_for_an_unregistered_handler_is_failed_retryably(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()
    chronos.worker.handle("test.job", _noop)
    execution_id = server.add_job("someone.else")
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    report = server.reported(execution_id)
    assert report["error"]["message"] == 'No handler registered for "someone.else"'
    assert report["retryable"] is True


@pytest.mark.parametrize(
    ("result", "why"),
    [({1, 2}, "not JSON-serialisable"), ("x" * (64 * 1024), "over the 65536-byte limit")],
)
async def test_unstorable_result_is_reported_as_null_with_a_warning(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
    result: object,
    why: str,
) -> None:
    chronos = make_chronos()

    async def produce(ctx: ChronosContext) -> object:
        return result

    chronos.worker.handle("test.job", produce)
    execution_id = server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    assert server.reported(execution_id) == {"status": "completed", "result": None}
    [warning] = logger.messages("warning")
    assert why in warning


async def test_429_waits_retry_after_seconds(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(retry_delay_ms=1000)
    chronos.worker.handle("test.job", _noop)
    server.claim_script.append(error_response(429, "rate_limit_exceeded", {"Retry-After": "7"}))
    server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    assert [c.at - server.claims[0].at for c in server.claims[:2]] == [0, 7]


async def test_429_without_retry_after_waits_retry_delay(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(retry_delay_ms=2500)
    chronos.worker.handle("test.job", _noop)
    server.claim_script.append(error_response(429, "rate_limit_exceeded"))
    server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    assert [c.at - server.claims[0].at for c in server.claims[:2]] == [0, 2.5]


@pytest.mark.parametrize(
    ("failure", "level", "message"),
    [
        (
            httpx.ConnectError("connection refused"),
            "warning",
            "Server unreachable for claims (POST /v1/worker/jobs/claim failed:"
            " ConnectError('connection refused')); retrying with backoff",
        ),
        (
            error_response(503, "service_unavailable"),
            "warning",
            "Server unreachable for claims (POST /v1/worker/jobs/claim answered HTTP 503:"
            " service_unavailable: HTTP 503); retrying with backoff",
        ),
        (
            httpx.Response(200, json={"success": True, "data": {"job_id": 7}}),
            "error",
            "Claim failed; polling again later",
        ),
    ],
    ids=["network", "503", "malformed"],
)
async def test_a_first_claim_failure_is_logged_and_retried_after_retry_delay(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
    failure: httpx.Response | Exception,
    level: str,
    message: str,
) -> None:
    chronos = make_chronos(retry_delay_ms=1500)
    chronos.worker.handle("test.job", _noop)
    server.claim_script.append(failure)
    server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    assert [c.at - server.claims[0].at for c in server.claims[:2]] == [0, 1.5]
    assert [(lvl, msg) for lvl, msg, _ in logger.records if lvl in ("warning", "error")] == [
        (level, message)
    ]


async def test_no_job_polls_again_at_once(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()
    chronos.worker.handle("test.job", _noop)
    server.claim_script.extend([httpx.Response(204), _empty_claim()])
    server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    # 204, empty answer, the job, then the poll right after the report: no pause anywhere.
    assert [c.at for c in server.claims] == [server.claims[0].at] * 4


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_error_stops_the_worker_and_start_raises(
    server: FakeServer,
    make_chronos: MakeChronos,
    logger: RecordingLogger,
    autojump_clock: trio.abc.Clock,
    status: int,
) -> None:
    chronos = make_chronos()
    chronos.worker.handle("test.job", _noop)
    server.claim_script.append(error_response(status, "unauthorized"))
    server.add_job()

    with trio.fail_after(LIMIT), pytest.raises(ChronosAuthError) as caught:
        await chronos.worker.start()

    assert caught.value.status == status
    assert len(server.claims) == 1
    assert server.reports == []
    assert logger.messages("error") == ["API key refused; worker stopping"]
    assert not chronos.worker.running


async def test_report_is_delivered_once_the_server_recovers(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos()
    chronos.worker.handle("test.job", _returns_done)
    server.report_script.extend([httpx.ReadError("reset"), error_response(502, "bad_gateway")])
    execution_id = server.add_job()
    await run_until(chronos.worker, server, lambda: len(server.reports) == 1)

    assert len(server.report_attempts) == 3
    assert server.reported(execution_id) == {"status": "completed", "result": "done"}


async def test_concurrency_three_runs_three_handlers_at_once(
    server: FakeServer, make_chronos: MakeChronos, autojump_clock: trio.abc.Clock
) -> None:
    chronos = make_chronos(concurrency=3)
    release = trio.Event()
    active = peak = 0

    async def slow(ctx: ChronosContext) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await release.wait()
        active -= 1

    chronos.worker.handle("test.job", slow)
    for _ in range(4):
        server.add_job()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await server.wait_for(lambda: len(server.claims) == 1)
            await trio.testing.wait_all_tasks_blocked()
            assert active == 3
            # One batch claim for the three free slots; no slot free: no claim for the fourth.
            assert [c.body["max_jobs"] for c in server.claims] == [3]
            assert len(server.queue) == 1
            release.set()
            await server.wait_for(lambda: len(server.results) == 4)
            await chronos.worker.stop()
    assert peak == 3


async def _noop(ctx: ChronosContext) -> None:
    return None


async def _returns_done(ctx: ChronosContext) -> str:
    return "done"


def _empty_claim() -> httpx.Response:
    return httpx.Response(200, json={"success": True, "message": "No job", "data": None})

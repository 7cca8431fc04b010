"""`ChronosAPI` over `httpx.MockTransport`: the envelope, the error mapping, status lists."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest

from chronos_tui.api import (
    AuthRefused,
    ChronosAPI,
    RequestFailed,
    ServerUnreachable,
    rerun_body,
)
from chronos_worker.models import ExecutionStatus, JobStatus
from tests.tui.fakes import NOW, demo_api, make_execution, make_job

T = TypeVar("T")
Handler = Callable[[httpx.Request], httpx.Response]
FAILED = ExecutionStatus.FAILED


def call(handler: Handler, fn: Callable[[ChronosAPI], Awaitable[T]]) -> T:
    async def main() -> T:
        api = ChronosAPI(
            "http://chronos.test/", "chrns_key", transport=httpx.MockTransport(handler)
        )
        try:
            return await fn(api)
        finally:
            await api.aclose()

    return asyncio.run(main())


def ok(data: Any, total: int | None = None) -> httpx.Response:
    body: dict[str, Any] = {"success": True, "message": "OK", "data": data}
    if total is not None:
        body["meta"] = {"paging": {"page": 1, "pages": 1, "size": 20, "total": total}}
    return httpx.Response(200, json=body)


def error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    body = {"success": False, "message": message, "code": code, "errors": []}
    return httpx.Response(status, json=body, headers=headers)


def test_list_sends_filters_and_the_key_and_parses_the_page() -> None:
    seen: list[httpx.Request] = []
    job = make_job("a", "alpha", JobStatus.READY, 5)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok([job.model_dump(mode="json")], total=7)

    page = call(handler, lambda api: api.list_jobs(statuses=["ready"], handler="alpha", size=500))
    assert page.total == 7 and page.items == (job,)
    request = seen[0]
    assert request.headers["Authorization"] == "Bearer chrns_key"
    assert request.url.path == "/v1/jobs"
    assert dict(request.url.params) == {"status": "ready", "handler": "alpha", "size": "100"}


def test_401_is_auth_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return error(401, "unauthorized", "Invalid API key")

    with pytest.raises(AuthRefused, match="Invalid API key"):
        call(handler, lambda api: api.check())


def test_no_answer_is_server_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with pytest.raises(ServerUnreachable, match=r"cannot reach http://chronos\.test"):
        call(handler, lambda api: api.stats())


def test_conflict_carries_the_code_and_rate_limit_the_delay() -> None:
    def conflict(request: httpx.Request) -> httpx.Response:
        return error(409, "job_not_cancellable", "Job cannot be cancelled")

    with pytest.raises(RequestFailed) as caught:
        call(conflict, lambda api: api.cancel_job("j1"))
    assert (caught.value.status, caught.value.code) == (409, "job_not_cancellable")
    assert "Job cannot be cancelled" in str(caught.value)

    def limited(request: httpx.Request) -> httpx.Response:
        return error(429, "rate_limit_exceeded", "Too many requests", **{"Retry-After": "3"})

    with pytest.raises(RequestFailed) as caught:
        call(limited, lambda api: api.stats())
    assert caught.value.retry_after == 3.0


def test_an_answer_that_is_not_the_envelope_is_a_request_failure() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad gateway</html>")

    with pytest.raises(RequestFailed) as caught:
        call(handler, lambda api: api.get_job("j1"))
    assert caught.value.status == 502 and caught.value.code is None


def test_several_statuses_use_one_request_when_the_server_accepts_lists() -> None:
    seen: list[str | None] = []
    fake = demo_api()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params.get("status"))
        return ok([e.model_dump(mode="json") for e in fake.executions[:2]], total=2)

    async def twice(api: ChronosAPI) -> bool | None:
        await api.list_executions(statuses=["failed", "timeout"])
        await api.list_executions(statuses=["failed", "timeout"])
        return api.status_lists

    assert call(handler, twice) is True
    assert seen == ["failed,timeout", "failed,timeout"]


def test_several_statuses_fall_back_to_merged_requests_and_remember() -> None:
    seen: list[str | None] = []
    job = make_job("a", "alpha", JobStatus.FAILED, 100)
    by_status = {
        "failed": [make_execution(job, FAILED, 10), make_execution(job, FAILED, 40)],
        "timeout": [make_execution(job, ExecutionStatus.TIMEOUT, 20)],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        status = request.url.params.get("status")
        seen.append(status)
        if status not in by_status:
            body = {
                "success": False,
                "message": "Validation failed",
                "code": "validation_error",
                "errors": [{"field": "status", "message": "must be one of …"}],
            }
            return httpx.Response(422, json=body)
        items = by_status[status]
        return ok([e.model_dump(mode="json") for e in items], total=len(items))

    async def twice(api: ChronosAPI) -> list[str]:
        page = await api.list_executions(statuses=["failed", "timeout"], size=2)
        assert page.total == 3
        await api.list_executions(statuses=["failed", "timeout"])
        return [e.status.value for e in page.items]

    assert call(handler, twice) == ["failed", "timeout"]  # newest two of the merged three
    assert seen == ["failed,timeout", "failed", "timeout", "failed", "timeout"]


def test_rerun_body_copies_the_settings_and_nothing_else() -> None:
    job = make_job("report", "send-report", JobStatus.FAILED, 60, idempotency_key="k1")
    push = job.model_copy(
        update={
            "handler": None,
            "payload": None,
            "delivery": {"type": "push", "http": {"url": "https://x", "method": "POST"}},
        }
    )
    assert rerun_body(job) == {
        "name": "report",
        "handler": "send-report",
        "delivery": {"type": "pull"},
        "payload": job.payload,
        "timeout": 30,
        "max_retries": 3,
    }
    assert rerun_body(push) == {
        "name": "report",
        "delivery": push.delivery,
        "timeout": 30,
        "max_retries": 3,
    }
    json.dumps(rerun_body(job))  # plain JSON


def test_account_reads_the_rotation_state() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        state = {"rotating": True, "previous_sent_until": "2026-01-15T11:00:00.000Z"}
        return ok({"id": "a-1", "name": "default", "timezone": "UTC", "signing_secret": state})

    account = call(handler, lambda api: api.account())
    assert seen == ["/v1/account"]
    assert account.name == "default" and account.signing_secret.rotating
    assert account.signing_secret.previous_sent_until == datetime(2026, 1, 15, 11, tzinfo=UTC)


def test_workers_are_parsed_and_a_404_is_remembered() -> None:
    seen: list[str] = []
    doc = {
        "channels": [
            {
                "worker": None,
                "handlers": ["h"],
                "credits": 0,
                "connected_at": "2026-01-15T09:00:00Z",
            }
        ],
        "handlers": [{"handler": "h", "channels": 1, "credits": 0}],
    }

    def new_server(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return ok(doc)

    workers = call(new_server, lambda api: api.workers())
    assert workers is not None and workers.for_handler("h") is not None
    assert workers.channels[0].worker is None and workers.credits == 0

    def old_server(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return error(404, "not_found", "Not found")

    async def three_times(api: ChronosAPI) -> list[object]:
        return [await api.workers() for _ in range(3)]

    seen.clear()
    assert call(old_server, three_times) == [None, None, None]
    assert seen == ["/v1/workers"]  # asked once, then remembered


def test_workers_other_failures_are_reported_not_remembered() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return error(500, "internal_error", "Internal error")

    with pytest.raises(RequestFailed):
        call(broken, lambda api: api.workers())


def test_pages_past_the_first_send_page() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        return ok([], total=0)

    async def pages(api: ChronosAPI) -> None:
        await api.list_jobs(size=100, page=3)
        await api.list_schedules(size=100, page=2)
        await api.list_executions(statuses=["failed"], size=100, page=1)

    call(handler, pages)
    assert seen == [
        {"size": "100", "page": "3"},
        {"size": "100", "page": "2"},
        {"status": "failed", "size": "100"},
    ]


def test_merged_statuses_page_through_the_merge() -> None:
    job = make_job("a", "alpha", JobStatus.FAILED, 100)
    by_status = {  # ages interleave: failed 1,3,5,… timeout 2,4,6,…
        "failed": [make_execution(job, FAILED, 2 * i + 1) for i in range(5)],
        "timeout": [make_execution(job, ExecutionStatus.TIMEOUT, 2 * i + 2) for i in range(5)],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        status = request.url.params.get("status", "")
        if "," in status:
            return error(422, "validation_error", "Validation failed")
        size, page = int(request.url.params["size"]), int(request.url.params.get("page", "1"))
        items = by_status[status][(page - 1) * size : page * size]
        return ok([e.model_dump(mode="json") for e in items], total=5)

    async def second_page(api: ChronosAPI) -> list[int]:
        page = await api.list_executions(statuses=["failed", "timeout"], size=3, page=2)
        assert page.total == 10
        return [round((NOW - e.started_at).total_seconds()) for e in page.items]

    assert call(handler, second_page) == [4, 5, 6]

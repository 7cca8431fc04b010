"""The client over `httpx.MockTransport`: which calls are retried, after how long, how pages are
followed (cursor when the server gives one, page numbers otherwise), how errors are mapped."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio

from chronos_worker import AsyncClient, Client
from chronos_worker.client import (
    APIConnectionError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)
from chronos_worker.client.errors import FieldError

Handler = Callable[[httpx.Request], httpx.Response]
JOB = {
    "id": "0b8a3a7e-6d0c-4b8e-9d7e-1f2a3b4c5d6e",
    "schedule_id": None,
    "name": "n",
    "handler": "h",
    "delivery": {"type": "pull"},
    "payload": None,
    "timeout": 30,
    "max_retries": 0,
    "status": "failed",
    "scheduled_for": "2027-01-15T08:00:00.000Z",
    "run_at": "2027-01-15T08:00:00.000Z",
    "attempt_count": 1,
    "created_at": "2027-01-15T08:00:00.000Z",
}


def ok(data: Any, paging: dict[str, Any] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"success": True, "message": "OK", "data": data}
    if paging is not None:
        body["meta"] = {"paging": paging}
    return httpx.Response(200, json=body)


def refused(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"success": False, "message": "no", "code": code, "errors": []}
    return httpx.Response(status, json=body, headers=headers)


def client(handler: Handler, sleeps: list[float], retries: int = 3) -> Client:
    return Client(
        "http://chronos.test",
        "chrns_k",
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
        max_retries=retries,
    )


def scripted(*answers: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def test_429_is_retried_after_retry_after_even_for_a_plain_post() -> None:
    handler, seen = scripted(refused(429, "rate_limit_exceeded", {"Retry-After": "2"}), ok(JOB))
    sleeps: list[float] = []
    with client(handler, sleeps) as chronos:
        job = chronos.create_job(name="n", handler="h")
    assert job.id == JOB["id"]
    assert sleeps == [2.0] and len(seen) == 2


def test_429_past_the_retries_is_rate_limited_with_the_delay() -> None:
    too_many = refused(429, "rate_limit_exceeded", {"Retry-After": "7"})
    handler, seen = scripted(too_many, too_many, too_many)
    sleeps: list[float] = []
    with client(handler, sleeps, retries=2) as chronos, pytest.raises(RateLimitedError) as err:
        chronos.get_job("x")
    assert (err.value.status, err.value.code, err.value.retry_after) == (
        429, "rate_limit_exceeded", 7.0
    )  # fmt: skip
    assert sleeps == [7.0, 7.0] and len(seen) == 3


def test_network_errors_are_retried_for_gets_but_not_for_a_post_without_a_key() -> None:
    down = httpx.ConnectError("connection refused")
    handler, seen = scripted(down, down, ok(JOB))
    sleeps: list[float] = []
    with client(handler, sleeps) as chronos:
        assert chronos.get_job("x").id == JOB["id"]
    assert sleeps == [0.5, 1.0]

    handler, seen = scripted(down)
    sleeps.clear()
    with client(handler, sleeps) as chronos, pytest.raises(APIConnectionError):
        chronos.create_job(name="n", handler="h")
    assert len(seen) == 1 and sleeps == []


def test_a_post_with_an_idempotency_key_is_retried_after_a_network_error() -> None:
    handler, seen = scripted(httpx.ReadTimeout("slow"), ok(JOB))
    sleeps: list[float] = []
    with client(handler, sleeps) as chronos:
        chronos.create_job(name="n", handler="h", idempotency_key="order-1")
    assert len(seen) == 2 and sleeps == [0.5]
    assert json.loads(seen[1].content)["idempotency_key"] == "order-1"


def test_a_503_is_retried_for_idempotent_calls_only() -> None:
    handler, seen = scripted(refused(503, "service_unavailable", {"Retry-After": "1"}), ok(JOB))
    sleeps: list[float] = []
    with client(handler, sleeps) as chronos:
        chronos.get_job("x")
    assert sleeps == [1.0]
    handler, seen = scripted(refused(503, "service_unavailable"))
    with client(handler, []) as chronos, pytest.raises(ServerError):
        chronos.cancel_job("x")
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "unauthorized", AuthenticationError),
        (403, "forbidden", AuthenticationError),
        (404, "job_not_found", NotFoundError),
        (409, "job_not_cancellable", ConflictError),
        (422, "validation_error", InvalidRequestError),
        (400, "invalid_json", InvalidRequestError),
        (500, "internal_error", ServerError),
    ],
)
def test_errors_are_mapped_with_code_status_and_fields(
    status: int, code: str, cls: type[Exception]
) -> None:
    body = {
        "success": False,
        "message": "Refused",
        "code": code,
        "errors": [{"field": "name", "message": "is required"}],
    }
    handler, _ = scripted(httpx.Response(status, json=body))
    with client(handler, [], retries=0) as chronos, pytest.raises(cls) as err:
        chronos.cancel_job("x")
    assert err.value.status == status and err.value.code == code  # type: ignore[attr-defined]
    assert err.value.errors == (FieldError("name", "is required"),)  # type: ignore[attr-defined]


def test_an_answer_that_is_not_the_envelope_names_the_call() -> None:
    handler, _ = scripted(httpx.Response(502, text="<html>bad gateway</html>"))
    with client(handler, [], retries=0) as chronos, pytest.raises(ServerError) as err:
        chronos.get_job("abc")
    assert str(err.value) == "GET /v1/jobs/abc: Bad Gateway (HTTP 502)"


def page(items: list[Any], number: int, pages: int, cursor: str | None = None) -> httpx.Response:
    paging: dict[str, Any] = {"page": number, "pages": pages, "size": 2, "total": 5}
    if cursor is not None or number == 0:
        paging["next_cursor"] = cursor
    return ok(items, paging)


def test_iteration_follows_page_numbers_when_the_server_has_no_cursor() -> None:
    jobs = [JOB | {"id": f"{i:08d}-0000-4000-8000-000000000000"} for i in range(5)]
    handler, seen = scripted(page(jobs[:2], 1, 3), page(jobs[2:4], 2, 3), page(jobs[4:], 3, 3))
    with client(handler, []) as chronos:
        ids = [j.id for j in chronos.iter_jobs(status="failed", size=2)]
    assert ids == [j["id"] for j in jobs]
    assert [r.url.params.get("page") for r in seen] == [None, "2", "3"]
    assert all(r.url.params["status"] == "failed" for r in seen)


def test_iteration_follows_next_cursor_when_the_server_gives_one() -> None:
    jobs = [JOB | {"id": f"{i:08d}-0000-4000-8000-000000000000"} for i in range(3)]
    handler, seen = scripted(
        page(jobs[:2], 1, 2, cursor="opaque-1"), page(jobs[2:], 1, 1, cursor=None)
    )
    with client(handler, []) as chronos:
        assert len(list(chronos.iter_jobs(handler="h", size=2))) == 3
    assert seen[1].url.params["cursor"] == "opaque-1" and "page" not in seen[1].url.params
    assert seen[1].url.params["handler"] == "h"


def async_client(handler: Handler, sleeps: list[float]) -> AsyncClient:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return AsyncClient(
        "http://chronos.test", "chrns_k", transport=httpx.MockTransport(handler), sleep=sleep
    )


async def _async_429(sleeps: list[float]) -> list[str]:
    handler, _ = scripted(
        refused(429, "rate_limit_exceeded", {"Retry-After": "3"}),
        page([JOB], 1, 2),
        page([JOB | {"id": "x"}], 2, 2),
    )
    async with async_client(handler, sleeps) as chronos:
        return [job.id async for job in chronos.iter_jobs()]


def test_the_async_client_retries_and_pages_under_asyncio() -> None:
    sleeps: list[float] = []
    assert asyncio.run(_async_429(sleeps)) == [JOB["id"], "x"]
    assert sleeps == [3.0]


async def test_the_async_client_retries_and_pages_under_trio() -> None:
    sleeps: list[float] = []
    assert await _async_429(sleeps) == [JOB["id"], "x"]
    assert sleeps == [3.0]


async def test_the_default_sleep_works_under_trio() -> None:
    handler, _ = scripted(refused(429, "rate_limit_exceeded", {"Retry-After": "0.01"}), ok(JOB))
    with trio.fail_after(5):
        async with AsyncClient(
            "http://chronos.test", "k", transport=httpx.MockTransport(handler)
        ) as chronos:
            assert (await chronos.get_job("x")).id == JOB["id"]


def test_the_default_sleep_works_under_asyncio() -> None:
    handler, _ = scripted(refused(429, "rate_limit_exceeded", {"Retry-After": "0.01"}), ok(JOB))

    async def main() -> str:
        async with AsyncClient(
            "http://chronos.test", "k", transport=httpx.MockTransport(handler)
        ) as chronos:
            return (await chronos.get_job("x")).id

    assert asyncio.run(main()) == JOB["id"]

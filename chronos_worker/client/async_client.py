"""`AsyncClient`: the whole API over `httpx.AsyncClient`, under Trio or asyncio alike.

httpx finds the running event loop itself (through sniffio); the pause between retries is
`anyio.sleep`, which does the same, so nothing here names an event loop. `sync_client.py` is
generated from this file by `scripts/gen_sync_client`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from chronos_worker.client import calls
from chronos_worker.client.calls import Filter, Instant, body_of
from chronos_worker.client.core import (
    DEFAULT_MAX_RETRIES,
    Call,
    Connection,
    connection_error,
    envelope,
    next_page_params,
    retry_delay,
)
from chronos_worker.client.errors import ChronosAPIError
from chronos_worker.models import (
    Account,
    BatchItem,
    Execution,
    HandlerLimits,
    HealthStatus,
    Job,
    Page,
    ReplayResult,
    Schedule,
    Stats,
    Workers,
)

R = TypeVar("R")
T = TypeVar("T")


class AsyncClient:
    """The Chronos API, async. `base_url`/`api_key` default to `CHRONOS_BASE_URL` and
    `CHRONOS_API_KEY`; `max_retries` bounds the retries of 429 (every call, after
    `Retry-After`) and of network errors and 502/503/504 (idempotent calls only).

        async with AsyncClient() as chronos:
            job = await chronos.create_job(name="hello", handler="send-email", payload={...})
            async for failed in chronos.iter_jobs(status="failed", since=an_hour_ago):
                print(failed.id, failed.last_error)
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.connection = Connection.resolve(base_url, api_key, timeout, max_retries)
        self._http = httpx.AsyncClient(
            base_url=self.connection.base_url,
            headers=self.connection.headers() | dict(headers or {}),
            timeout=self.connection.timeout,
            transport=transport,
        )
        self._sleep = sleep or anyio.sleep

    @property
    def base_url(self) -> str:
        return self.connection.base_url

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[R]) -> R:
        """Send one call, with the retries its kind allows; its parsed result."""
        attempt = 0
        while True:
            try:
                return call.parse(await self._once(call))
            except ChronosAPIError as error:
                wait = retry_delay(call, error, attempt, self.connection.max_retries)
                if wait is None:
                    raise
            await self._sleep(wait)
            attempt += 1

    async def _once(self, call: Call[Any]) -> dict[str, Any]:
        try:
            response = await self._http.request(call.method, call.path, **call.request_kwargs())
        except httpx.HTTPError as exc:
            raise connection_error(self.base_url, exc) from exc
        return envelope(call.method, call.path, response, enveloped=call.enveloped)

    async def _pages(
        self, call: Call[Page[T]], make: Callable[[dict[str, str]], Call[Page[T]]]
    ) -> AsyncIterator[T]:
        params: dict[str, str] | None = dict(call.params)
        while params is not None:
            page = await self.send(make(params))
            for item in page.items:
                yield item
            params = next_page_params(params, page)

    # -- service -------------------------------------------------------------------------

    async def health(self) -> HealthStatus:
        return await self.send(calls.health())

    async def ready(self) -> HealthStatus:
        return await self.send(calls.ready())

    async def openapi(self) -> dict[str, Any]:
        return await self.send(calls.openapi())

    # -- schedules -----------------------------------------------------------------------

    async def create_schedule(
        self, body: Mapping[str, Any] | None = None, **fields: Any
    ) -> Schedule:
        return await self.send(calls.create_schedule(body_of(body, fields)))

    async def list_schedules(
        self,
        *,
        status: Filter = None,
        handler: str | None = None,
        page: int | None = None,
        size: int | None = None,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        return await self.send(calls.list_schedules(status, handler, page, size, cursor))

    def iter_schedules(
        self, *, status: Filter = None, handler: str | None = None, size: int | None = None
    ) -> AsyncIterator[Schedule]:
        first = calls.list_schedules(status, handler, size=size)
        return self._pages(first, lambda p: _with_params(first, p))

    async def get_schedule(self, schedule_id: str) -> Schedule:
        return await self.send(calls.get_schedule(schedule_id))

    async def update_schedule(
        self, schedule_id: str, body: Mapping[str, Any] | None = None, **fields: Any
    ) -> Schedule:
        return await self.send(calls.update_schedule(schedule_id, body_of(body, fields)))

    async def archive_schedule(self, schedule_id: str) -> Schedule:
        return await self.send(calls.schedule_action(schedule_id, "archive"))

    async def pause_schedule(self, schedule_id: str) -> Schedule:
        return await self.send(calls.schedule_action(schedule_id, "pause"))

    async def resume_schedule(self, schedule_id: str) -> Schedule:
        return await self.send(calls.schedule_action(schedule_id, "resume"))

    async def run_schedule(self, schedule_id: str) -> Job:
        return await self.send(calls.run_schedule(schedule_id))

    # -- jobs ----------------------------------------------------------------------------

    async def create_job(self, body: Mapping[str, Any] | None = None, **fields: Any) -> Job:
        return await self.send(calls.create_job(body_of(body, fields)))

    async def create_jobs(self, bodies: Sequence[Mapping[str, Any]]) -> list[BatchItem]:
        return await self.send(calls.create_jobs(bodies))

    async def list_jobs(
        self,
        *,
        status: Filter = None,
        handler: str | None = None,
        schedule_id: str | None = None,
        since: Instant = None,
        page: int | None = None,
        size: int | None = None,
        cursor: str | None = None,
    ) -> Page[Job]:
        call = calls.list_jobs(status, handler, schedule_id, since, page, size, cursor)
        return await self.send(call)

    def iter_jobs(
        self,
        *,
        status: Filter = None,
        handler: str | None = None,
        schedule_id: str | None = None,
        since: Instant = None,
        size: int | None = None,
    ) -> AsyncIterator[Job]:
        first = calls.list_jobs(status, handler, schedule_id, since, size=size)
        return self._pages(first, lambda p: _with_params(first, p))

    async def get_job(self, job_id: str) -> Job:
        return await self.send(calls.get_job(job_id))

    async def cancel_job(self, job_id: str) -> Job:
        return await self.send(calls.cancel_job(job_id))

    async def replay_job(self, job_id: str) -> Job:
        return await self.send(calls.replay_job(job_id))

    async def replay_jobs(
        self,
        *,
        status: Filter,
        handler: str | None = None,
        schedule_id: str | None = None,
        since: Instant = None,
        until: Instant = None,
        limit: int | None = None,
    ) -> ReplayResult:
        call = calls.replay_jobs(status, handler, schedule_id, since, until, limit)
        return await self.send(call)

    # -- executions ----------------------------------------------------------------------

    async def list_executions(
        self,
        *,
        status: Filter = None,
        job_id: str | None = None,
        since: Instant = None,
        page: int | None = None,
        size: int | None = None,
        cursor: str | None = None,
    ) -> Page[Execution]:
        return await self.send(calls.list_executions(status, job_id, since, page, size, cursor))

    def iter_executions(
        self,
        *,
        status: Filter = None,
        job_id: str | None = None,
        since: Instant = None,
        size: int | None = None,
    ) -> AsyncIterator[Execution]:
        first = calls.list_executions(status, job_id, since, size=size)
        return self._pages(first, lambda p: _with_params(first, p))

    async def get_execution(self, execution_id: str) -> Execution:
        return await self.send(calls.get_execution(execution_id))

    # -- worker API ----------------------------------------------------------------------

    async def claim_job(
        self, handlers: Sequence[str], *, wait_time_seconds: int = 0, worker: str | None = None
    ) -> dict[str, Any] | None:
        return await self.send(calls.claim_job(handlers, wait_time_seconds, worker))

    async def report_result(self, execution_id: str, body: Mapping[str, Any]) -> Any:
        return await self.send(calls.report_result(execution_id, dict(body)))

    # -- extensions ----------------------------------------------------------------------

    async def stats(self, window_minutes: int | None = None) -> Stats:
        return await self.send(calls.stats(window_minutes))

    async def account(self) -> Account:
        return await self.send(calls.account())

    async def workers(self) -> Workers:
        return await self.send(calls.workers())

    async def list_handler_limits(self) -> list[HandlerLimits]:
        return await self.send(calls.list_handler_limits())

    async def get_handler_limits(self, handler: str) -> HandlerLimits:
        return await self.send(calls.get_handler_limits(handler))

    async def set_handler_limits(
        self, handler: str, *, max_running: int | None, max_per_second: float | None
    ) -> HandlerLimits:
        return await self.send(calls.set_handler_limits(handler, max_running, max_per_second))

    async def delete_handler_limits(self, handler: str) -> None:
        await self.send(calls.delete_handler_limits(handler))


def _with_params(call: Call[R], params: dict[str, str]) -> Call[R]:
    return Call(call.method, call.path, call.parse, params)

"""`Client`: the whole API over `httpx.Client`, blocking.

Generated from `async_client.py` by `scripts/gen_sync_client` (do not edit; run the script
after changing `async_client.py`; a test checks they agree).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

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


class Client:
    """The Chronos API, blocking. `base_url`/`api_key` default to `CHRONOS_BASE_URL` and
    `CHRONOS_API_KEY`; `max_retries` bounds the retries of 429 (every call, after
    `Retry-After`) and of network errors and 502/503/504 (idempotent calls only).

        with Client() as chronos:
            job = chronos.create_job(name="hello", handler="send-email", payload={...})
            for failed in chronos.iter_jobs(status="failed", since=an_hour_ago):
                print(failed.id, failed.last_error)
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.connection = Connection.resolve(base_url, api_key, timeout, max_retries)
        self._http = httpx.Client(
            base_url=self.connection.base_url,
            headers=self.connection.headers() | dict(headers or {}),
            timeout=self.connection.timeout,
            transport=transport,
        )
        self._sleep = sleep or time.sleep

    @property
    def base_url(self) -> str:
        return self.connection.base_url

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call[R]) -> R:
        """Send one call, with the retries its kind allows; its parsed result."""
        attempt = 0
        while True:
            try:
                return call.parse(self._once(call))
            except ChronosAPIError as error:
                wait = retry_delay(call, error, attempt, self.connection.max_retries)
                if wait is None:
                    raise
            self._sleep(wait)
            attempt += 1

    def _once(self, call: Call[Any]) -> dict[str, Any]:
        try:
            response = self._http.request(call.method, call.path, **call.request_kwargs())
        except httpx.HTTPError as exc:
            raise connection_error(self.base_url, exc) from exc
        return envelope(call.method, call.path, response, enveloped=call.enveloped)

    def _pages(
        self, call: Call[Page[T]], make: Callable[[dict[str, str]], Call[Page[T]]]
    ) -> Iterator[T]:
        params: dict[str, str] | None = dict(call.params)
        while params is not None:
            page = self.send(make(params))
            yield from page.items
            params = next_page_params(params, page)

    # -- service -------------------------------------------------------------------------

    def health(self) -> HealthStatus:
        return self.send(calls.health())

    def ready(self) -> HealthStatus:
        return self.send(calls.ready())

    def openapi(self) -> dict[str, Any]:
        return self.send(calls.openapi())

    # -- schedules -----------------------------------------------------------------------

    def create_schedule(self, body: Mapping[str, Any] | None = None, **fields: Any) -> Schedule:
        return self.send(calls.create_schedule(body_of(body, fields)))

    def list_schedules(
        self,
        *,
        status: Filter = None,
        handler: str | None = None,
        page: int | None = None,
        size: int | None = None,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        return self.send(calls.list_schedules(status, handler, page, size, cursor))

    def iter_schedules(
        self, *, status: Filter = None, handler: str | None = None, size: int | None = None
    ) -> Iterator[Schedule]:
        first = calls.list_schedules(status, handler, size=size)
        return self._pages(first, lambda p: _with_params(first, p))

    def get_schedule(self, schedule_id: str) -> Schedule:
        return self.send(calls.get_schedule(schedule_id))

    def update_schedule(
        self, schedule_id: str, body: Mapping[str, Any] | None = None, **fields: Any
    ) -> Schedule:
        return self.send(calls.update_schedule(schedule_id, body_of(body, fields)))

    def archive_schedule(self, schedule_id: str) -> Schedule:
        return self.send(calls.schedule_action(schedule_id, "archive"))

    def pause_schedule(self, schedule_id: str) -> Schedule:
        return self.send(calls.schedule_action(schedule_id, "pause"))

    def resume_schedule(self, schedule_id: str) -> Schedule:
        return self.send(calls.schedule_action(schedule_id, "resume"))

    def run_schedule(self, schedule_id: str) -> Job:
        return self.send(calls.run_schedule(schedule_id))

    # -- jobs ----------------------------------------------------------------------------

    def create_job(self, body: Mapping[str, Any] | None = None, **fields: Any) -> Job:
        return self.send(calls.create_job(body_of(body, fields)))

    def create_jobs(self, bodies: Sequence[Mapping[str, Any]]) -> list[BatchItem]:
        return self.send(calls.create_jobs(bodies))

    def list_jobs(
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
        return self.send(call)

    def iter_jobs(
        self,
        *,
        status: Filter = None,
        handler: str | None = None,
        schedule_id: str | None = None,
        since: Instant = None,
        size: int | None = None,
    ) -> Iterator[Job]:
        first = calls.list_jobs(status, handler, schedule_id, since, size=size)
        return self._pages(first, lambda p: _with_params(first, p))

    def get_job(self, job_id: str) -> Job:
        return self.send(calls.get_job(job_id))

    def cancel_job(self, job_id: str) -> Job:
        return self.send(calls.cancel_job(job_id))

    def replay_job(self, job_id: str) -> Job:
        return self.send(calls.replay_job(job_id))

    def replay_jobs(
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
        return self.send(call)

    # -- executions ----------------------------------------------------------------------

    def list_executions(
        self,
        *,
        status: Filter = None,
        job_id: str | None = None,
        since: Instant = None,
        page: int | None = None,
        size: int | None = None,
        cursor: str | None = None,
    ) -> Page[Execution]:
        return self.send(calls.list_executions(status, job_id, since, page, size, cursor))

    def iter_executions(
        self,
        *,
        status: Filter = None,
        job_id: str | None = None,
        since: Instant = None,
        size: int | None = None,
    ) -> Iterator[Execution]:
        first = calls.list_executions(status, job_id, since, size=size)
        return self._pages(first, lambda p: _with_params(first, p))

    def get_execution(self, execution_id: str) -> Execution:
        return self.send(calls.get_execution(execution_id))

    # -- worker API ----------------------------------------------------------------------

    def claim_job(
        self, handlers: Sequence[str], *, wait_time_seconds: int = 0, worker: str | None = None
    ) -> dict[str, Any] | None:
        return self.send(calls.claim_job(handlers, wait_time_seconds, worker))

    def report_result(self, execution_id: str, body: Mapping[str, Any]) -> Any:
        return self.send(calls.report_result(execution_id, dict(body)))

    # -- extensions ----------------------------------------------------------------------

    def stats(self, window_minutes: int | None = None) -> Stats:
        return self.send(calls.stats(window_minutes))

    def account(self) -> Account:
        return self.send(calls.account())

    def workers(self) -> Workers:
        return self.send(calls.workers())

    def list_handler_limits(self) -> list[HandlerLimits]:
        return self.send(calls.list_handler_limits())

    def get_handler_limits(self, handler: str) -> HandlerLimits:
        return self.send(calls.get_handler_limits(handler))

    def set_handler_limits(
        self, handler: str, *, max_running: int | None, max_per_second: float | None
    ) -> HandlerLimits:
        return self.send(calls.set_handler_limits(handler, max_running, max_per_second))

    def delete_handler_limits(self, handler: str) -> None:
        self.send(calls.delete_handler_limits(handler))


def _with_params(call: Call[R], params: dict[str, str]) -> Call[R]:
    return Call(call.method, call.path, call.parse, params)

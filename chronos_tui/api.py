"""The dashboard's view of the Chronos REST API (spec §3–§5), over `chronos_worker.AsyncClient`.

The HTTP, the envelope and the typed results (`chronos_worker.models`) are the Python client's;
this module adds what the screens need on top (status lists with a fallback, remembering that a
server has no `GET /v1/workers`) and turns the client's errors into the dashboard's:

    APIError                  any failure talking to the server; str() is one readable sentence
    ├── ServerUnreachable     no answer: connection refused, unknown host, timeout
    ├── AuthRefused           401 / 403: the API key is missing, wrong or revoked
    └── RequestFailed         any other non-2xx answer (or one that is not the envelope);
                              carries `status`, the spec's `code` and, for 429, `retry_after`

Screens depend on the `DashboardAPI` protocol, so tests inject a fake. Status filters take a
sequence: one status is one request; several are sent as `status=a,b` if the server accepts
lists, otherwise as one request per status merged newest first (`ChronosAPI` learns which on the
first try and remembers). Lists page with `page` (from 1) and `size` (at most 100), or, past the
first page, with the `cursor` the page before gave (`Page.next_cursor`, the keyset extension:
as cheap a million rows down as on top); a server without cursors gives none, and the screens
go on by page number.

`GET /v1/workers` is an extension: against a server without it (HTTP 404) `workers()` returns
None, and `ChronosAPI` remembers that and does not ask again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import httpx

from chronos_worker.client import (
    APIConnectionError,
    APIStatusError,
    AsyncClient,
    AuthenticationError,
    ChronosAPIError,
)
from chronos_worker.client.core import USER_AGENT as CLIENT_USER_AGENT
from chronos_worker.models import Account, Execution, Job, Page, Schedule, Stats, Workers

USER_AGENT = f"chronos-tui/0.1 {CLIENT_USER_AGENT}"
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_PAGE_SIZE = 100
M = TypeVar("M", Job, Execution)
R = TypeVar("R")


class APIError(Exception):
    """Talking to the Chronos server failed; the message is meant for the operator."""


class ServerUnreachable(APIError):
    """The server did not answer (connection refused, DNS failure, timeout)."""


class AuthRefused(APIError):
    """The server refused the API key (HTTP 401 or 403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RequestFailed(APIError):
    """The server answered with an error (or with something that is not the envelope)."""

    def __init__(
        self, message: str, status: int, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class DashboardAPI(Protocol):
    """What the screens need from the server; `ChronosAPI` over HTTP, a fake in tests."""

    @property
    def base_url(self) -> str: ...

    async def stats(self, window_minutes: int = 60) -> Stats: ...

    async def account(self) -> Account: ...
    async def workers(self) -> Workers | None: ...

    async def list_schedules(
        self,
        *,
        status: str | None = None,
        handler: str | None = None,
        size: int = 50,
        page: int = 1,
        cursor: str | None = None,
    ) -> Page[Schedule]: ...

    async def get_schedule(self, schedule_id: str) -> Schedule: ...

    async def archive_schedule(self, schedule_id: str) -> Schedule: ...

    async def pause_schedule(self, schedule_id: str) -> Schedule: ...

    async def resume_schedule(self, schedule_id: str) -> Schedule: ...

    async def run_schedule(self, schedule_id: str) -> Job: ...

    async def list_jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        handler: str | None = None,
        schedule_id: str | None = None,
        size: int = 50,
        page: int = 1,
        cursor: str | None = None,
    ) -> Page[Job]: ...

    async def get_job(self, job_id: str) -> Job: ...

    async def cancel_job(self, job_id: str) -> Job: ...

    async def create_job(self, body: Mapping[str, Any]) -> Job: ...

    async def list_executions(
        self,
        *,
        job_id: str | None = None,
        statuses: Sequence[str] = (),
        size: int = 50,
        page: int = 1,
        cursor: str | None = None,
    ) -> Page[Execution]: ...

    async def get_execution(self, execution_id: str) -> Execution: ...

    async def aclose(self) -> None: ...


def rerun_body(job: Job) -> dict[str, Any]:
    """The `POST /v1/jobs` body that runs a finished job again as a new one-off job, now."""
    body: dict[str, Any] = {
        "name": job.name,
        "delivery": job.delivery,
        "timeout": job.timeout,
        "max_retries": job.max_retries,
    }
    for key, value in (
        ("description", job.description),
        ("handler", job.handler),
        ("payload", job.payload),
    ):
        if value is not None:
            body[key] = value
    return body


class ChronosAPI:
    """`DashboardAPI` over `chronos_worker.AsyncClient` (no retries: the screens refresh on
    their own and show a 429's delay)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._client = AsyncClient(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=0,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )
        # None until the first multi-status request tells us whether `status=a,b` is accepted.
        self.status_lists: bool | None = None
        # None until the first `GET /v1/workers` tells us whether the server has it.
        self.workers_endpoint: bool | None = None

    @property
    def base_url(self) -> str:
        return self._client.base_url

    async def aclose(self) -> None:
        await self._client.aclose()

    async def check(self) -> None:
        """Prove the server answers and accepts the key (a cheap authenticated read)."""
        await _mapped(self._client.stats(1))

    async def stats(self, window_minutes: int = 60) -> Stats:
        return await _mapped(self._client.stats(window_minutes))

    async def account(self) -> Account:
        return await _mapped(self._client.account())

    async def workers(self) -> Workers | None:
        if self.workers_endpoint is False:
            return None
        try:
            found = await _mapped(self._client.workers())
        except RequestFailed as exc:
            if exc.status != 404:
                raise
            self.workers_endpoint = False  # an older server: never ask again
            return None
        self.workers_endpoint = True
        return found

    async def list_schedules(
        self,
        *,
        status: str | None = None,
        handler: str | None = None,
        size: int = 50,
        page: int = 1,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        call = self._client.list_schedules(
            status=status,
            handler=handler,
            size=min(size, MAX_PAGE_SIZE),
            page=None if cursor else _page(page),
            cursor=cursor,
        )
        return await _mapped(call)

    async def get_schedule(self, schedule_id: str) -> Schedule:
        return await _mapped(self._client.get_schedule(schedule_id))

    async def archive_schedule(self, schedule_id: str) -> Schedule:
        return await _mapped(self._client.archive_schedule(schedule_id))

    async def pause_schedule(self, schedule_id: str) -> Schedule:
        return await _mapped(self._client.pause_schedule(schedule_id))

    async def resume_schedule(self, schedule_id: str) -> Schedule:
        return await _mapped(self._client.resume_schedule(schedule_id))

    async def run_schedule(self, schedule_id: str) -> Job:
        return await _mapped(self._client.run_schedule(schedule_id))

    async def list_jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        handler: str | None = None,
        schedule_id: str | None = None,
        size: int = 50,
        page: int = 1,
        cursor: str | None = None,
    ) -> Page[Job]:
        size = min(size, MAX_PAGE_SIZE)

        def fetch(status: str | None, number: int | None, at: str | None = None) -> Any:
            return self._client.list_jobs(
                status=status,
                handler=handler,
                schedule_id=schedule_id,
                size=size,
                page=number,
                cursor=at,
            )

        return await self._filtered(fetch, size, page, statuses, _job_order, cursor)

    async def get_job(self, job_id: str) -> Job:
        return await _mapped(self._client.get_job(job_id))

    async def cancel_job(self, job_id: str) -> Job:
        return await _mapped(self._client.cancel_job(job_id))

    async def create_job(self, body: Mapping[str, Any]) -> Job:
        return await _mapped(self._client.create_job(body))

    async def list_executions(
        self,
        *,
        job_id: str | None = None,
        statuses: Sequence[str] = (),
        size: int = 50,
        page: int = 1,
        cursor: str | None = None,
    ) -> Page[Execution]:
        size = min(size, MAX_PAGE_SIZE)

        def fetch(status: str | None, number: int | None, at: str | None = None) -> Any:
            return self._client.list_executions(
                status=status, job_id=job_id, size=size, page=number, cursor=at
            )

        return await self._filtered(fetch, size, page, statuses, _exec_order, cursor)

    async def get_execution(self, execution_id: str) -> Execution:
        return await _mapped(self._client.get_execution(execution_id))

    async def _filtered(
        self,
        fetch: Callable[..., Any],
        size: int,
        page: int,
        statuses: Sequence[str],
        order: Callable[[M], tuple[datetime, str]],
        cursor: str | None = None,
    ) -> Page[M]:
        """Page `page` (from 1), or the page at `cursor`, newest first, restricted to `statuses`
        (any status when empty). Merged lists (a server without status lists) have no cursor."""
        number = None if cursor else _page(page)
        if len(statuses) <= 1:
            found: Page[M] = await _mapped(fetch(next(iter(statuses), None), number, cursor))
            return found
        if self.status_lists is not False:
            try:
                found = await _mapped(fetch(",".join(statuses), number, cursor))
            except RequestFailed as exc:
                if exc.status != 422:
                    raise
                self.status_lists = False
            else:
                self.status_lists = True
                return found
        return await self._merged(fetch, size, page, statuses, order)

    async def _merged(
        self,
        fetch: Callable[..., Any],
        size: int,
        page: int,
        statuses: Sequence[str],
        order: Callable[[M], tuple[datetime, str]],
    ) -> Page[M]:
        """Page `page` of several statuses merged newest first, one status per request (for a
        server without status lists): the newest `page * size` of the merge are among the newest
        `page * size` of each status, so pages 1..`page` of each are enough."""
        items: list[M] = []
        total = 0
        for status in statuses:
            for n in range(1, page + 1):
                found: Page[M] = await _mapped(fetch(status, _page(n)))
                items.extend(found.items)
                if len(found.items) < size:
                    break
            total += found.total
        merged = sorted(items, key=order, reverse=True)
        return Page(tuple(merged[(page - 1) * size : page * size]), total)


async def _mapped(call: Awaitable[R]) -> R:
    """The client's call, its errors turned into the dashboard's."""
    try:
        return await call
    except AuthenticationError as exc:
        raise AuthRefused(exc.message, exc.status or 401) from exc
    except APIConnectionError as exc:
        raise ServerUnreachable(exc.message) from exc
    except APIStatusError as exc:
        raise RequestFailed(exc.message, exc.status or 0, exc.code, exc.retry_after) from exc
    except ChronosAPIError as exc:  # pragma: no cover - every client error is one of the above
        raise APIError(exc.message) from exc


def _page(page: int) -> int | None:
    """`page` only past the first, so a first page is asked for as before paging existed."""
    return page if page > 1 else None


def _job_order(job: Job) -> tuple[datetime, str]:
    return (job.created_at, job.id)


def _exec_order(execution: Execution) -> tuple[datetime, str]:
    return (execution.started_at, execution.id)

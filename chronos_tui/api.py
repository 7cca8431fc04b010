"""The dashboard's typed async client over the Chronos REST API (spec §3–§5).

This is the only module that touches httpx or raw JSON. Every answer is unwrapped from the
envelope and validated into `chronos_tui.models` at once; every failure is mapped here:

    APIError                  any failure talking to the server; str() is one readable sentence
    ├── ServerUnreachable     no answer: connection refused, unknown host, timeout
    ├── AuthRefused           401 / 403: the API key is missing, wrong or revoked
    └── RequestFailed         any other non-2xx answer (or one that is not the envelope);
                              carries `status`, the spec's `code` and, for 429, `retry_after`

Screens depend on the `DashboardAPI` protocol, so tests inject a fake. Status filters take a
sequence: one status is one request; several are sent as `status=a,b` if the server accepts
lists, otherwise as one request per status merged newest first (`ChronosAPI` learns which on the
first try and remembers). Lists page with `page` (from 1) and `size` (at most 100).

`GET /v1/workers` is an extension: against a server without it (HTTP 404) `workers()` returns
None, and `ChronosAPI` remembers that and does not ask again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from chronos_tui.models import Account, Execution, Job, Page, Schedule, Stats, Workers

USER_AGENT = "chronos-tui/0.1"
REQUEST_TIMEOUT_SECONDS = 10.0
MAX_PAGE_SIZE = 100
M = TypeVar("M", bound=BaseModel)


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
    ) -> Page[Schedule]: ...

    async def get_schedule(self, schedule_id: str) -> Schedule: ...

    async def archive_schedule(self, schedule_id: str) -> Schedule: ...

    async def run_schedule(self, schedule_id: str) -> Job: ...

    async def list_jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        handler: str | None = None,
        schedule_id: str | None = None,
        size: int = 50,
        page: int = 1,
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
    """`DashboardAPI` over HTTP with an API key; owns its `httpx.AsyncClient` unless given one."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._client = httpx.AsyncClient(
            base_url=self._base_url, headers=headers, timeout=timeout, transport=transport
        )
        # None until the first multi-status request tells us whether `status=a,b` is accepted.
        self.status_lists: bool | None = None
        # None until the first `GET /v1/workers` tells us whether the server has it.
        self.workers_endpoint: bool | None = None

    @property
    def base_url(self) -> str:
        return self._base_url

    async def aclose(self) -> None:
        await self._client.aclose()

    async def check(self) -> None:
        """Prove the server answers and accepts the key (a cheap authenticated read)."""
        await self._request("GET", "/v1/stats", params={"window_minutes": 1})

    async def stats(self, window_minutes: int = 60) -> Stats:
        data = await self._data("GET", "/v1/stats", params={"window_minutes": window_minutes})
        return _validate(Stats, data)

    async def account(self) -> Account:
        return _validate(Account, await self._data("GET", "/v1/account"))

    async def workers(self) -> Workers | None:
        if self.workers_endpoint is False:
            return None
        try:
            data = await self._data("GET", "/v1/workers")
        except RequestFailed as exc:
            if exc.status != 404:
                raise
            self.workers_endpoint = False  # an older server: never ask again
            return None
        self.workers_endpoint = True
        return _validate(Workers, data)

    async def list_schedules(
        self,
        *,
        status: str | None = None,
        handler: str | None = None,
        size: int = 50,
        page: int = 1,
    ) -> Page[Schedule]:
        params = _params(status=status, handler=handler, size=min(size, MAX_PAGE_SIZE))
        params |= _page_param(page)
        return await self._page("/v1/schedules", params, Schedule)

    async def get_schedule(self, schedule_id: str) -> Schedule:
        return _validate(Schedule, await self._data("GET", f"/v1/schedules/{schedule_id}"))

    async def archive_schedule(self, schedule_id: str) -> Schedule:
        data = await self._data("POST", f"/v1/schedules/{schedule_id}/archive")
        return _validate(Schedule, data)

    async def run_schedule(self, schedule_id: str) -> Job:
        return _validate(Job, await self._data("POST", f"/v1/schedules/{schedule_id}/run"))

    async def list_jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        handler: str | None = None,
        schedule_id: str | None = None,
        size: int = 50,
        page: int = 1,
    ) -> Page[Job]:
        params = _params(handler=handler, schedule_id=schedule_id, size=min(size, MAX_PAGE_SIZE))
        return await self._filtered("/v1/jobs", params, page, statuses, Job, _job_order)

    async def get_job(self, job_id: str) -> Job:
        return _validate(Job, await self._data("GET", f"/v1/jobs/{job_id}"))

    async def cancel_job(self, job_id: str) -> Job:
        return _validate(Job, await self._data("POST", f"/v1/jobs/{job_id}/cancel"))

    async def create_job(self, body: Mapping[str, Any]) -> Job:
        return _validate(Job, await self._data("POST", "/v1/jobs", json=dict(body)))

    async def list_executions(
        self,
        *,
        job_id: str | None = None,
        statuses: Sequence[str] = (),
        size: int = 50,
        page: int = 1,
    ) -> Page[Execution]:
        params = _params(job_id=job_id, size=min(size, MAX_PAGE_SIZE))
        return await self._filtered(
            "/v1/executions", params, page, statuses, Execution, _exec_order
        )

    async def get_execution(self, execution_id: str) -> Execution:
        return _validate(Execution, await self._data("GET", f"/v1/executions/{execution_id}"))

    async def _filtered(
        self,
        path: str,
        params: dict[str, str],
        page: int,
        statuses: Sequence[str],
        model: type[M],
        order: Callable[[M], tuple[datetime, str]],
    ) -> Page[M]:
        """Page `page` (from 1), newest first, restricted to `statuses` (any status when empty)."""
        paged = params | _page_param(page)
        if len(statuses) <= 1:
            return await self._page(path, _params(status=next(iter(statuses), None)) | paged, model)
        if self.status_lists is not False:
            try:
                found = await self._page(path, {"status": ",".join(statuses)} | paged, model)
            except RequestFailed as exc:
                if exc.status != 422:
                    raise
                self.status_lists = False
            else:
                self.status_lists = True
                return found
        return await self._merged(path, params, page, statuses, model, order)

    async def _merged(
        self,
        path: str,
        params: dict[str, str],
        page: int,
        statuses: Sequence[str],
        model: type[M],
        order: Callable[[M], tuple[datetime, str]],
    ) -> Page[M]:
        """Page `page` of several statuses merged newest first, one status per request (for a
        server without status lists): the newest `page * size` of the merge are among the newest
        `page * size` of each status, so pages 1..`page` of each are enough."""
        size = int(params["size"])
        items: list[M] = []
        total = 0
        for status in statuses:
            for n in range(1, page + 1):
                found = await self._page(path, {"status": status} | params | _page_param(n), model)
                items.extend(found.items)
                if len(found.items) < size:
                    break
            total += found.total
        merged = sorted(items, key=order, reverse=True)
        return Page(tuple(merged[(page - 1) * size : page * size]), total)

    async def _page(self, path: str, params: Mapping[str, str], model: type[M]) -> Page[M]:
        envelope = await self._request("GET", path, params=params)
        items = envelope.get("data")
        paging = (envelope.get("meta") or {}).get("paging") or {}
        if not isinstance(items, list) or not isinstance(paging.get("total"), int):
            raise RequestFailed(f"GET {path}: the answer is not a paginated list", 200)
        return Page(tuple(_validate(model, item) for item in items), paging["total"])

    async def _data(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._request(method, path, **kwargs)).get("data")

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(f"{self._base_url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"cannot reach {self._base_url}: {_reason(exc)}") from exc
        return _envelope(method, path, response)


def _envelope(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    envelope: dict[str, Any] = body if isinstance(body, dict) else {}
    status = response.status_code
    message = str(envelope.get("message") or response.reason_phrase or "error")
    if status in (401, 403):
        raise AuthRefused(f"the server refused the API key: {message} (HTTP {status})", status)
    if not 200 <= status < 300 or envelope.get("success") is not True:
        code = envelope.get("code")
        retry_after = _retry_after(response) if status == 429 else None
        detail = _field_errors(envelope)
        # The server's own message is enough for the operator; the path only helps when the
        # answer is not Chronos's envelope (a proxy's error page, a wrong base URL).
        where = "" if envelope.get("code") else f"{method} {path}: "
        raise RequestFailed(
            f"{where}{message}{detail} (HTTP {status})",
            status,
            code if isinstance(code, str) else None,
            retry_after,
        )
    return envelope


def _field_errors(envelope: Mapping[str, Any]) -> str:
    errors = envelope.get("errors")
    if not isinstance(errors, list) or not errors:
        return ""
    parts = [f"{e.get('field')} {e.get('message')}" for e in errors if isinstance(e, dict)]
    return ": " + "; ".join(parts)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestFailed(f"unexpected {model.__name__} from the server: {exc}", 200) from exc


def _params(**values: str | int | None) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None and v != ""}


def _page_param(page: int) -> dict[str, str]:
    """`page` only past the first, so a first page is asked for as before paging existed."""
    return {"page": str(page)} if page > 1 else {}


def _job_order(job: Job) -> tuple[datetime, str]:
    return (job.created_at, job.id)


def _exec_order(execution: Execution) -> tuple[datetime, str]:
    return (execution.started_at, execution.id)

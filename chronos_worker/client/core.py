"""What both clients share, without I/O: a `Call` (the request to make and how to read its
answer), the envelope check that maps failures to `errors.py`, and the retry policy.

`Client` and `AsyncClient` only send a `Call` with httpx, sleep between attempts (`time.sleep`
or `anyio.sleep`) and apply `Call.parse`; everything else is decided here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httpx
import pydantic

from chronos_worker.client.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    ChronosAPIError,
    FieldError,
    error_class,
)
from chronos_worker.models import Page

R = TypeVar("R")
M = TypeVar("M", bound=pydantic.BaseModel)

DEFAULT_BASE_URL = "http://127.0.0.1:8080"  # G-53
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_RETRIES = 3
MAX_RETRY_WAIT_SECONDS = 60.0
MAX_PAGE_SIZE = 100
USER_AGENT = "chronos-python/0.1"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Call(Generic[R]):
    """One API call: the request, whether it may be sent twice, and how to read the envelope."""

    method: str
    path: str
    parse: Callable[[dict[str, Any]], R]
    params: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    idempotency_key: bool = False  # a POST whose body carries an idempotency key
    enveloped: bool = True  # False: a 2xx answer is a bare JSON object (the OpenAPI document)

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS or self.idempotency_key

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": dict(self.params)}
        if self.json is not None:
            kwargs["json"] = self.json
        return kwargs


@dataclass(frozen=True)
class Connection:
    """Where and how to connect: argument, else environment (G-53), else the defaults."""

    base_url: str
    api_key: str | None
    timeout: float
    max_retries: int

    @classmethod
    def resolve(
        cls, base_url: str | None, api_key: str | None, timeout: float | None, max_retries: int
    ) -> Connection:
        url = base_url or os.environ.get("CHRONOS_BASE_URL") or DEFAULT_BASE_URL
        key = api_key or os.environ.get("CHRONOS_API_KEY") or None
        return cls(url.rstrip("/"), key, timeout or DEFAULT_TIMEOUT_SECONDS, max_retries)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


# -- answers -------------------------------------------------------------------------------


def envelope(
    method: str, path: str, response: httpx.Response, *, enveloped: bool = True
) -> dict[str, Any]:
    """The answer's envelope, or the exception its status and body call for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    found: dict[str, Any] = body if isinstance(body, dict) else {}
    status = response.status_code
    if 200 <= status < 300 and (status == 204 or found.get("success") is True):
        return found
    if 200 <= status < 300 and not enveloped and found:
        return found
    raise status_error(method, path, response, found)


def status_error(
    method: str, path: str, response: httpx.Response, found: Mapping[str, Any]
) -> ChronosAPIError:
    status = response.status_code
    message = str(found.get("message") or response.reason_phrase or "error")
    if 200 <= status < 300:
        message = "the answer is not the Chronos API's JSON envelope (is this a Chronos server?)"
    code = found.get("code") if isinstance(found.get("code"), str) else None
    errors = field_errors(found)
    retry_after = retry_after_seconds(response)
    if status in (401, 403):
        return AuthenticationError(
            f"the server refused the API key: {message} (HTTP {status})",
            status=status,
            code=code,
            errors=errors,
            retry_after=retry_after,
        )
    detail = ": " + "; ".join(f"{e.field} {e.message}" for e in errors) if errors else ""
    # The server's own message is enough; the path only helps when the answer is not Chronos's
    # envelope (a proxy's error page, a wrong base URL).
    where = "" if code else f"{method} {path}: "
    cls = error_class(status) if not 200 <= status < 300 else APIStatusError
    return cls(
        f"{where}{message}{detail} (HTTP {status})",
        status=status,
        code=code,
        errors=errors,
        retry_after=retry_after,
    )


def field_errors(found: Mapping[str, Any]) -> tuple[FieldError, ...]:
    errors = found.get("errors")
    if not isinstance(errors, list):
        return ()
    return tuple(
        FieldError(str(e.get("field")), str(e.get("message")))
        for e in errors
        if isinstance(e, dict)
    )


def retry_after_seconds(response: httpx.Response, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def connection_error(base_url: str, exc: httpx.HTTPError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APIConnectionError(f"{base_url} did not answer in time")
    reason = (str(exc) or type(exc).__name__).splitlines()[0]
    return APIConnectionError(f"cannot reach {base_url}: {reason}")


# -- retries ----------------------------------------------------------------------------------


def retry_delay(
    call: Call[Any], error: ChronosAPIError, attempt: int, max_retries: int
) -> float | None:
    """Seconds to wait before sending `call` again after `error` on attempt `attempt` (from 0),
    or None to give up. 429 is retried for every call (the server refused it unprocessed),
    after `Retry-After`; no answer, 502/503/504 only for idempotent calls, with backoff."""
    if attempt >= max_retries:
        return None
    backoff = min(8.0, 0.5 * 2**attempt)
    if error.status == 429:
        wait = error.retry_after if error.retry_after is not None else backoff
        return wait if wait <= MAX_RETRY_WAIT_SECONDS else None
    if not call.idempotent:
        return None
    if isinstance(error, APIConnectionError) or error.status in RETRYABLE_STATUSES:
        wait = error.retry_after if error.retry_after is not None else backoff
        return min(wait, MAX_RETRY_WAIT_SECONDS)
    return None


# -- reading `data` ---------------------------------------------------------------------------


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise APIStatusError(
            f"unexpected {model.__name__} from the server: {exc}", status=200
        ) from exc


def one(model: type[M]) -> Callable[[dict[str, Any]], M]:
    return lambda found: validate(model, found.get("data"))


def many(model: type[M]) -> Callable[[dict[str, Any]], list[M]]:
    def parse(found: dict[str, Any]) -> list[M]:
        data = found.get("data")
        if not isinstance(data, list):
            raise APIStatusError(f"expected a list of {model.__name__}", status=200)
        return [validate(model, item) for item in data]

    return parse


def page_of(model: type[M], path: str) -> Callable[[dict[str, Any]], Page[M]]:
    def parse(found: dict[str, Any]) -> Page[M]:
        items = found.get("data")
        paging = (found.get("meta") or {}).get("paging") or {}
        if not isinstance(items, list) or not isinstance(paging.get("total"), int):
            raise APIStatusError(f"GET {path}: the answer is not a paginated list", status=200)
        cursor = paging.get("next_cursor")
        return Page(
            tuple(validate(model, item) for item in items),
            paging["total"],
            page=int(paging.get("page") or 1),
            pages=int(paging.get("pages") or 1),
            next_cursor=cursor if isinstance(cursor, str) and cursor else None,
            total_estimated=bool(paging.get("total_estimated", False)),
        )

    return parse


def raw_data(found: dict[str, Any]) -> Any:
    return found.get("data")


def nothing(found: dict[str, Any]) -> None:
    return None


def next_page_params(params: Mapping[str, str], page: Page[Any]) -> dict[str, str] | None:
    """The parameters of the page after `page`: by `cursor` when the server gave one, else by
    page number; None after the last page."""
    if page.next_cursor is not None:
        rest = {k: v for k, v in params.items() if k != "page"}
        return rest | {"cursor": page.next_cursor}
    if "cursor" in params:  # walking by cursor: no next cursor is the end (its `page` says 1)
        return None
    if page.page < page.pages and page.items:
        return dict(params) | {"page": str(page.page + 1)}
    return None

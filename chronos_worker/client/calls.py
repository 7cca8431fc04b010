"""Every endpoint of the API (spec §5) and of this server's extensions, as a `Call` each.

Both clients expose these one to one (`Client.get_job(id)` sends `calls.get_job(id)`). Bodies
are JSON objects as the spec writes them (a `Mapping`, or keyword arguments); list filters take
one value or a sequence (sent as `a,b`), datetimes (sent as ISO 8601 UTC).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from chronos_worker.client.core import (
    MAX_PAGE_SIZE,
    Call,
    many,
    nothing,
    one,
    page_of,
    raw_data,
)
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

Filter = str | Sequence[str] | None
Instant = datetime | str | None


def query(**values: Any) -> dict[str, str]:
    """Query parameters: None dropped, sequences joined with `,`, datetimes as ISO UTC."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None or value == "" or value == ():
            continue
        if isinstance(value, datetime):
            out[name] = instant(value)
        elif isinstance(value, str | int | float):
            out[name] = str(value)
        else:
            out[name] = ",".join(str(v) for v in value)
    return out


def instant(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone; pass an aware datetime")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def body_of(body: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(body or {})
    merged.update(fields)
    return merged


def seg(value: str) -> str:
    """A path segment (an id or a handler name) with anything special escaped."""
    return quote(value, safe="")


def paging(page: int | None, size: int | None, cursor: str | None) -> dict[str, str]:
    if size is not None and not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"size must be between 1 and {MAX_PAGE_SIZE}, got {size}")
    return query(page=page, size=size, cursor=cursor)


# -- service ------------------------------------------------------------------------------


def health() -> Call[HealthStatus]:
    return Call("GET", "/healthz", one(HealthStatus))


def ready() -> Call[HealthStatus]:
    return Call("GET", "/readyz", one(HealthStatus))


def openapi() -> Call[dict[str, Any]]:
    return Call("GET", "/v1/openapi.json", lambda found: found, enveloped=False)


# -- schedules (spec §5.2-§5.6, pause/resume extension) ------------------------------------


def create_schedule(body: dict[str, Any]) -> Call[Schedule]:
    return Call("POST", "/v1/schedules", one(Schedule), json=body)


def list_schedules(
    status: Filter = None,
    handler: str | None = None,
    page: int | None = None,
    size: int | None = None,
    cursor: str | None = None,
) -> Call[Page[Schedule]]:
    params = query(status=status, handler=handler) | paging(page, size, cursor)
    return Call("GET", "/v1/schedules", page_of(Schedule, "/v1/schedules"), params)


def get_schedule(schedule_id: str) -> Call[Schedule]:
    return Call("GET", f"/v1/schedules/{seg(schedule_id)}", one(Schedule))


def update_schedule(schedule_id: str, body: dict[str, Any]) -> Call[Schedule]:
    return Call("PATCH", f"/v1/schedules/{seg(schedule_id)}", one(Schedule), json=body)


def schedule_action(schedule_id: str, action: str) -> Call[Schedule]:
    return Call("POST", f"/v1/schedules/{seg(schedule_id)}/{action}", one(Schedule))


def run_schedule(schedule_id: str) -> Call[Job]:
    return Call("POST", f"/v1/schedules/{seg(schedule_id)}/run", one(Job))


# -- jobs (spec §5.7-§5.8; batch and replay extensions) ------------------------------------


def create_job(body: dict[str, Any]) -> Call[Job]:
    keyed = bool(body.get("idempotency_key"))
    return Call("POST", "/v1/jobs", one(Job), json=body, idempotency_key=keyed)


def create_jobs(bodies: Sequence[Mapping[str, Any]]) -> Call[list[BatchItem]]:
    jobs = [dict(b) for b in bodies]
    keyed = bool(jobs) and all(j.get("idempotency_key") for j in jobs)
    return Call(
        "POST", "/v1/jobs/batch", many(BatchItem), json={"jobs": jobs}, idempotency_key=keyed
    )


def list_jobs(
    status: Filter = None,
    handler: str | None = None,
    schedule_id: str | None = None,
    since: Instant = None,
    page: int | None = None,
    size: int | None = None,
    cursor: str | None = None,
) -> Call[Page[Job]]:
    params = query(status=status, handler=handler, schedule_id=schedule_id, since=since)
    return Call("GET", "/v1/jobs", page_of(Job, "/v1/jobs"), params | paging(page, size, cursor))


def get_job(job_id: str) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{seg(job_id)}", one(Job))


def cancel_job(job_id: str) -> Call[Job]:
    return Call("POST", f"/v1/jobs/{seg(job_id)}/cancel", one(Job))


def replay_job(job_id: str) -> Call[Job]:
    return Call("POST", f"/v1/jobs/{seg(job_id)}/replay", one(Job), json={})


def replay_jobs(
    status: Filter,
    handler: str | None = None,
    schedule_id: str | None = None,
    since: Instant = None,
    until: Instant = None,
    limit: int | None = None,
) -> Call[ReplayResult]:
    body: dict[str, Any] = {"status": [status] if isinstance(status, str) else list(status or [])}
    for name, value in (("handler", handler), ("schedule_id", schedule_id), ("limit", limit)):
        if value is not None:
            body[name] = value
    for name, when in (("since", since), ("until", until)):
        if when is not None:
            body[name] = instant(when) if isinstance(when, datetime) else when
    return Call("POST", "/v1/jobs/replay", one(ReplayResult), json=body)


# -- executions (spec §5.9) ----------------------------------------------------------------


def list_executions(
    status: Filter = None,
    job_id: str | None = None,
    since: Instant = None,
    page: int | None = None,
    size: int | None = None,
    cursor: str | None = None,
) -> Call[Page[Execution]]:
    params = query(status=status, job_id=job_id, since=since) | paging(page, size, cursor)
    return Call("GET", "/v1/executions", page_of(Execution, "/v1/executions"), params)


def get_execution(execution_id: str) -> Call[Execution]:
    return Call("GET", f"/v1/executions/{seg(execution_id)}", one(Execution))


# -- worker API (spec §5.10-§5.11) ---------------------------------------------------------


def claim_job(
    handlers: Sequence[str], wait_time_seconds: int = 0, worker: str | None = None
) -> Call[dict[str, Any] | None]:
    body: dict[str, Any] = {"handlers": list(handlers), "wait_time_seconds": wait_time_seconds}
    if worker is not None:
        body["worker"] = worker
    return Call("POST", "/v1/worker/jobs/claim", raw_data, json=body)


def report_result(execution_id: str, body: dict[str, Any]) -> Call[Any]:
    path = f"/v1/worker/executions/{seg(execution_id)}/result"
    return Call("POST", path, raw_data, json=body)


# -- extensions: stats, account, workers, handler limits -----------------------------------


def stats(window_minutes: int | None = None) -> Call[Stats]:
    return Call("GET", "/v1/stats", one(Stats), query(window_minutes=window_minutes))


def account() -> Call[Account]:
    return Call("GET", "/v1/account", one(Account))


def workers() -> Call[Workers]:
    return Call("GET", "/v1/workers", one(Workers))


def list_handler_limits() -> Call[list[HandlerLimits]]:
    return Call("GET", "/v1/handlers/limits", many(HandlerLimits))


def get_handler_limits(handler: str) -> Call[HandlerLimits]:
    return Call("GET", f"/v1/handlers/{seg(handler)}/limits", one(HandlerLimits))


def set_handler_limits(
    handler: str, max_running: int | None, max_per_second: float | None
) -> Call[HandlerLimits]:
    body = {"max_running": max_running, "max_per_second": max_per_second}
    return Call("PUT", f"/v1/handlers/{seg(handler)}/limits", one(HandlerLimits), json=body)


def delete_handler_limits(handler: str) -> Call[None]:
    return Call("DELETE", f"/v1/handlers/{seg(handler)}/limits", nothing)

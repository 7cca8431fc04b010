"""`GET /v1/openapi.json`: the API description (OpenAPI 3.1, JSON Schema 2020-12).

Request bodies come from the validating models (`schemas.py`, with their cross-field rules);
responses from `openapi_schemas.py`. The document states what the server does: every query
parameter an endpoint accepts (`Endpoint.query`; any other is a 422), every status it can answer
with, the error envelope, and `x-chronos-rule` where a rule is beyond JSON Schema (time-relative,
or depending on stored state). The tests hold it to the server with schemathesis.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from chronos_server.api.openapi_schemas import (
    JOB_STATES,
    UUID,
    envelope,
    obj,
    ref,
    response_components,
)
from chronos_server.api.schemas import NOT_BLANK, openapi_components
from chronos_server.api.validation import TargetPolicy
from chronos_server.core.models import ExecutionStatus, ScheduleStatus

Schema = dict[str, Any]
DEFAULT_POLICY = TargetPolicy()

_ID = {"name": "id", "in": "path", "required": True, "schema": UUID}
# Every query value is trimmed and must not be blank (`context.Query`).
_TEXT: Schema = {"type": "string", "pattern": NOT_BLANK}
_PAGING = [
    {
        "name": "page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1},
    },
    {
        "name": "size",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
]
_SINCE = {
    "name": "since",
    "in": "query",
    "description": "Only items created at or after this instant.",
    "schema": {"type": "string", "format": "date-time"},
}


def _query(name: str, schema: Schema, description: str | None = None) -> Schema:
    param: Schema = {"name": name, "in": "query", "schema": schema}
    if description:
        param["description"] = description
    return param


def _statuses(values: list[str]) -> Schema:
    """`status=a&status=b` (or `status=a,b`): any of `values`."""
    return {
        "name": "status",
        "in": "query",
        "style": "form",
        "explode": True,
        "description": "One or more states; repeat the parameter or separate values by commas.",
        "schema": {"type": "array", "minItems": 1, "items": {"enum": values}},
    }


def _error(description: str, headers: dict[str, Schema] | None = None) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": ref("Error")}},
    }
    if headers:
        response["headers"] = headers
    return response


_RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1},
}
_ERRORS = {
    "400": _error("bad_request: the body is not JSON, or not a JSON object"),
    "401": _error("unauthorized: missing, malformed, unknown or revoked API key"),
    "404": _error("Resource-specific not-found code (or not_found)"),
    "409": _error("State conflict (see the code)"),
    "422": _error(
        "validation_error: a body field, query or path parameter failed validation "
        "(`errors` names each); an unknown, empty or repeated query parameter is one too"
    ),
    "429": _error(
        "rate_limit_exceeded: over the per-key limit, or too many failed authentications "
        "from this address",
        {"Retry-After": {**_RETRY_AFTER, "required": True}},
    ),
    "503": _error(
        "service_unavailable: the database is unreachable, or the server is stopping",
        {"Retry-After": _RETRY_AFTER},
    ),
}
_RATE_HEADERS = {
    name: {"description": text, "schema": {"type": "integer", "minimum": 0}}
    for name, text in (
        ("X-RateLimit-Limit", "Requests allowed per window (when rate limiting is on)."),
        ("X-RateLimit-Remaining", "Requests left in the current window."),
        ("X-RateLimit-Reset", "Seconds until the window frees a request."),
    )
}


def _op(
    op_id: str,
    summary: str,
    data: Schema | None,
    *,
    status: str = "200",
    body: str | None = None,
    params: list[Schema] | None = None,
    errors: tuple[str, ...] = (),
    paged: bool = False,
    links: dict[str, Schema] | None = None,
    public: bool = False,
) -> Schema:
    params = params or []
    success: Schema = {"description": summary}
    if data is not None:
        success["content"] = {"application/json": {"schema": envelope(data, paged)}}
    if not public:
        success["headers"] = _RATE_HEADERS
    if links:
        success["links"] = links
    codes = set(errors) | {"422"}  # every endpoint refuses an unknown query parameter
    if body:
        codes |= {"400"}
    if not public:
        codes |= {"401", "429", "503"}
    if any(p["in"] == "path" for p in params):
        codes |= {"404"}
    op: Schema = {
        "operationId": op_id,
        "summary": summary,
        "parameters": params,
        "responses": {status: success} | {c: _ERRORS[c] for c in sorted(codes)},
    }
    if public:
        op["security"] = []
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body)}},
        }
    return op


def _link(op_id: str, expression: str = "$response.body#/data/id") -> Schema:
    return {"operationId": op_id, "parameters": {"id": expression}}


def _limit_link(op_id: str) -> Schema:
    return {"operationId": op_id, "parameters": {"name": "$response.body#/data/handler"}}


# A handler name as a job's `handler` (trimmed; percent-encode what a path segment cannot hold).
_HANDLER = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NOT_BLANK},
}

_SCHEDULE_LINKS = {
    "GetSchedule": _link("getSchedule"),
    "UpdateSchedule": _link("updateSchedule"),
    "ArchiveSchedule": _link("archiveSchedule"),
    "RunSchedule": _link("runSchedule"),
    "PauseSchedule": _link("pauseSchedule"),
    "ResumeSchedule": _link("resumeSchedule"),
}
_JOB_LINKS = {"GetJob": _link("getJob"), "CancelJob": _link("cancelJob")}


def _paths() -> dict[str, Any]:
    schedule, job, execution = ref("Schedule"), ref("Job"), ref("Execution")
    limits = ref("HandlerLimits")
    many = {"type": "array"}
    return {
        "/healthz": {
            "get": _op("healthz", "Process alive", obj({"status": {"const": "ok"}}), public=True)
        },
        "/readyz": {
            "get": _op(
                "readyz",
                "Database reachable and not stopping (else 503)",
                obj({"status": {"const": "ready"}}),
                errors=("503",),
                public=True,
            )
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "parameters": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "422": _ERRORS["422"],
                },
            }
        },
        "/v1/schedules": {
            "post": _op(
                "createSchedule",
                "Create a schedule",
                schedule,
                status="201",
                body="ScheduleCreate",
                links=_SCHEDULE_LINKS,
            ),
            "get": _op(
                "listSchedules",
                "List schedules, newest first",
                many | {"items": schedule},
                paged=True,
                params=[
                    *_PAGING,
                    _query("status", {"enum": [s.value for s in ScheduleStatus]}),
                    _query("handler", _TEXT),
                ],
            ),
        },
        "/v1/schedules/{id}": {
            "get": _op("getSchedule", "Get a schedule", schedule, params=[_ID]),
            "patch": _op(
                "updateSchedule",
                "Update a schedule (absent = unchanged, null clears)",
                schedule,
                body="SchedulePatch",
                params=[_ID],
                errors=("409",),
            ),
        },
        "/v1/schedules/{id}/archive": {
            "post": _op(
                "archiveSchedule", "Archive a schedule", schedule, params=[_ID], errors=("409",)
            )
        },
        "/v1/schedules/{id}/run": {
            "post": _op(
                "runSchedule",
                "Spawn one job now",
                job,
                status="201",
                params=[_ID],
                errors=("409",),
                links=_JOB_LINKS,
            )
        },
        "/v1/schedules/{id}/pause": {
            "post": _op(
                "pauseSchedule",
                "Extension: pause a schedule (it spawns nothing; `status` stays `active`, "
                "`paused_at` is set, `next_run_at` is null); a paused one is left as it is",
                schedule,
                params=[_ID],
                errors=("409",),
                links=_SCHEDULE_LINKS,
            )
        },
        "/v1/schedules/{id}/resume": {
            "post": _op(
                "resumeSchedule",
                "Extension: resume a paused schedule, the slots missed meanwhile going by its "
                "`catch_up`; one not paused is left as it is",
                schedule,
                params=[_ID],
                errors=("409",),
                links=_SCHEDULE_LINKS,
            )
        },
        "/v1/jobs": {
            "post": _op(
                "createJob",
                "Create a one-off job",
                job,
                status="201",
                body="JobCreate",
                errors=("409",),
                links=_JOB_LINKS,
            ),
            "get": _op(
                "listJobs",
                "List jobs, newest first",
                many | {"items": job},
                paged=True,
                params=[
                    *_PAGING,
                    _statuses(JOB_STATES),
                    _SINCE,
                    _query("schedule_id", UUID),
                    _query("handler", _TEXT),
                ],
            ),
        },
        "/v1/jobs/batch": {
            "post": _op(
                "createJobs",
                "Extension: create up to 1,000 one-off jobs in one request and one "
                "transaction; each item succeeds or fails on its own, in order",
                many | {"items": ref("BatchJobResult"), "minItems": 1, "maxItems": 1000},
                body="JobsBatchIn",
            )
        },
        "/v1/jobs/{id}": {"get": _op("getJob", "Get a job", job, params=[_ID])},
        "/v1/jobs/{id}/cancel": {
            "post": _op("cancelJob", "Cancel a job", job, params=[_ID], errors=("409",))
        },
        "/v1/executions": {
            "get": _op(
                "listExecutions",
                "List executions, newest first",
                many | {"items": execution},
                paged=True,
                params=[
                    *_PAGING,
                    _statuses([s.value for s in ExecutionStatus]),
                    _SINCE,
                    _query("job_id", UUID),
                ],
            )
        },
        "/v1/executions/{id}": {
            "get": _op("getExecution", "Get an execution", execution, params=[_ID])
        },
        "/v1/stats": {
            "get": _op(
                "getStats",
                "Extension: queue counts per handler and state, oldest ready job, throughput "
                "per minute",
                ref("Stats"),
                params=[
                    _query(
                        "window_minutes",
                        {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60},
                    )
                ],
            )
        },
        "/v1/workers": {
            "get": _op(
                "listWorkers",
                "Extension: the worker channels open on this server process, and per handler "
                "how many serve it and their free credits",
                ref("Workers"),
            )
        },
        "/v1/handlers/limits": {
            "get": _op(
                "listHandlerLimits",
                "Extension: the account's per-handler limits, by handler name",
                many | {"items": limits},
            )
        },
        "/v1/handlers/{name}/limits": {
            "get": _op(
                "getHandlerLimits",
                "Extension: a handler's limits (404 handler_limits_not_found if it has none)",
                limits,
                params=[_HANDLER],
            ),
            "put": _op(
                "setHandlerLimits",
                "Extension: set a handler's limits, replacing any it had: `max_running` jobs "
                "`ready` or `running` at once, `max_per_second` started per second; jobs over "
                "them wait in `queued` (GET /v1/stats says how many and why)",
                limits,
                body="LimitsIn",
                params=[_HANDLER],
                links={
                    "GetHandlerLimits": _limit_link("getHandlerLimits"),
                    "DeleteHandlerLimits": _limit_link("deleteHandlerLimits"),
                },
            ),
            "delete": _op(
                "deleteHandlerLimits",
                "Extension: remove a handler's limits; the jobs waiting for them go on at once",
                None,
                status="204",
                params=[_HANDLER],
            ),
        },
        "/v1/worker/jobs/claim": {
            "post": _op(
                "claimJobs",
                "Long-poll for a pull job (`data` null when none came within "
                "`wait_time_seconds`); with the `max_jobs` extension, `data` is a list",
                {
                    "anyOf": [
                        ref("ClaimedJob"),
                        {"type": "null"},
                        many | {"items": ref("ClaimedJob"), "maxItems": 100},
                    ]
                },
                body="ClaimIn",
            )
        },
        "/v1/worker/executions/results": {
            "post": _op(
                "reportResults",
                "Extension: report several executions at once; each item succeeds or fails on "
                "its own, in order",
                many | {"items": ref("BatchResult"), "minItems": 1, "maxItems": 100},
                body="BatchResultsIn",
            )
        },
        "/v1/worker/executions/{id}/result": {
            "post": _op(
                "reportResult",
                "Report a claimed execution's outcome",
                execution,
                body="ResultIn",
                params=[_ID],
                errors=("409",),
            )
        },
    }


def _url_pattern(policy: TargetPolicy) -> str:
    return "^[Hh][Tt][Tt][Pp][Ss]?://" if policy.allow_http else "^[Hh][Tt][Tt][Pp][Ss]://"


@cache
def openapi_document(policy: TargetPolicy = DEFAULT_POLICY) -> dict[str, Any]:
    schemas = openapi_components()
    url = schemas["HttpIn"]["properties"]["url"]
    url["pattern"] = url["pattern"].replace("^[Hh][Tt][Tt][Pp][Ss]://", _url_pattern(policy), 1)
    if policy.allow_private:
        url["x-chronos-rule"] = "an absolute URL with a host, without credentials"
    schemas |= response_components()
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Chronos API",
            "version": "1.0.0",
            "description": "Every response is an envelope: `success`, `message`, then `data` "
            "(and `meta.paging` for lists) or `code` and `errors`. An unknown path answers "
            "404 not_found; a known path with another method 405 method_not_allowed with "
            "`Allow`. `x-chronos-rule` states rules JSON Schema cannot. Extension outside this "
            "document (OpenAPI does not describe WebSockets): `GET /v1/worker/stream`, the "
            "worker channel, a WebSocket with JSON messages (README, 'Worker channel').",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key: `Authorization: Bearer chrns_…`",
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": _paths(),
    }

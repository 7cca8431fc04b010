"""`GET /v1/openapi.json`: the API description, with request bodies from the validating models."""

from __future__ import annotations

from functools import cache
from typing import Any

from chronos_server.api.schemas import openapi_components

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_PAGING = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
    {
        "name": "size",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
]


def _query(name: str, enum: list[str] | None = None, fmt: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if enum:
        schema["enum"] = enum
    if fmt:
        schema["format"] = fmt
    return {"name": name, "in": "query", "schema": schema}


def _op(
    summary: str,
    status: str = "200",
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": params or [],
        "responses": {
            status: {"description": "Success envelope", "content": _envelope("Envelope")},
            "default": {"description": "Error envelope", "content": _envelope("Error")},
        },
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return op


def _envelope(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


_JOB_STATES = [
    "pending",
    "admitting",
    "queued",
    "ready",
    "running",
    "retrying",
    "completed",
    "failed",
    "cancelled",
]


@cache
def openapi_document() -> dict[str, Any]:
    schemas = openapi_components()
    schemas["Envelope"] = {
        "type": "object",
        "required": ["success", "message"],
        "properties": {
            "success": {"type": "boolean"},
            "message": {"type": "string"},
            "data": {},
            "meta": {"type": "object"},
        },
    }
    schemas["Error"] = {
        "type": "object",
        "required": ["success", "message", "code", "errors"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "message": {"type": "string"},
            "code": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    paths: dict[str, Any] = {
        "/v1/schedules": {
            "post": _op("Create a schedule", "201", "ScheduleCreate"),
            "get": _op(
                "List schedules",
                params=[
                    *_PAGING,
                    _query("status", ["active", "completed", "archived"]),
                    _query("handler"),
                ],
            ),
        },
        "/v1/schedules/{id}": {
            "get": _op("Get a schedule", params=[_ID]),
            "patch": _op("Update a schedule", body="SchedulePatch", params=[_ID]),
        },
        "/v1/schedules/{id}/archive": {"post": _op("Archive a schedule", params=[_ID])},
        "/v1/schedules/{id}/run": {"post": _op("Spawn one job now", "201", params=[_ID])},
        "/v1/jobs": {
            "post": _op("Create a one-off job", "201", "JobCreate"),
            "get": _op(
                "List jobs",
                params=[
                    *_PAGING,
                    _query("status", _JOB_STATES),
                    _query("schedule_id", fmt="uuid"),
                    _query("handler"),
                ],
            ),
        },
        "/v1/jobs/{id}": {"get": _op("Get a job", params=[_ID])},
        "/v1/jobs/{id}/cancel": {"post": _op("Cancel a job", params=[_ID])},
        "/v1/executions": {
            "get": _op(
                "List executions",
                params=[
                    *_PAGING,
                    _query("job_id", fmt="uuid"),
                    _query("status", ["running", "completed", "failed", "timeout"]),
                ],
            )
        },
        "/v1/executions/{id}": {"get": _op("Get an execution", params=[_ID])},
        "/v1/stats": {
            "get": _op(
                "Queue counts per handler and state, oldest ready job, throughput per minute",
                params=[
                    {
                        "name": "window_minutes",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60},
                    }
                ],
            )
        },
        "/v1/worker/jobs/claim": {"post": _op("Long-poll for one pull job", body="ClaimIn")},
        "/v1/worker/executions/results": {
            "post": _op("Extension: report several executions at once", body="BatchResultsIn")
        },
        "/v1/worker/executions/{id}/result": {
            "post": _op("Report an execution's outcome", body="ResultIn", params=[_ID])
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Chronos API", "version": "1.0.0"},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }

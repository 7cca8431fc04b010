"""Response schemas of `GET /v1/openapi.json`: the envelopes and the objects `serialize.py` and the
routes emit (spec §3.1, §4), exact enough for a client or a response-schema check to rely on."""

from __future__ import annotations

from typing import Any

from chronos_server.api.schemas import UUID_PATTERN
from chronos_server.core.limits import MAX_PER_SECOND, MAX_RUNNING_LIMIT, MIN_PER_SECOND
from chronos_server.core.models import (
    MAX_CATCH_UP_LIMIT,
    CatchUp,
    ExecutionStatus,
    JobStatus,
    Overlap,
    ScheduleStatus,
    Trigger,
)

Schema = dict[str, Any]

# What `timefmt.iso` emits (G-48): UTC, milliseconds, `Z`.
INSTANT: Schema = {
    "type": "string",
    "format": "date-time",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
}
UUID: Schema = {"type": "string", "format": "uuid", "pattern": UUID_PATTERN}
STRING: Schema = {"type": "string"}
COUNT: Schema = {"type": "integer", "minimum": 0}
JOB_STATES = [s.value for s in JobStatus]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(props: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    """A closed object: every property required except `optional`."""
    return {
        "type": "object",
        "required": [p for p in props if p not in optional],
        "properties": props,
        "additionalProperties": False,
    }


def _delivery() -> Schema:
    http = obj(
        {
            "url": STRING,
            "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
            "headers": {"type": "object", "additionalProperties": STRING},
            "retry_on_status": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "integer", "minimum": 400, "maximum": 499},
            },
        },
        optional=("retry_on_status",),
    )
    return {
        "oneOf": [
            obj({"type": {"const": "pull"}}),
            obj({"type": {"const": "push"}, "http": http}),
        ]
    }


def _interval() -> Schema:
    return obj(
        {
            "value": {"type": "integer", "minimum": 1},
            "unit": {"enum": ["second", "minute", "hour", "day", "week"]},
        }
    )


def _schedule() -> Schema:
    schema = obj(
        {
            "id": UUID,
            "name": STRING,
            "description": nullable(STRING),
            "handler": nullable(STRING),
            "cron": nullable(STRING),
            "interval": nullable(ref("Interval")),
            "timezone": STRING,
            "runs": nullable({"type": "integer", "minimum": 1}),
            "stop_at": nullable(INSTANT),
            "delivery": ref("Delivery"),
            "payload": nullable({"type": "object"}),
            "timeout": {"type": "integer", "minimum": 1, "maximum": 3600},
            "max_retries": {"type": "integer", "minimum": 0, "maximum": 25},
            "status": {"enum": [s.value for s in ScheduleStatus]},
            "run_count": COUNT,
            "next_run_at": nullable(INSTANT),
            "last_run_at": nullable(INSTANT),
            "created_at": INSTANT,
            "updated_at": INSTANT,
            "completed_at": nullable(INSTANT),
            "archived_at": nullable(INSTANT),
            "catch_up": {"enum": [c.value for c in CatchUp]},
            "catch_up_limit": {"type": "integer", "minimum": 1, "maximum": MAX_CATCH_UP_LIMIT},
            "overlap": {"enum": [o.value for o in Overlap]},
            "paused_at": nullable(INSTANT),
        }
    )
    # Exactly one cadence; a pull schedule always has a handler.
    schema["allOf"] = [
        {
            "oneOf": [
                {"properties": {"cron": STRING, "interval": {"type": "null"}}},
                {"properties": {"cron": {"type": "null"}, "interval": {"type": "object"}}},
            ]
        },
        {
            "anyOf": [
                {"properties": {"handler": STRING}},
                {"properties": {"delivery": {"properties": {"type": {"const": "push"}}}}},
            ]
        },
        # Paused: still `active`, with no next slot until resumed.
        {
            "anyOf": [
                {"properties": {"paused_at": {"type": "null"}}},
                {"properties": {"status": {"const": "active"}, "next_run_at": {"type": "null"}}},
            ]
        },
    ]
    return schema


def _job() -> Schema:
    return obj(
        {
            "id": UUID,
            "schedule_id": nullable(UUID),
            "name": STRING,
            "description": nullable(STRING),
            "handler": nullable(STRING),
            "delivery": ref("Delivery"),
            "payload": nullable({"type": "object"}),
            "timeout": {"type": "integer", "minimum": 1, "maximum": 3600},
            "max_retries": {"type": "integer", "minimum": 0, "maximum": 25},
            "idempotency_key": nullable(STRING),
            "status": {"enum": JOB_STATES},
            "scheduled_for": INSTANT,
            "run_at": INSTANT,
            "attempt_count": COUNT,
            "last_execution_id": nullable(UUID),
            "created_at": INSTANT,
            "updated_at": INSTANT,
            "finished_at": nullable(INSTANT),
            "last_error": {
                **nullable(STRING),
                "description": "Extension: the last finished execution's error in one line "
                "(push: `HTTP <status>: <start of the body>`, or the network error or "
                "timeout); null before any failure and after a success.",
            },
            "replay_of": {
                **nullable(UUID),
                "description": "Extension: the job this one replays (POST /v1/jobs/:id/replay).",
            },
        }
    )


def _execution() -> Schema:
    error = obj({"message": STRING, "name": STRING, "stack": STRING}, optional=("name", "stack"))
    return obj(
        {
            "id": UUID,
            "job_id": UUID,
            "attempt": {"type": "integer", "minimum": 1},
            "trigger": {"enum": [t.value for t in Trigger]},
            "status": {"enum": [s.value for s in ExecutionStatus]},
            "started_at": INSTANT,
            "finished_at": nullable(INSTANT),
            "duration_ms": nullable(COUNT),
            "lease_expires_at": nullable(INSTANT),
            "worker": nullable(STRING),
            "result": {"description": "Any JSON value the handler returned; null if none."},
            "error": nullable(error),
            "http_status": nullable({"type": "integer", "minimum": 100, "maximum": 599}),
            "response_body": nullable(STRING),
        }
    )


def _claimed_job() -> Schema:
    return obj(
        {
            "job_id": UUID,
            "execution_id": UUID,
            "handler": STRING,
            "payload": nullable({"type": "object"}),
            "attempt": {"type": "integer", "minimum": 1},
            "scheduled_for": INSTANT,
            "timeout": {"type": "integer", "minimum": 1, "maximum": 3600},
            "lease_expires_at": INSTANT,
            "start_in_ms": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "Extension (timed start, only to a claim with `timed_start`): "
                "the job was handed over before it is due; start it this many ms after the "
                "answer (its execution and lease run from its due instant).",
            },
        },
        optional=("start_in_ms",),
    )


def _batch_result() -> Schema:
    return {
        "oneOf": [
            obj({"execution_id": UUID, "success": {"const": True}, "data": ref("Execution")}),
            obj(
                {
                    "execution_id": UUID,
                    "success": {"const": False},
                    "code": {
                        "enum": [
                            "execution_not_found",
                            "lease_expired",
                            "execution_already_finished",
                        ]
                    },
                    "message": STRING,
                }
            ),
        ]
    }


# `job_id` names the job an `idempotency_key_conflict` is about (the key's holder).
FIELD_ERROR = obj({"field": STRING, "message": STRING, "job_id": UUID}, optional=("job_id",))


def _batch_job_result() -> Schema:
    field_error = FIELD_ERROR
    return {
        "oneOf": [
            obj({"success": {"const": True}, "data": ref("Job")}),
            obj(
                {
                    "success": {"const": False},
                    "code": {
                        "enum": ["bad_request", "validation_error", "idempotency_key_conflict"]
                    },
                    "message": STRING,
                    "errors": {"type": "array", "items": field_error},
                }
            ),
        ],
        "description": "What `POST /v1/jobs` would answer for the item: its job, or its error "
        "(field names relative to the item).",
    }


def _stats() -> Schema:
    counts = obj({s: COUNT for s in JOB_STATES})
    handler = obj(
        {
            "handler": nullable(STRING),
            "counts": counts,
            "oldest_ready_at": nullable(INSTANT),
            "oldest_ready_age_ms": nullable(COUNT),
            "limits": nullable(obj({"max_running": _MAX_RUNNING, "max_per_second": _PER_SECOND})),
            "limited": COUNT,
            "queued_reason": {"enum": ["max_running", "max_per_second", None]},
        }
    )
    minute = obj({"minute": INSTANT, "completed": COUNT, "failed": COUNT})
    return obj(
        {
            "generated_at": INSTANT,
            "window_minutes": {"type": "integer", "minimum": 1, "maximum": 1440},
            "handlers": {"type": "array", "items": handler},
            "totals": counts,
            "throughput": {"type": "array", "minItems": 1, "maxItems": 1440, "items": minute},
        }
    )


_MAX_RUNNING: Schema = nullable({"type": "integer", "minimum": 1, "maximum": MAX_RUNNING_LIMIT})
_PER_SECOND: Schema = nullable(
    {"type": "number", "minimum": MIN_PER_SECOND, "maximum": MAX_PER_SECOND}
)


def _handler_limits() -> Schema:
    """Extension: a handler's limits (README "Handler limits")."""
    return obj(
        {
            "handler": STRING,
            "max_running": _MAX_RUNNING,
            "max_per_second": _PER_SECOND,
            "updated_at": INSTANT,
        }
    )


def _workers() -> Schema:
    channel = obj(
        {
            "worker": nullable(STRING),
            "handlers": {"type": "array", "items": STRING},
            "credits": COUNT,
            "connected_at": INSTANT,
        }
    )
    handler = obj({"handler": STRING, "channels": COUNT, "credits": COUNT})
    return obj(
        {
            "channels": {"type": "array", "items": channel},
            "handlers": {"type": "array", "items": handler},
        }
    )


def _account() -> Schema:
    rotation = obj({"rotating": {"type": "boolean"}, "previous_sent_until": nullable(INSTANT)})
    return obj(
        {
            "id": UUID,
            "name": STRING,
            "timezone": STRING,
            "created_at": INSTANT,
            "signing_secret": rotation,
        }
    )


def _error() -> Schema:
    field_error = FIELD_ERROR
    return obj(
        {
            "success": {"const": False},
            "message": STRING,
            "code": {"type": "string", "pattern": "^[a-z_]+$"},
            "errors": {"type": "array", "items": field_error},
        }
    )


def response_components() -> dict[str, Schema]:
    return {
        "Interval": _interval(),
        "Delivery": _delivery(),
        "Schedule": _schedule(),
        "Job": _job(),
        "Execution": _execution(),
        "ClaimedJob": _claimed_job(),
        "BatchResult": _batch_result(),
        "BatchJobResult": _batch_job_result(),
        "Stats": _stats(),
        "ReplayResult": obj(
            {"count": COUNT, "job_ids": {"type": "array", "maxItems": 1000, "items": UUID}}
        ),
        "Workers": _workers(),
        "Account": _account(),
        "HandlerLimits": _handler_limits(),
        "Error": _error(),
        "Paging": obj(
            {
                "page": {"type": "integer", "minimum": 1},
                "pages": COUNT,
                "size": {"type": "integer", "minimum": 1, "maximum": 100},
                "total": COUNT,
                "total_estimated": {
                    "type": "boolean",
                    "description": "Extension: `total` (and `pages`) is an estimate; lists "
                    "longer than 1,000 items are not counted on every request.",
                },
                "next_cursor": nullable(STRING)
                | {
                    "description": "Extension: pass as `cursor` for the next page (keyset "
                    "paging); null on the last page."
                },
            }
        ),
    }


def envelope(data: Schema, paged: bool = False) -> Schema:
    props: dict[str, Schema] = {"success": {"const": True}, "message": STRING, "data": data}
    if paged:
        props["meta"] = obj({"paging": ref("Paging")})
    return obj(props)

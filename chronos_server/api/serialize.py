"""Domain records → the API's JSON objects (spec §4)."""

from __future__ import annotations

from typing import Any

from chronos_server.api.timefmt import iso
from chronos_server.core.models import ClaimedJob, Execution, Job, Schedule


def schedule_json(s: Schedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "handler": s.handler,
        "cron": s.cron,
        "interval": s.interval.to_json() if s.interval else None,
        "timezone": s.timezone,
        "runs": s.runs,
        "stop_at": iso(s.stop_at),
        "delivery": s.delivery.to_json(),
        "payload": s.payload,
        "timeout": s.timeout,
        "max_retries": s.max_retries,
        "status": s.status.value,
        "run_count": s.run_count,
        "next_run_at": iso(s.next_run_at),
        "last_run_at": iso(s.last_run_at),
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "completed_at": iso(s.completed_at),
        "archived_at": iso(s.archived_at),
        # Extensions (README "Schedule policies").
        "catch_up": s.catch_up.value,
        "catch_up_limit": s.catch_up_limit,
        "overlap": s.overlap.value,
        "paused_at": iso(s.paused_at),
    }


def job_json(j: Job) -> dict[str, Any]:
    return {
        "id": j.id,
        "schedule_id": j.schedule_id,
        "name": j.name,
        "description": j.description,
        "handler": j.handler,
        "delivery": j.delivery.to_json(),
        "payload": j.payload,
        "timeout": j.timeout,
        "max_retries": j.max_retries,
        "idempotency_key": j.idempotency_key,
        "status": j.status.value,
        "scheduled_for": iso(j.scheduled_for),
        "run_at": iso(j.run_at),
        "attempt_count": j.attempt_count,
        "last_execution_id": j.last_execution_id,
        "created_at": iso(j.created_at),
        "updated_at": iso(j.updated_at),
        "finished_at": iso(j.finished_at),
        # Extensions (README "Replaying jobs"; migration 0007).
        "last_error": j.last_error,
        "replay_of": j.replay_of,
    }


def execution_json(e: Execution) -> dict[str, Any]:
    return {
        "id": e.id,
        "job_id": e.job_id,
        "attempt": e.attempt,
        "trigger": e.trigger.value,
        "status": e.status.value,
        "started_at": iso(e.started_at),
        "finished_at": iso(e.finished_at),
        "duration_ms": e.duration_ms,
        "lease_expires_at": iso(e.lease_expires_at),
        "worker": e.worker,
        "result": e.result,
        "error": e.error.to_json() if e.error else None,
        "http_status": e.http_status,
        "response_body": e.response_body,
    }


def claim_json(c: ClaimedJob) -> dict[str, Any]:
    return {
        "job_id": c.job.id,
        "execution_id": c.execution.id,
        "handler": c.job.handler,
        "payload": c.job.payload,
        "attempt": c.execution.attempt,
        "scheduled_for": iso(c.job.scheduled_for),
        "timeout": c.job.timeout,
        "lease_expires_at": iso(c.execution.lease_expires_at),
    }

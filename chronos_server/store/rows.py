"""Mapping between domain records and flat database rows (shared by every SQL dialect)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from chronos_server.core.models import (
    JSON,
    Account,
    CatchUp,
    Delivery,
    Execution,
    ExecutionError,
    ExecutionStatus,
    Interval,
    IntervalUnit,
    Job,
    JobStatus,
    Overlap,
    Schedule,
    ScheduleStatus,
    Trigger,
)
from chronos_server.core.slots import spawn_key
from chronos_server.store.base import SigningSecrets

Row = Mapping[str, Any]
# The stored status of a `pending` job held behind an earlier job of its `overlap: queue`
# schedule (`Job.held`): no due scan looks at it (0004_schedule_policies.sql).
HELD = "held"
# The stored status of a `queued` job waiting for its handler's limits (0008_handler_limits.sql):
# only a release under the limit row's lock lets it go on.
LIMITED = "limited"


_STORED_AS = {HELD: JobStatus.PENDING, LIMITED: JobStatus.QUEUED}


def dump_json(value: JSON) -> str | None:
    """Compact UTF-8 JSON text, as stored; None stays NULL."""
    if value is None:
        return None
    return json_text(value)


def json_text(value: object) -> str:
    """Compact JSON with non-ASCII kept (`json.dumps(..., separators=(",", ":"),
    ensure_ascii=False)`), by orjson: some twenty times faster, which the 1,000-job batch
    create needs. orjson refuses integers past 64 bits; the standard encoder writes them."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def load_json(text: str | None) -> JSON:
    return None if text is None else json.loads(text)


@lru_cache(maxsize=1024)
def delivery_from_text(text: str) -> Delivery:
    """A stored delivery, parsed once per distinct text: the jobs of a schedule, or of a burst
    created alike, share one, and starting 1,000 of them parsed it 1,000 times. `Delivery` is
    frozen and nothing changes its `http.headers`, so sharing one object is safe."""
    return Delivery.from_json(json.loads(text))


def account_from_row(r: Row) -> Account:
    return Account(
        id=r["id"],
        name=r["name"],
        timezone=r["timezone"],
        signing_secret=r["signing_secret"],
        created_at=r["created_at"],
    )


def signing_secrets_from_row(r: Row) -> SigningSecrets:
    return SigningSecrets(
        current=r["signing_secret"],
        previous=r["signing_secret_previous"],
        previous_until=r["signing_secret_previous_until"],
    )


def schedule_params(s: Schedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "account_id": s.account_id,
        "name": s.name,
        "description": s.description,
        "handler": s.handler,
        "cron": s.cron,
        "interval_value": s.interval.value if s.interval else None,
        "interval_unit": s.interval.unit.value if s.interval else None,
        "timezone": s.timezone,
        "runs": s.runs,
        "stop_at": s.stop_at,
        "delivery": dump_json(s.delivery.to_json()),
        "payload": dump_json(s.payload),
        "timeout": s.timeout,
        "max_retries": s.max_retries,
        "status": s.status.value,
        "run_count": s.run_count,
        "next_run_at": s.next_run_at,
        "last_run_at": s.last_run_at,
        "anchor_at": s.anchor_at,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "completed_at": s.completed_at,
        "archived_at": s.archived_at,
        "catch_up": s.catch_up.value,
        "catch_up_limit": s.catch_up_limit,
        "overlap": s.overlap.value,
        "paused_at": s.paused_at,
        "paused_next_run_at": s.paused_next_run_at,
    }


def schedule_from_row(r: Row) -> Schedule:
    interval = None
    if r["interval_value"] is not None:
        interval = Interval(int(r["interval_value"]), IntervalUnit(r["interval_unit"]))
    return Schedule(
        id=r["id"],
        account_id=r["account_id"],
        name=r["name"],
        description=r["description"],
        handler=r["handler"],
        cron=r["cron"],
        interval=interval,
        timezone=r["timezone"],
        runs=r["runs"],
        stop_at=r["stop_at"],
        delivery=delivery_from_text(r["delivery"]),
        payload=load_json(r["payload"]),
        timeout=r["timeout"],
        max_retries=r["max_retries"],
        status=ScheduleStatus(r["status"]),
        run_count=r["run_count"],
        next_run_at=r["next_run_at"],
        last_run_at=r["last_run_at"],
        anchor_at=r["anchor_at"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        completed_at=r["completed_at"],
        archived_at=r["archived_at"],
        catch_up=CatchUp(r["catch_up"]),
        catch_up_limit=r["catch_up_limit"],
        overlap=Overlap(r["overlap"]),
        paused_at=r["paused_at"],
        paused_next_run_at=r["paused_next_run_at"],
    )


def job_params(j: Job) -> dict[str, Any]:
    return {
        "id": j.id,
        "account_id": j.account_id,
        "schedule_id": j.schedule_id,
        "name": j.name,
        "description": j.description,
        "handler": j.handler,
        "delivery_type": j.delivery.type.value,
        "delivery": dump_json(j.delivery.to_json()),
        "payload": dump_json(j.payload),
        "timeout": j.timeout,
        "max_retries": j.max_retries,
        "idempotency_key": j.idempotency_key,
        "status": HELD if j.held else j.status.value,
        "scheduled_for": j.scheduled_for,
        "run_at": j.run_at,
        "attempt_count": j.attempt_count,
        "last_execution_id": j.last_execution_id,
        "first_trigger": j.first_trigger.value,
        "created_at": j.created_at,
        "updated_at": j.updated_at,
        "finished_at": j.finished_at,
    }


def job_from_row(r: Row, **changes: Any) -> Job:
    """The job a row holds; `changes` replace fields (cheaper than `dataclasses.replace` after,
    which matters when a burst starts thousands of jobs)."""
    fields: dict[str, Any] = {
        "id": r["id"],
        "account_id": r["account_id"],
        "schedule_id": r["schedule_id"],
        "name": r["name"],
        "description": r["description"],
        "handler": r["handler"],
        "delivery": delivery_from_text(r["delivery"]),
        "payload": load_json(r["payload"]),
        "timeout": r["timeout"],
        "max_retries": r["max_retries"],
        "idempotency_key": _idempotency_key(r),
        "status": _STORED_AS.get(r["status"]) or JobStatus(r["status"]),
        "scheduled_for": r["scheduled_for"],
        "run_at": r["run_at"],
        "attempt_count": r["attempt_count"],
        "last_execution_id": r["last_execution_id"],
        "first_trigger": Trigger(r["first_trigger"]),
        "created_at": r["created_at"],
        "updated_at": r["updated_at"],
        "finished_at": r["finished_at"],
        "held": r["status"] == HELD,
    }
    fields.update(changes)
    return Job(**fields)


def _idempotency_key(r: Row) -> str | None:
    """A client's key as stored; a spawned job's (stored NULL, its slot in `spawn_slot`) as the
    API has always shown it."""
    slot = r["spawn_slot"]
    return r["idempotency_key"] if slot is None else spawn_key(r["schedule_id"], slot)


def execution_from_row(r: Row) -> Execution:
    raw_error = load_json(r["error"])
    error = None
    if raw_error is not None:
        error = ExecutionError(raw_error["message"], raw_error.get("name"), raw_error.get("stack"))
    return Execution(
        id=r["id"],
        job_id=r["job_id"],
        account_id=r["account_id"],
        attempt=r["attempt"],
        trigger=Trigger(r["trigger"]),
        status=ExecutionStatus(r["status"]),
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        duration_ms=r["duration_ms"],
        lease_expires_at=r["lease_expires_at"],
        worker=r["worker"],
        result=load_json(r["result"]),
        error=error,
        http_status=r["http_status"],
        response_body=r["response_body"],
    )

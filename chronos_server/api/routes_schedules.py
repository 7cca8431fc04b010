"""Schedule endpoints (spec §5.2–§5.6), and pause/resume (extension, README "Schedule policies")."""

from __future__ import annotations

import uuid

from chronos_server.api.context import PAGING, Call, Reply, ok, paged
from chronos_server.api.routing import Endpoint, Routes
from chronos_server.api.schemas import ScheduleCreate, SchedulePatch, parse_body
from chronos_server.api.serialize import job_json, schedule_json
from chronos_server.api.validation import build_schedule, patch_schedule
from chronos_server.core.models import Schedule, ScheduleStatus
from chronos_server.errors import (
    ScheduleArchived,
    ScheduleCompleted,
    ScheduleNotFound,
    ScheduleStatusChanged,
)

STATUSES = frozenset(s.value for s in ScheduleStatus)
PATCH_ATTEMPTS = 3


async def create_schedule(call: Call) -> Reply:
    body = parse_body(ScheduleCreate, call.request.body)
    pipeline = call.pipeline
    schedule = build_schedule(
        body,
        schedule_id=str(uuid.uuid4()),
        account_id=call.account.id,
        account_tz=call.account.timezone,
        now=pipeline.clock.now_ms(),
        policy=call.svc.policy,
    )
    await pipeline.store.insert_schedule(schedule)
    if schedule.next_run_at is not None:
        pipeline.admit_by(schedule.next_run_at)
    return ok(schedule_json(schedule), "Schedule created", 201)


async def list_schedules(call: Call) -> Reply:
    number, size = call.paging()
    status = call.choice("status", STATUSES)
    page = await call.pipeline.store.list_schedules(
        call.account.id,
        status=ScheduleStatus(status) if status else None,
        handler=call.text("handler"),
        offset=(number - 1) * size,
        limit=size,
    )
    return paged([schedule_json(s) for s in page.items], page, number, size, "Schedules")


async def _load(call: Call, schedule_id: str) -> Schedule:
    found = await call.pipeline.store.get_schedule(call.account.id, schedule_id)
    if found is None:
        raise ScheduleNotFound()
    return found


async def get_schedule(call: Call) -> Reply:
    return ok(schedule_json(await _load(call, call.path_id())), "Schedule")


async def update_schedule(call: Call) -> Reply:
    schedule_id = call.path_id()
    current = await _load(call, schedule_id)
    body = parse_body(SchedulePatch, call.request.body)
    pipeline = call.pipeline
    for _ in range(PATCH_ATTEMPTS):
        if current.status is ScheduleStatus.ARCHIVED:
            raise ScheduleArchived()
        if current.status is ScheduleStatus.COMPLETED:
            raise ScheduleCompleted()
        updated = patch_schedule(current, body, now=pipeline.clock.now_ms(), policy=call.svc.policy)
        if await pipeline.store.replace_schedule(
            updated, expected_status=current.status, expected_updated_at=current.updated_at
        ):
            pipeline.admission_nudge.set()
            return ok(schedule_json(updated), "Schedule updated")
        # The row moved on (a slot was spawned meanwhile): re-apply the patch to the new row,
        # unless its status changed, which the client must see (spec §5.4).
        latest = await _load(call, schedule_id)
        if latest.status is not current.status:
            raise ScheduleStatusChanged()
        current = latest
    raise ScheduleStatusChanged()


async def archive_schedule(call: Call) -> Reply:
    pipeline = call.pipeline
    archived = await pipeline.store.archive_schedule(
        call.account.id, call.path_id(), pipeline.clock.now_ms()
    )
    pipeline.slots_freed_by_hand(call.account.id)  # it cancelled its `ready` jobs
    return ok(schedule_json(archived), "Schedule archived")


async def pause_schedule(call: Call) -> Reply:
    """Extension: stop spawning; `status` stays `active`, `paused_at` says so. Pausing a paused
    schedule changes nothing (200), so a client may retry it freely."""
    pipeline = call.pipeline
    paused = await pipeline.store.pause_schedule(
        call.account.id, call.path_id(), pipeline.clock.now_ms()
    )
    return ok(schedule_json(paused), "Schedule paused")


async def resume_schedule(call: Call) -> Reply:
    """Extension: spawn again, the slots missed while paused going by `catch_up`; resuming a
    schedule that is not paused changes nothing (200)."""
    pipeline = call.pipeline
    resumed = await pipeline.store.resume_schedule(
        call.account.id, call.path_id(), pipeline.clock.now_ms()
    )
    if resumed.next_run_at is not None:
        pipeline.admit_by(resumed.next_run_at)
    return ok(schedule_json(resumed), "Schedule resumed")


async def run_schedule(call: Call) -> Reply:
    pipeline = call.pipeline
    job = await pipeline.store.run_schedule_now(
        call.account.id, call.path_id(), str(uuid.uuid4()), pipeline.clock.now_ms()
    )
    pipeline.admission_nudge.set()
    return ok(job_json(job), "Job created", 201)


ROUTES: Routes = [
    ("POST", "/v1/schedules", Endpoint(create_schedule)),
    ("GET", "/v1/schedules", Endpoint(list_schedules, PAGING | {"status", "handler"})),
    ("GET", "/v1/schedules/{id}", Endpoint(get_schedule)),
    ("PATCH", "/v1/schedules/{id}", Endpoint(update_schedule)),
    ("POST", "/v1/schedules/{id}/archive", Endpoint(archive_schedule)),
    ("POST", "/v1/schedules/{id}/run", Endpoint(run_schedule)),
    ("POST", "/v1/schedules/{id}/pause", Endpoint(pause_schedule)),
    ("POST", "/v1/schedules/{id}/resume", Endpoint(resume_schedule)),
]

"""Schedule endpoints (spec §5.2–§5.6)."""

from __future__ import annotations

import uuid

from quart import Blueprint, request

from chronos_server.api.context import (
    Reply,
    account,
    ok,
    paged,
    path_id,
    query_choice,
    query_paging,
    query_text,
    services,
)
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

bp = Blueprint("schedules", __name__)
STATUSES = frozenset(s.value for s in ScheduleStatus)
PATCH_ATTEMPTS = 3


@bp.post("/v1/schedules")
async def create_schedule() -> Reply:
    body = parse_body(ScheduleCreate, await request.get_data(as_text=False))
    svc = services()
    acct = account()
    schedule = build_schedule(
        body,
        schedule_id=str(uuid.uuid4()),
        account_id=acct.id,
        account_tz=acct.timezone,
        now=svc.pipeline.clock.now_ms(),
        policy=svc.policy,
    )
    await svc.pipeline.store.insert_schedule(schedule)
    if schedule.next_run_at is not None:
        svc.pipeline.admit_by(schedule.next_run_at)
    return ok(schedule_json(schedule), "Schedule created", 201)


@bp.get("/v1/schedules")
async def list_schedules() -> Reply:
    number, size = query_paging()
    status = query_choice("status", STATUSES)
    page = await services().pipeline.store.list_schedules(
        account().id,
        status=ScheduleStatus(status) if status else None,
        handler=query_text("handler"),
        offset=(number - 1) * size,
        limit=size,
    )
    return paged([schedule_json(s) for s in page.items], page, number, size, "Schedules")


async def _load(schedule_id: str) -> Schedule:
    found = await services().pipeline.store.get_schedule(account().id, path_id(schedule_id))
    if found is None:
        raise ScheduleNotFound()
    return found


@bp.get("/v1/schedules/<schedule_id>")
async def get_schedule(schedule_id: str) -> Reply:
    return ok(schedule_json(await _load(schedule_id)), "Schedule")


@bp.patch("/v1/schedules/<schedule_id>")
async def update_schedule(schedule_id: str) -> Reply:
    current = await _load(schedule_id)
    body = parse_body(SchedulePatch, await request.get_data(as_text=False))
    svc = services()
    for _ in range(PATCH_ATTEMPTS):
        if current.status is ScheduleStatus.ARCHIVED:
            raise ScheduleArchived()
        if current.status is ScheduleStatus.COMPLETED:
            raise ScheduleCompleted()
        updated = patch_schedule(current, body, now=svc.pipeline.clock.now_ms(), policy=svc.policy)
        if await svc.pipeline.store.replace_schedule(
            updated, expected_status=current.status, expected_updated_at=current.updated_at
        ):
            svc.pipeline.admission_nudge.set()
            return ok(schedule_json(updated), "Schedule updated")
        # The row moved on (a slot was spawned meanwhile): re-apply the patch to the new row,
        # unless its status changed, which the client must see (spec §5.4).
        latest = await _load(schedule_id)
        if latest.status is not current.status:
            raise ScheduleStatusChanged()
        current = latest
    raise ScheduleStatusChanged()


@bp.post("/v1/schedules/<schedule_id>/archive")
async def archive_schedule(schedule_id: str) -> Reply:
    svc = services()
    archived = await svc.pipeline.store.archive_schedule(
        account().id, path_id(schedule_id), svc.pipeline.clock.now_ms()
    )
    return ok(schedule_json(archived), "Schedule archived")


@bp.post("/v1/schedules/<schedule_id>/run")
async def run_schedule(schedule_id: str) -> Reply:
    svc = services()
    job = await svc.pipeline.store.run_schedule_now(
        account().id, path_id(schedule_id), str(uuid.uuid4()), svc.pipeline.clock.now_ms()
    )
    svc.pipeline.admission_nudge.set()
    return ok(job_json(job), "Job created", 201)

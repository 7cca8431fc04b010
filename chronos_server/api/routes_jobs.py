"""Job and execution endpoints (spec §5.7–§5.9)."""

from __future__ import annotations

import uuid

from quart import Blueprint, request

from chronos_server.api.context import (
    Reply,
    account,
    ok,
    paged,
    path_id,
    query_choices,
    query_instant,
    query_paging,
    query_text,
    query_uuid,
    services,
)
from chronos_server.api.schemas import JobCreate, parse_body
from chronos_server.api.serialize import execution_json, job_json
from chronos_server.api.validation import build_job
from chronos_server.core.models import ExecutionStatus, JobStatus
from chronos_server.errors import ExecutionNotFound, JobNotFound

bp = Blueprint("jobs", __name__)
JOB_STATUSES = frozenset(s.value for s in JobStatus)
EXECUTION_STATUSES = frozenset(s.value for s in ExecutionStatus)


@bp.post("/v1/jobs")
async def create_job() -> Reply:
    body = parse_body(JobCreate, await request.get_data(as_text=False))
    svc = services()
    job = build_job(
        body,
        job_id=str(uuid.uuid4()),
        account_id=account().id,
        now=svc.pipeline.clock.now_ms(),
        policy=svc.policy,
    )
    await svc.pipeline.store.insert_job(job)
    svc.pipeline.admit_by(job.run_at)
    return ok(job_json(job), "Job created", 201)


@bp.get("/v1/jobs")
async def list_jobs() -> Reply:
    number, size = query_paging()
    statuses = query_choices("status", JOB_STATUSES)
    page = await services().pipeline.store.list_jobs(
        account().id,
        statuses=[JobStatus(s) for s in statuses] if statuses else None,
        since=query_instant("since"),
        schedule_id=query_uuid("schedule_id"),
        handler=query_text("handler"),
        offset=(number - 1) * size,
        limit=size,
    )
    return paged([job_json(j) for j in page.items], page, number, size, "Jobs")


@bp.get("/v1/jobs/<job_id>")
async def get_job(job_id: str) -> Reply:
    job = await services().pipeline.store.get_job(account().id, path_id(job_id))
    if job is None:
        raise JobNotFound()
    return ok(job_json(job), "Job")


@bp.post("/v1/jobs/<job_id>/cancel")
async def cancel_job(job_id: str) -> Reply:
    svc = services()
    job = await svc.pipeline.store.cancel_job(
        account().id, path_id(job_id), svc.pipeline.clock.now_ms()
    )
    return ok(job_json(job), "Job cancelled")


@bp.get("/v1/executions")
async def list_executions() -> Reply:
    number, size = query_paging()
    statuses = query_choices("status", EXECUTION_STATUSES)
    page = await services().pipeline.store.list_executions(
        account().id,
        job_id=query_uuid("job_id"),
        statuses=[ExecutionStatus(s) for s in statuses] if statuses else None,
        since=query_instant("since"),
        offset=(number - 1) * size,
        limit=size,
    )
    return paged([execution_json(e) for e in page.items], page, number, size, "Executions")


@bp.get("/v1/executions/<execution_id>")
async def get_execution(execution_id: str) -> Reply:
    found = await services().pipeline.store.get_execution(account().id, path_id(execution_id))
    if found is None:
        raise ExecutionNotFound()
    return ok(execution_json(found), "Execution")

"""Job and execution endpoints (spec §5.7–§5.9)."""

from __future__ import annotations

import uuid

from chronos_server.api.context import PAGING, Call, Reply, ok, paged
from chronos_server.api.routing import Endpoint, Routes
from chronos_server.api.schemas import JobCreate, parse_body
from chronos_server.api.serialize import execution_json, job_json
from chronos_server.api.validation import build_job
from chronos_server.core.models import ExecutionStatus, JobStatus
from chronos_server.errors import ExecutionNotFound, JobNotFound

JOB_STATUSES = frozenset(s.value for s in JobStatus)
EXECUTION_STATUSES = frozenset(s.value for s in ExecutionStatus)


async def create_job(call: Call) -> Reply:
    body = parse_body(JobCreate, call.request.body)
    pipeline = call.pipeline
    job = build_job(
        body,
        job_id=str(uuid.uuid4()),
        account_id=call.account.id,
        now=pipeline.clock.now_ms(),
        policy=call.svc.policy,
    )
    await pipeline.store.insert_job(job)
    pipeline.admit_by(job.run_at)
    return ok(job_json(job), "Job created", 201)


async def list_jobs(call: Call) -> Reply:
    number, size = call.paging()
    statuses = call.choices("status", JOB_STATUSES)
    page = await call.pipeline.store.list_jobs(
        call.account.id,
        statuses=[JobStatus(s) for s in statuses] if statuses else None,
        since=call.instant("since"),
        schedule_id=call.uuid("schedule_id"),
        handler=call.text("handler"),
        offset=(number - 1) * size,
        limit=size,
    )
    return paged([job_json(j) for j in page.items], page, number, size, "Jobs")


async def get_job(call: Call) -> Reply:
    job = await call.pipeline.store.get_job(call.account.id, call.path_id())
    if job is None:
        raise JobNotFound()
    return ok(job_json(job), "Job")


async def cancel_job(call: Call) -> Reply:
    pipeline = call.pipeline
    job = await pipeline.store.cancel_job(call.account.id, call.path_id(), pipeline.clock.now_ms())
    return ok(job_json(job), "Job cancelled")


async def list_executions(call: Call) -> Reply:
    number, size = call.paging()
    statuses = call.choices("status", EXECUTION_STATUSES)
    page = await call.pipeline.store.list_executions(
        call.account.id,
        job_id=call.uuid("job_id"),
        statuses=[ExecutionStatus(s) for s in statuses] if statuses else None,
        since=call.instant("since"),
        offset=(number - 1) * size,
        limit=size,
    )
    return paged([execution_json(e) for e in page.items], page, number, size, "Executions")


async def get_execution(call: Call) -> Reply:
    found = await call.pipeline.store.get_execution(call.account.id, call.path_id())
    if found is None:
        raise ExecutionNotFound()
    return ok(execution_json(found), "Execution")


ROUTES: Routes = [
    ("POST", "/v1/jobs", Endpoint(create_job)),
    (
        "GET",
        "/v1/jobs",
        Endpoint(list_jobs, PAGING | {"status", "since", "schedule_id", "handler"}),
    ),
    ("GET", "/v1/jobs/{id}", Endpoint(get_job)),
    ("POST", "/v1/jobs/{id}/cancel", Endpoint(cancel_job)),
    ("GET", "/v1/executions", Endpoint(list_executions, PAGING | {"status", "since", "job_id"})),
    ("GET", "/v1/executions/{id}", Endpoint(get_execution)),
]

"""Job and execution endpoints (spec §5.7–§5.9), and the batch create extension.

`POST /v1/jobs/batch` takes `{"jobs": [...]}`, 1 to 1,000 bodies of `POST /v1/jobs`, and answers
200 with one result per item, in request order: `{"success": true, "data": <Job>}` or
`{"success": false, "code", "message", "errors"}`, exactly what a single create of that item
would have answered (field names relative to the item, as a single create names them). The
items that pass are written in ONE transaction; an idempotency key already held, by a stored job
or an earlier item, refuses its item with `idempotency_key_conflict` naming that job. Only a
body that is not a JSON object, or whose `jobs` is not a list of 1 to 1,000 items, is refused as
a whole (400/422, field names from the top: `jobs`, `jobs.3.name`), and then nothing is written.
"""

from __future__ import annotations

import uuid
from typing import Any

from chronos_server.api.context import PAGING, Call, Reply, ok, paged
from chronos_server.api.routing import Endpoint, Routes
from chronos_server.api.schemas import JobCreate, JobItemInvalid, JobsBatchIn, parse_body
from chronos_server.api.serialize import execution_json, job_json
from chronos_server.api.validation import build_job
from chronos_server.core.models import ExecutionStatus, Job, JobStatus
from chronos_server.errors import ChronosError, ExecutionNotFound, JobNotFound
from chronos_server.pipeline.creates import create_job as create_one
from chronos_server.pipeline.creates import create_jobs

JOB_STATUSES = frozenset(s.value for s in JobStatus)
EXECUTION_STATUSES = frozenset(s.value for s in ExecutionStatus)


async def create_job(call: Call) -> Reply:
    body = parse_body(JobCreate, call.request.body)
    job = build_job(
        body,
        job_id=str(uuid.uuid4()),
        account_id=call.account.id,
        now=call.pipeline.clock.now_ms(),
        policy=call.svc.policy,
    )
    return ok(job_json(await create_one(call.pipeline, job)), "Job created", 201)


async def create_jobs_batch(call: Call) -> Reply:
    body = parse_body(JobsBatchIn, call.request.body)
    now = call.pipeline.clock.now_ms()
    checked: list[Job | ChronosError] = []
    for item in body.items():
        try:
            if isinstance(item, JobItemInvalid):
                raise item.error
            job = build_job(
                item,
                job_id=str(uuid.uuid4()),
                account_id=call.account.id,
                now=now,
                policy=call.svc.policy,
            )
        except ChronosError as exc:
            checked.append(exc)
        else:
            checked.append(job)
    written = iter(await create_jobs(call.pipeline, [j for j in checked if isinstance(j, Job)]))
    results = [next(written) if isinstance(item, Job) else item for item in checked]
    created = sum(isinstance(r, Job) for r in results)
    return ok([_batch_item(r) for r in results], f"{created} of {len(results)} job(s) created")


def _batch_item(result: Job | ChronosError) -> dict[str, Any]:
    if isinstance(result, ChronosError):
        return {
            "success": False,
            "code": result.code,
            "message": result.message,
            "errors": [e.to_json() for e in result.errors],
        }
    return {"success": True, "data": job_json(result)}


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
    pipeline.slots_freed_by_hand(call.account.id)  # it may have been `ready`
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
    ("POST", "/v1/jobs/batch", Endpoint(create_jobs_batch)),
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

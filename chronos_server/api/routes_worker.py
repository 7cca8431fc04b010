"""Worker endpoints (spec §10): the claim long-poll and the result report.

A claim parks on the ClaimBoard (an in-process event per waiter), never polling the database on a
timer. The claim transaction is shielded so it either completes or never starts; if the request
was cancelled meanwhile (client gone, shutdown), the claim is undone so no job stays claimed by a
worker that will never hear of it.
"""

from __future__ import annotations

import json

import trio

from chronos_server.api.context import Call, Reply, ok, path_id
from chronos_server.api.routing import Endpoint, Routes
from chronos_server.api.schemas import BatchResultsIn, ClaimIn, ResultIn, parse_body
from chronos_server.api.serialize import claim_json, execution_json
from chronos_server.core.models import ClaimedJob, ExecutionError, ExecutionStatus, Outcome
from chronos_server.errors import (
    ChronosError,
    FieldError,
    ServiceUnavailable,
    Stopping,
    ValidationFailed,
    invalid,
)
from chronos_server.loops.context import Pipeline

MAX_RESULT_BYTES = 64 * 1024
MAX_STACK = 16 * 1024
UNCLAIM_DEADLINE_SECONDS = 5.0


async def _claim_once(
    pipeline: Pipeline, account_id: str, handlers: list[str], worker: str | None, limit: int
) -> list[ClaimedJob]:
    board = pipeline.board
    if board.known_empty(account_id, handlers):
        return []
    before = board.snapshot(account_id, handlers)
    with trio.CancelScope(shield=True):
        claimed = await pipeline.store.claim_ready_jobs(
            account_id, handlers, worker, pipeline.clock.now_ms(), limit
        )
    if not claimed:
        board.mark_empty(account_id, handlers, before)
    handed_over = False
    try:
        await trio.lowlevel.checkpoint()  # raises if the request was cancelled meanwhile
        handed_over = True
        return claimed
    finally:
        if claimed and not handed_over:
            with trio.move_on_after(UNCLAIM_DEADLINE_SECONDS) as scope:
                scope.shield = True
                for job in claimed:
                    if await pipeline.store.unclaim(job, pipeline.clock.now_ms()):
                        board.notify(account_id, job.job.handler or "", 1)


async def wait_for_claim(
    call: Call,
    account_id: str,
    handlers: list[str],
    worker: str | None,
    wait_seconds: int,
    limit: int = 1,
) -> list[ClaimedJob]:
    svc = call.svc
    board = svc.pipeline.board
    deadline = trio.current_time() + wait_seconds
    while not svc.stopping:
        waiter = board.register(account_id, handlers)
        try:
            claimed = await _claim_once(svc.pipeline, account_id, handlers, worker, limit)
            if claimed:
                if waiter.event.is_set():
                    board.pass_on(waiter)
                return claimed
            if board.closing or trio.current_time() >= deadline:
                return []
            with trio.move_on_at(deadline):
                await waiter.event.wait()
        finally:
            board.unregister(waiter)
    return []


async def claim(call: Call) -> Reply:
    body = parse_body(ClaimIn, call.request.body)
    handlers = list(dict.fromkeys(h.strip() for h in body.handlers))
    if not all(handlers):
        raise invalid("handlers", "handler names must not be blank")
    if call.svc.stopping:
        raise Stopping()
    limit = body.max_jobs or 1
    claimed: list[ClaimedJob] = []
    async with call.request.cancel_on_disconnect():
        claimed = await wait_for_claim(
            call, call.account.id, handlers, body.worker, body.wait_time_seconds, limit
        )
    grace = call.pipeline.settings.lease_grace_ms
    for c in claimed:
        call.pipeline.leases.add(c.execution.id, (c.execution.lease_expires_at or 0) + grace)
    if body.max_jobs is not None:
        return ok([claim_json(c) for c in claimed], f"{len(claimed)} job(s) claimed")
    if not claimed:
        return ok(None, "No job available")
    return ok(claim_json(claimed[0]), "Job claimed")


def _outcome(body: ResultIn, prefix: str = "") -> Outcome:
    try:
        return _check_outcome(body)
    except ValidationFailed as exc:
        if prefix:
            exc.errors = [FieldError(f"{prefix}.{e.field}", e.message) for e in exc.errors]
        raise


def _check_outcome(body: ResultIn) -> Outcome:
    if body.status == "completed":
        problems = [f for f in ("error", "retryable") if getattr(body, f) is not None]
        if problems:
            raise ValidationFailed(
                None, [FieldError(f, "is only allowed with status failed") for f in problems]
            )
        try:
            serialized = json.dumps(body.result, separators=(",", ":"), allow_nan=False)
        except ValueError:  # NaN/Infinity parse but are not JSON; they could not be echoed back
            raise invalid("result", "must not contain NaN or Infinity") from None
        if len(serialized.encode()) > MAX_RESULT_BYTES:
            raise invalid("result", f"must be at most {MAX_RESULT_BYTES} bytes serialized")
        return Outcome(ExecutionStatus.COMPLETED, result=body.result)
    if body.error is None:
        raise invalid("error", "is required with status failed")
    if "result" in body.model_fields_set and body.result is not None:
        raise invalid("result", "is only allowed with status completed")
    stack = body.error.stack[:MAX_STACK] if body.error.stack is not None else None
    return Outcome(
        ExecutionStatus.FAILED,
        error=ExecutionError(body.error.message, body.error.name, stack),
        retryable=body.retryable is not False,
    )


async def report_result(call: Call) -> Reply:
    execution_id = call.path_id()
    outcome = _outcome(parse_body(ResultIn, call.request.body))
    pipeline = call.pipeline
    try:
        execution = await pipeline.store.finish_execution(
            call.account.id, execution_id, outcome, pipeline.clock.now_ms(), pipeline.rng
        )
    except ServiceUnavailable:
        raise  # not recorded: the worker will send it again
    except ChronosError:
        pipeline.leases.settle(execution_id)  # answered for good (404, 409)
        raise
    pipeline.leases.settle(execution_id)
    if outcome.status is not ExecutionStatus.COMPLETED:
        pipeline.admission_nudge.set()
    return ok(execution_json(execution), "Result recorded")


async def report_results(call: Call) -> Reply:
    """Extension: up to 100 reports in one request and one transaction. The request is refused
    as a whole (422) only for a malformed body; each item then succeeds or fails on its own."""
    body = parse_body(BatchResultsIn, call.request.body)
    outcomes = [
        (path_id(item.execution_id, f"results.{i}.execution_id"), _outcome(item, f"results.{i}"))
        for i, item in enumerate(body.results)
    ]
    pipeline = call.pipeline
    results = await pipeline.store.finish_executions(
        call.account.id, outcomes, pipeline.clock.now_ms(), pipeline.rng
    )
    for execution_id, _ in outcomes:
        pipeline.leases.settle(execution_id)
    if any(o.status is not ExecutionStatus.COMPLETED for _, o in outcomes):
        pipeline.admission_nudge.set()
    items = []
    for (execution_id, _), result in zip(outcomes, results, strict=True):
        if isinstance(result, ChronosError):
            items.append(
                {
                    "execution_id": execution_id,
                    "success": False,
                    "code": result.code,
                    "message": result.message,
                }
            )
        else:
            items.append(
                {"execution_id": execution_id, "success": True, "data": execution_json(result)}
            )
    return ok(items, "Results recorded")


ROUTES: Routes = [
    ("POST", "/v1/worker/jobs/claim", Endpoint(claim)),
    ("POST", "/v1/worker/executions/{id}/result", Endpoint(report_result)),
    ("POST", "/v1/worker/executions/results", Endpoint(report_results)),
]

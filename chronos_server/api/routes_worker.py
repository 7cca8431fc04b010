"""Worker endpoints (spec §10): the claim long-poll and the result reports, over HTTP.

The protocol itself lives in `pipeline/claims.py` and `pipeline/outcomes.py`; here, the bodies
are checked and answered. A claim is cancelled if its client goes away while it waits
(`Request.cancel_on_disconnect`), which the claim protocol turns into "no job claimed".
"""

from __future__ import annotations

import json
from typing import Any

from chronos_server.api.context import Call, Reply, ok, path_id
from chronos_server.api.routing import Endpoint, Routes
from chronos_server.api.schemas import BatchResultsIn, ClaimIn, HeartbeatIn, ResultIn, parse_body
from chronos_server.api.serialize import claim_json, execution_json
from chronos_server.core.models import ClaimedJob, ExecutionError, ExecutionStatus, Outcome
from chronos_server.errors import (
    ChronosError,
    FieldError,
    Stopping,
    ValidationFailed,
    invalid,
)
from chronos_server.pipeline.claims import claim_jobs, claim_ready
from chronos_server.pipeline.outcomes import extend_leases, record_report, record_reports
from chronos_server.pipeline.signals import HAND_OFF_EARLY_MS

MAX_RESULT_BYTES = 64 * 1024
MAX_STACK = 16 * 1024


async def claim(call: Call) -> Reply:
    body = parse_body(ClaimIn, call.request.body)
    handlers = list(dict.fromkeys(h.strip() for h in body.handlers))
    if not all(handlers):
        raise invalid("handlers", "handler names must not be blank")
    if call.pipeline.shutdown.stopping:
        raise Stopping()
    limit = body.max_jobs or 1
    timed = body.timed_start is True
    # Work ready now (with the timed start, due within the hand-off window) is handed over
    # without the long-poll's machinery (no watch on the connection: a client that leaves
    # during this one statement finds its job retried after the lease, as one that leaves just
    # after the answer was written always did).
    claimed: list[ClaimedJob] = await claim_ready(
        call.pipeline, call.account.id, handlers, body.worker, limit, early=timed
    )
    if not claimed:
        async with call.request.cancel_on_disconnect():
            claimed = await claim_jobs(
                call.pipeline,
                call.account.id,
                handlers,
                body.worker,
                body.wait_time_seconds,
                limit,
                early=timed,
            )
    jobs = [claim_json(c) for c in claimed]
    if timed:
        _start_in(jobs, claimed, call.pipeline.clock.exact_ms())
    if body.max_jobs is not None:
        return ok(jobs, f"{len(claimed)} job(s) claimed")
    if not claimed:
        return ok(None, "No job available")
    return ok(jobs[0], "Job claimed")


def _start_in(jobs: list[dict[str, Any]], claimed: list[ClaimedJob], now: float) -> None:
    """Timed start: a job handed over before its execution's start (its due instant) says how
    long after this answer the worker starts it."""
    for job, c in zip(jobs, claimed, strict=True):
        if c.execution.started_at > now:
            job["start_in_ms"] = round(c.execution.started_at - now, 2)


def _outcome(body: ResultIn, prefix: str = "") -> Outcome:
    try:
        return outcome_of(body)
    except ValidationFailed as exc:
        if prefix:
            exc.errors = [FieldError(f"{prefix}.{e.field}", e.message) for e in exc.errors]
        raise


def outcome_of(body: ResultIn) -> Outcome:
    """A validated report body as the outcome to record (422 naming the field otherwise)."""
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
    execution = await record_report(call.pipeline, call.account.id, execution_id, outcome)
    return ok(execution_json(execution), "Result recorded")


async def report_results(call: Call) -> Reply:
    """Extension: up to 100 reports in one request and one transaction. The request is refused
    as a whole (422) only for a malformed body; each item then succeeds or fails on its own."""
    body = parse_body(BatchResultsIn, call.request.body)
    outcomes = [
        (path_id(item.execution_id, f"results.{i}.execution_id"), _outcome(item, f"results.{i}"))
        for i, item in enumerate(body.results)
    ]
    results = await record_reports(call.pipeline, call.account.id, outcomes)
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


async def heartbeat(call: Call) -> Reply:
    """Extension: extend a running execution's lease (body optional: `{"extend_seconds": n}`,
    1-3600, default the job's `timeout`); refused as a result report would be."""
    execution_id = call.path_id()
    raw = call.request.body
    body = parse_body(HeartbeatIn, raw) if raw.strip() else HeartbeatIn()
    [result] = await extend_leases(
        call.pipeline, call.account.id, [(execution_id, body.extend_seconds)]
    )
    if isinstance(result, ChronosError):
        raise result
    return ok(execution_json(result), "Lease extended")


ROUTES: Routes = [
    # The timed start extension is offered on every claim answer: a worker that reads it may
    # ask for it (`timed_start`), one that does not never gets a job before it is due.
    (
        "POST",
        "/v1/worker/jobs/claim",
        Endpoint(claim, headers=(("Chronos-Timed-Start", str(HAND_OFF_EARLY_MS)),)),
    ),
    ("POST", "/v1/worker/executions/{id}/result", Endpoint(report_result)),
    ("POST", "/v1/worker/executions/results", Endpoint(report_results)),
    ("POST", "/v1/worker/executions/{id}/heartbeat", Endpoint(heartbeat)),
]

"""In-process fakes for worker tests: a scripted Chronos server behind `httpx.MockTransport`
and a Node-style logger that records its calls."""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import trio

CLAIM_PATH = "/v1/worker/jobs/claim"
BATCH_REPORT_PATH = "/v1/worker/executions/results"
SCHEDULED_FOR = "2026-01-15T09:00:00.000Z"
LEASE_EXPIRES_AT = "2026-01-15T09:00:31.120Z"
RETRY_AT = "2026-01-15T09:00:02.000Z"  # `run_at` of a job after a retryable failure
JOB_PREFIX = "/v1/jobs/"

Scripted = httpx.Response | Exception


@dataclass
class Request:
    """One request as the fake server saw it, with the virtual time it arrived."""

    path: str
    headers: httpx.Headers
    body: dict[str, Any]
    at: float


class FakeServer:
    """Hands out queued jobs on claim (long-polling while the queue is empty) and records
    every report. `claim_script` / `report_script` / `batch_script` hold canned answers (or
    exceptions to raise, e.g. `httpx.ConnectError`) used, in order, before the normal behaviour.

    Both batch extensions are served like the real server: a claim with `max_jobs` answers a
    list, `POST /v1/worker/executions/results` judges each item on its own. Set `batch_claims`
    to False to refuse `max_jobs` with a 422, `batch_reports` to False to answer the batch
    route with `missing_route_status` (a server without the extensions). `item_errors` maps an
    execution id to the code its batch item is refused with; a second result for the same
    execution is refused as `execution_already_finished` (409 on the single route). A report
    (either route) takes `report_latency` seconds to answer, at least one checkpoint.

    `GET /v1/jobs/:id` answers the job's `status` and `run_at`, kept like the real server: an
    accepted failure moves the job to `retrying` (run_at `RETRY_AT`) while attempts remain
    (`attempt <= max_retries`, `retryable` not false), else to `failed` (`job_script` first).
    Every request that arrives before `down_until` (virtual time) fails with a connection
    error, as if the server were down or restarting."""

    def __init__(self) -> None:
        self.queue: deque[dict[str, Any]] = deque()
        self.claims: list[Request] = []
        self.report_attempts: list[Request] = []
        self.reports: list[Request] = []  # accepted single reports only
        self.batch_attempts: list[Request] = []
        self.batches: list[Request] = []  # batch reports answered 200
        self.results: dict[str, dict[str, Any]] = {}  # accepted results, from either route
        self.claim_script: deque[Scripted] = deque()
        self.report_script: deque[Scripted] = deque()
        self.batch_script: deque[Scripted] = deque()
        self.batch_claims = True
        # Offer the timed start (the `Chronos-Timed-Start` header of each claim answer, in ms);
        # a job queued with `start_in_ms` (an `add_job` extra) is handed over with it.
        self.timed_start_ms: int | None = None
        self.batch_reports = True
        self.missing_route_status = 404
        self.item_errors: dict[str, str] = {}
        self.report_latency = 0.0
        self.jobs: dict[str, dict[str, Any]] = {}  # job id -> what GET /v1/jobs/:id answers
        self.lookups: list[Request] = []
        self.job_script: deque[Scripted] = deque()
        self.down_until = float("-inf")
        self.heartbeats: list[Request] = []
        self.heartbeat_script: deque[Scripted] = deque()
        self.heartbeat_route = True  # False: answered 404 `not_found`, as by the hosted API
        self._job_of: dict[str, str] = {}  # execution id -> job id
        self._timeouts: dict[str, int] = {}  # execution id -> its job's timeout
        self._changed = trio.Event()
        self._count = 0

    def add_job(
        self, handler: str = "test.job", payload: Any = None, *, max_retries: int = 3, **extra: Any
    ) -> str:
        """Queue a pull job; returns its execution id."""
        self._count += 1
        job = {
            "job_id": f"job-{self._count}",
            "execution_id": f"exec-{self._count}",
            "handler": handler,
            "payload": payload,
            "attempt": 1,
            "scheduled_for": SCHEDULED_FOR,
            "timeout": 30,
            "lease_expires_at": LEASE_EXPIRES_AT,
            **extra,
        }
        self.queue.append(job)
        self.jobs[job["job_id"]] = {
            "id": job["job_id"],
            "status": "ready",
            "run_at": SCHEDULED_FOR,
            "attempt_count": job["attempt"] - 1,
            "max_retries": max_retries,
        }
        self._job_of[job["execution_id"]] = job["job_id"]
        self._timeouts[job["execution_id"]] = job["timeout"]
        self._notify()
        return str(job["execution_id"])

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Block until `predicate()` holds; re-checked after every request."""
        while not predicate():
            await self._changed.wait()

    def reported(self, execution_id: str) -> dict[str, Any]:
        """The accepted result body of an execution (without `execution_id`)."""
        return self.results[execution_id]

    @property
    def batch_sizes(self) -> list[int]:
        """Number of items of each batch report answered 200, in order."""
        return [len(batch.body["results"]) for batch in self.batches]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        seen = Request(request.url.path, request.headers, body, trio.current_time())
        path = request.url.path
        if path.endswith("/heartbeat"):
            self.heartbeats.append(seen)
            self._notify()
            return self._heartbeat(seen)
        try:
            if request.method == "GET" and path.startswith(JOB_PREFIX):
                self.lookups.append(seen)
            elif path == CLAIM_PATH:
                self.claims.append(seen)
            elif path == BATCH_REPORT_PATH:
                self.batch_attempts.append(seen)
            else:
                self.report_attempts.append(seen)
            if seen.at < self.down_until:  # recorded, as a client would see it: refused
                raise httpx.ConnectError("connection refused")
            if request.method == "GET" and path.startswith(JOB_PREFIX):
                return self._job(seen)
            if path == CLAIM_PATH:
                self._notify()
                return await self._claim(body)
            await trio.sleep(self.report_latency)
            if path == BATCH_REPORT_PATH:
                return self._batch_report(seen)
            return self._report(seen)
        finally:
            self._notify()

    async def _claim(self, body: Mapping[str, Any]) -> httpx.Response:
        if self.claim_script:
            return _play(self.claim_script.popleft())
        max_jobs = body.get("max_jobs")
        if max_jobs is not None and not (self.batch_claims and 1 <= max_jobs <= 100):
            return _validation_error("max_jobs", "is not allowed")
        with trio.move_on_after(body["wait_time_seconds"]):
            while not self.queue:
                await self._changed.wait()
        offer = (
            {} if self.timed_start_ms is None else {"chronos-timed-start": f"{self.timed_start_ms}"}
        )
        if max_jobs is not None:
            jobs = [self._hand_out() for _ in range(min(max_jobs, len(self.queue)))]
            body = {"success": True, "message": "Claim", "data": jobs}
            return httpx.Response(200, json=body, headers=offer)
        data = self._hand_out() if self.queue else None
        body = {"success": True, "message": "Claim", "data": data}
        return httpx.Response(200, json=body, headers=offer)

    def _hand_out(self) -> dict[str, Any]:
        job = self.queue.popleft()
        state = self.jobs[job["job_id"]]
        state.update(status="running", attempt_count=job["attempt"])
        return job

    def _finish(self, execution_id: str, body: Mapping[str, Any]) -> None:
        """Record an accepted result and move its job on."""
        self.results[execution_id] = dict(body)
        job_id = self._job_of.get(execution_id)
        if job_id is None:
            return
        job = self.jobs[job_id]
        if body.get("status") == "completed":
            job["status"] = "completed"
        elif body.get("retryable") is not False and job["attempt_count"] <= job["max_retries"]:
            job.update(status="retrying", run_at=RETRY_AT)
        else:
            job["status"] = "failed"

    def _heartbeat(self, seen: Request) -> httpx.Response:
        """Lease extension: the lease is said to end the job's `timeout` (or `extend_seconds`)
        after 2026-01-15T09:00:00Z plus the virtual time of the request."""
        if not self.heartbeat_route:
            return _play(error_response(404, "not_found"))
        if self.heartbeat_script:
            return _play(self.heartbeat_script.popleft())
        execution_id = seen.path.split("/")[-2]
        if execution_id in self.results:
            return _play(error_response(409, "execution_already_finished"))
        seconds = seen.body.get("extend_seconds") or self._timeouts.get(execution_id, 30)
        ends = datetime(2026, 1, 15, 9, 0, tzinfo=UTC) + timedelta(seconds=seen.at + seconds)
        data = {
            "id": execution_id,
            "status": "running",
            "lease_expires_at": ends.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        return httpx.Response(
            200, json={"success": True, "message": "Lease extended", "data": data}
        )

    def _job(self, seen: Request) -> httpx.Response:
        if self.job_script:
            return _play(self.job_script.popleft())
        job = self.jobs.get(seen.path.removeprefix(JOB_PREFIX))
        if job is None:
            return _play(error_response(404, "job_not_found"))
        return httpx.Response(200, json={"success": True, "message": "Job", "data": job})

    def _report(self, seen: Request) -> httpx.Response:
        if self.report_script:
            response = _play(self.report_script.popleft())
            if not response.is_success:
                return response
        execution_id = seen.path.split("/")[-2]
        if execution_id in self.results:
            return _play(error_response(409, "execution_already_finished"))
        self._finish(execution_id, seen.body)
        self.reports.append(seen)
        return httpx.Response(200, json={"success": True, "message": "Reported", "data": {}})

    def _batch_report(self, seen: Request) -> httpx.Response:
        if not self.batch_reports:
            return _play(error_response(self.missing_route_status, "not_found"))
        if self.batch_script:
            response = _play(self.batch_script.popleft())
            if not response.is_success:
                return response
        items = seen.body.get("results")
        if not isinstance(items, list) or not 1 <= len(items) <= 100:
            return _validation_error("results", "must hold 1 to 100 items")
        verdicts = [self._batch_item(dict(item)) for item in items]
        self.batches.append(seen)
        return httpx.Response(200, json={"success": True, "message": "Results", "data": verdicts})

    def _batch_item(self, item: dict[str, Any]) -> dict[str, Any]:
        execution_id = item.pop("execution_id")
        code = self.item_errors.get(execution_id)
        if code is None and execution_id in self.results:
            code = "execution_already_finished"
        if code is not None:
            message = code.replace("_", " ").capitalize()
            return {
                "execution_id": execution_id,
                "success": False,
                "code": code,
                "message": message,
            }
        self._finish(execution_id, item)
        return {"execution_id": execution_id, "success": True, "data": {"id": execution_id}}

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


def _play(item: Scripted) -> httpx.Response:
    if isinstance(item, Exception):
        raise item
    return item


def error_response(status: int, code: str, headers: Mapping[str, str] | None = None) -> Scripted:
    body = {"success": False, "message": f"HTTP {status}", "code": code, "errors": []}
    return httpx.Response(status, json=body, headers=headers)


def _validation_error(field: str, message: str) -> httpx.Response:
    body = {
        "success": False,
        "message": "Validation failed",
        "code": "validation_error",
        "errors": [{"field": field, "message": message}],
    }
    return httpx.Response(422, json=body)


class RecordingLogger:
    """A Node-style logger (`method(message, meta)`) that keeps what it was told."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, Mapping[str, object]]] = []

    def debug(self, message: str, meta: Mapping[str, object], /) -> None:
        self.records.append(("debug", message, meta))

    def info(self, message: str, meta: Mapping[str, object], /) -> None:
        self.records.append(("info", message, meta))

    def warning(self, message: str, meta: Mapping[str, object], /) -> None:
        self.records.append(("warning", message, meta))

    def error(self, message: str, meta: Mapping[str, object], /) -> None:
        self.records.append(("error", message, meta))

    def messages(self, level: str) -> list[str]:
        return [message for lvl, message, _ in self.records if lvl == level]


def exactly(message: str) -> str:
    """A `pytest.raises(match=...)` pattern for this exact message."""
    return f"^{re.escape(message)}$"

"""The worker endpoints over HTTP: claim a job, report a result (§10.2, §10.4), the two
batch extensions (claim up to `max_jobs` jobs at once, report many results in one request), and
`GET /v1/jobs/:id` (§5.8), read after a failed attempt to learn whether the job is retried.

Requests go through a `transport.Sender` (httpx, or the worker's lean HTTP/1.1 client); this
module maps every outcome to the SDK's tree: 401/403 -> `ChronosAuthError`; no answer, timeout,
other non-2xx or a malformed answer -> `ChronosRequestError` (with `status`, the envelope's
`code` and, for 429 and 503, `retry_after`). Each request is bounded by a Trio cancel scope at
the call site, so `MockClock` governs it and `stop()` can cancel it. Request bodies are bytes
built once where they do not change (a claim's body is the same every time).
A server without the extensions refuses `max_jobs` with 422 and has no batch report route (404
or 405); those come back as `ChronosRequestError` like any refusal, the worker decides. The
timed start extension is asked for (`timed_start` in the claim) only once a claim's answer has
offered it (its `Chronos-Timed-Start` header), so a server without it never sees the field.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any
from urllib.parse import quote

import trio

from .context import ChronosContext, parse_job, start_in
from .errors import ChronosAuthError, ChronosRequestError
from .outcome import encode_json
from .settings import WorkerSettings
from .transport import Answer, Sender, SendError, open_sender

CLAIM_PATH = "/v1/worker/jobs/claim"
REPORT_PATH = "/v1/worker/executions/{execution_id}/result"
BATCH_REPORT_PATH = "/v1/worker/executions/results"
HEARTBEAT_PATH = "/v1/worker/executions/{execution_id}/heartbeat"
JOB_PATH = "/v1/jobs/{job_id}"
TIMED_START_HEADER = "chronos-timed-start"  # a claim's answer offers the timed start
MAX_BATCH = 100  # the server's bound for `max_jobs` and for the items of one batch report
# The server holds a claim up to `wait_time_seconds`; allow this much more for the answer.
CLAIM_MARGIN_SECONDS = 10.0
REPORT_TIMEOUT_SECONDS = 30.0
LOOKUP_TIMEOUT_SECONDS = 10.0
HEARTBEAT_TIMEOUT_SECONDS = 10.0
USER_AGENT = "chronos-worker-python/0.1"
MAX_WORKER_LABEL = 255


def worker_label() -> str:
    """`<hostname>:<pid>`, the free-form label sent with every claim."""
    return f"{socket.gethostname()}:{os.getpid()}"[:MAX_WORKER_LABEL]


@dataclass(frozen=True)
class ItemResult:
    """The server's verdict on one item of a batch report; `code`/`message` when refused."""

    execution_id: str
    accepted: bool
    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class Claimed:
    """A claimed job, and when to start it: `start_in` seconds after its answer arrived (a job
    handed over before its due instant, under the timed start extension), else at once."""

    ctx: ChronosContext
    start_in: float = 0.0


@dataclass(frozen=True)
class JobState:
    """What `GET /v1/jobs/:id` says about a job: its `status` and `run_at` (when it runs next)."""

    status: str
    run_at: str | None


class WorkerAPI:
    """Claim and report calls for one worker, over a `Sender` it does not own."""

    def __init__(self, sender: Sender, settings: WorkerSettings) -> None:
        self._sender = sender
        self._settings = settings
        self._label = worker_label()
        self._claim_bodies: dict[tuple[tuple[str, ...], int | None, bool], bytes] = {}
        # The server offered the timed start (a claim's answer said so): claims ask for it.
        # Not with concurrency 1, which speaks the spec's one-job protocol exactly.
        self.timed_start = False
        self._extensions = settings.concurrency > 1

    async def claim(self, handlers: Sequence[str]) -> Claimed | None:
        """Long-poll for one job; None when the server had nothing within the wait time."""
        answer = await self._claim(handlers, None)
        if answer.status == 204:
            return None
        data = _data(answer, "claim")
        if data is None:
            return None
        if not isinstance(data, dict):
            raise ChronosRequestError("Malformed claim response: data is not an object", 200)
        return _claimed(data)

    async def claim_batch(self, handlers: Sequence[str], max_jobs: int) -> list[Claimed]:
        """Extension: long-poll for up to `max_jobs` (1-100) jobs; [] when none came in time."""
        answer = await self._claim(handlers, max_jobs)
        if answer.status == 204:
            return []
        data = _data(answer, "claim")
        if data is None:
            return []
        if not isinstance(data, list) or not all(isinstance(job, dict) for job in data):
            raise ChronosRequestError("Malformed claim response: data is not a list of jobs", 200)
        if len(data) > max_jobs:
            raise ChronosRequestError(f"Malformed claim response: over {max_jobs} jobs", 200)
        return [_claimed(job) for job in data]

    async def _claim(self, handlers: Sequence[str], max_jobs: int | None) -> Answer:
        wait = self._settings.poll_wait_time_seconds
        key = (tuple(handlers), max_jobs, self.timed_start)
        body = self._claim_bodies.get(key)
        if body is None:
            fields: dict[str, object] = {
                "handlers": list(handlers),
                "wait_time_seconds": wait,
                "worker": self._label,
            }
            if max_jobs is not None:
                fields["max_jobs"] = max_jobs
            if self.timed_start:
                fields["timed_start"] = True
            body = self._claim_bodies[key] = encode_json(fields)
        answer = await self._post(CLAIM_PATH, body, wait + CLAIM_MARGIN_SECONDS)
        if self._extensions and not self.timed_start and TIMED_START_HEADER in answer.headers:
            self.timed_start = True
        return answer

    async def report(self, execution_id: str, body: bytes) -> None:
        """Send one result report; returns on any 2xx."""
        path = REPORT_PATH.format(execution_id=quote(execution_id, safe=""))
        await self._post(path, body, REPORT_TIMEOUT_SECONDS)

    async def report_batch(self, reports: Sequence[tuple[str, bytes]]) -> list[ItemResult]:
        """Extension: send (execution_id, report body) pairs in one request (1-100 of them);
        returns the server's verdict on each, in the same order."""
        items = [result_item(eid, body) for eid, body in reports]
        payload = b'{"results":[' + b",".join(items) + b"]}"
        answer = await self._post(BATCH_REPORT_PATH, payload, REPORT_TIMEOUT_SECONDS)
        data = _data(answer, "batch report")
        if not isinstance(data, list) or len(data) != len(reports):
            raise ChronosRequestError(
                "Malformed batch report response: data is not one item per report", 200
            )
        return [_item_result(item, eid) for item, (eid, _) in zip(data, reports, strict=True)]

    async def heartbeat(self, execution_id: str, extend_seconds: int | None) -> str:
        """Extension: extend a running execution's lease; its new end (ISO 8601)."""
        path = HEARTBEAT_PATH.format(execution_id=quote(execution_id, safe=""))
        body = b"{}" if extend_seconds is None else encode_json({"extend_seconds": extend_seconds})
        data = _data(await self._post(path, body, HEARTBEAT_TIMEOUT_SECONDS), "heartbeat")
        ends = data.get("lease_expires_at") if isinstance(data, dict) else None
        if not isinstance(ends, str):
            raise ChronosRequestError("Malformed heartbeat response: no lease_expires_at", 200)
        return ends

    async def get_job(self, job_id: str) -> JobState:
        """The job's current `status` and `run_at` (one try, no retry)."""
        path = JOB_PATH.format(job_id=quote(job_id, safe=""))
        data = _data(await self._request("GET", path, None, LOOKUP_TIMEOUT_SECONDS), "job")
        status = data.get("status") if isinstance(data, dict) else None
        if not isinstance(status, str):
            raise ChronosRequestError("Malformed job response: no status", 200)
        run_at = data.get("run_at")
        return JobState(status, run_at if isinstance(run_at, str) else None)

    async def _post(self, path: str, body: bytes, limit_s: float) -> Answer:
        return await self._request("POST", path, body, limit_s)

    async def _request(self, method: str, path: str, body: bytes | None, limit_s: float) -> Answer:
        try:
            with trio.fail_after(limit_s):
                answer = await self._sender.send(method, path, body, limit_s)
        except trio.TooSlowError as exc:
            raise ChronosRequestError(f"{method} {path} timed out after {limit_s:g} s") from exc
        except SendError as exc:
            raise ChronosRequestError(f"{method} {path} failed: {exc}") from exc
        status = answer.status
        if 200 <= status < 300:
            return answer
        if status in (401, 403):
            raise ChronosAuthError(f"{_error_text(answer)} (HTTP {status})", status)
        raise ChronosRequestError(
            f"{method} {path} answered HTTP {status}: {_error_text(answer)}",
            status,
            _retry_after(answer) if status in (429, 503) else None,
            _error_code(answer),
        )


def _claimed(data: dict[str, Any]) -> Claimed:
    try:
        return Claimed(parse_job(data), start_in(data))
    except ValueError as exc:
        raise ChronosRequestError(f"Malformed claim response: {exc}", 200) from exc


def result_item(execution_id: str, body: bytes) -> bytes:
    """A report body with its `execution_id`: an item of a batch report or a channel's
    `results` message. A report body is a JSON object that always has `status`, so `{` + id +
    `,` + the rest."""
    return b'{"execution_id":' + encode_basestring_ascii(execution_id).encode() + b"," + body[1:]


def _headers(settings: WorkerSettings) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {settings.api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }


@asynccontextmanager
async def open_worker_api(settings: WorkerSettings) -> AsyncIterator[WorkerAPI]:
    """A `WorkerAPI` over the injected client, or over a connection pool opened (and closed)
    here (see `transport.open_sender`)."""
    async with open_sender(settings, _headers(settings)) as sender:
        yield WorkerAPI(sender, settings)


def _json(answer: Answer) -> Any:
    """The body as JSON; `ValueError` if it is not."""
    return json.loads(answer.body)


def _data(answer: Answer, what: str) -> Any:
    """The envelope's `data`, of any type; `ChronosRequestError` if there is none."""
    try:
        envelope = _json(answer)
    except ValueError as exc:
        raise ChronosRequestError(f"Malformed {what} response: not JSON", 200) from exc
    if not isinstance(envelope, dict) or "data" not in envelope:
        raise ChronosRequestError(f"Malformed {what} response: no data field", 200)
    return envelope["data"]


def _item_result(item: object, execution_id: str) -> ItemResult:
    if not isinstance(item, dict) or not isinstance(success := item.get("success"), bool):
        raise ChronosRequestError("Malformed batch report response: bad item", 200)
    if success:
        return ItemResult(execution_id, accepted=True)
    code, message = item.get("code"), item.get("message")
    return ItemResult(
        execution_id,
        accepted=False,
        code=code if isinstance(code, str) else "",
        message=message if isinstance(message, str) else "",
    )


def _text(answer: Answer) -> str:
    return answer.body.decode("utf-8", "replace")[:200]


def _error_text(answer: Answer) -> str:
    """The envelope's `code: message` when there is one, else the start of the body."""
    try:
        envelope = _json(answer)
    except ValueError:
        return _text(answer) or answer.reason
    if isinstance(envelope, dict) and isinstance(envelope.get("message"), str):
        code = envelope.get("code")
        return f"{code}: {envelope['message']}" if isinstance(code, str) else envelope["message"]
    return _text(answer)


def _error_code(answer: Answer) -> str | None:
    """The envelope's `code` (e.g. `lease_expired`), if the answer has one."""
    try:
        envelope = _json(answer)
    except ValueError:
        return None
    code = envelope.get("code") if isinstance(envelope, dict) else None
    return code if isinstance(code, str) else None


def _retry_after(answer: Answer) -> float | None:
    """`Retry-After` in seconds (G-37 sends an integer); None when absent or unusable."""
    try:
        seconds = float(answer.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None

"""In-process fakes for worker tests: a scripted Chronos server behind `httpx.MockTransport`
and a Node-style logger that records its calls."""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import trio

SCHEDULED_FOR = "2026-01-15T09:00:00.000Z"
LEASE_EXPIRES_AT = "2026-01-15T09:00:31.120Z"

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
    every report. `claim_script` / `report_script` hold canned answers (or exceptions to
    raise, e.g. `httpx.ConnectError`) used, in order, before the normal behaviour."""

    def __init__(self) -> None:
        self.queue: deque[dict[str, Any]] = deque()
        self.claims: list[Request] = []
        self.report_attempts: list[Request] = []
        self.reports: list[Request] = []  # accepted ones only
        self.claim_script: deque[Scripted] = deque()
        self.report_script: deque[Scripted] = deque()
        self._changed = trio.Event()
        self._count = 0

    def add_job(self, handler: str = "test.job", payload: Any = None, **extra: Any) -> str:
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
        self._notify()
        return str(job["execution_id"])

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Block until `predicate()` holds; re-checked after every request."""
        while not predicate():
            await self._changed.wait()

    def reported(self, execution_id: str) -> dict[str, Any]:
        [report] = [r for r in self.reports if r.path.endswith(f"/{execution_id}/result")]
        return report.body

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        seen = Request(request.url.path, request.headers, body, trio.current_time())
        try:
            if request.url.path == "/v1/worker/jobs/claim":
                self.claims.append(seen)
                self._notify()
                return await self._claim(body)
            self.report_attempts.append(seen)
            return self._report(seen)
        finally:
            self._notify()

    async def _claim(self, body: Mapping[str, Any]) -> httpx.Response:
        if self.claim_script:
            return _play(self.claim_script.popleft())
        with trio.move_on_after(body["wait_time_seconds"]):
            while not self.queue:
                await self._changed.wait()
        data = self.queue.popleft() if self.queue else None
        return httpx.Response(200, json={"success": True, "message": "Claim", "data": data})

    def _report(self, seen: Request) -> httpx.Response:
        if self.report_script:
            response = _play(self.report_script.popleft())
            if not response.is_success:
                return response
        self.reports.append(seen)
        return httpx.Response(200, json={"success": True, "message": "Reported", "data": {}})

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

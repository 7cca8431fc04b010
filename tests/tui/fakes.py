"""An in-memory `DashboardAPI` with fixed data and a fixed clock, for Pilot tests and snapshots.

It keeps the server's observable rules that the screens rely on (newest first, cancel only from
open states, archive cancels open jobs, run-now and create add a pending job, pages of `size`)
and records every mutating call in `calls`. `workers_doc` answers `GET /v1/workers`; None plays
a server without it, as `ChronosAPI` reports one (after its one 404).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from chronos_tui.api import RequestFailed, ServerUnreachable
from chronos_worker.models import (
    CANCELLABLE_STATES,
    Account,
    Execution,
    ExecutionError,
    ExecutionStatus,
    HandlerStats,
    Interval,
    Job,
    JobStatus,
    MinuteThroughput,
    Page,
    Schedule,
    ScheduleStatus,
    Stats,
    Workers,
)

NOW = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
T = TypeVar("T")


def fixed_now() -> datetime:
    return NOW


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def make_schedule(name: str, handler: str, **overrides: Any) -> Schedule:
    base: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "s/" + name)),
        "name": name,
        "handler": handler,
        "interval": Interval(value=2, unit="second"),
        "timezone": "UTC",
        "delivery": {"type": "pull"},
        "payload": {"hello": "world"},
        "timeout": 30,
        "max_retries": 3,
        "status": ScheduleStatus.ACTIVE,
        "run_count": 42,
        "next_run_at": NOW + timedelta(seconds=2),
        "last_run_at": ago(0),
        "created_at": ago(3600),
    }
    return Schedule(**(base | overrides))


def make_job(name: str, handler: str, status: JobStatus, age: float, **overrides: Any) -> Job:
    finished = status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
    base: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"j/{name}/{status}/{age}")),
        "name": name,
        "handler": handler,
        "delivery": {"type": "pull"},
        "payload": {"n": int(age)},
        "timeout": 30,
        "max_retries": 3,
        "status": status,
        "scheduled_for": ago(age),
        "run_at": ago(age),
        "attempt_count": 1 if finished or status is JobStatus.RUNNING else 0,
        "created_at": ago(age),
        "finished_at": ago(age - 1) if finished else None,
    }
    return Job(**(base | overrides))


def make_execution(job: Job, status: ExecutionStatus, age: float, **overrides: Any) -> Execution:
    base: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"e/{job.id}/{age}")),
        "job_id": job.id,
        "attempt": 1,
        "trigger": "schedule",
        "status": status,
        "started_at": ago(age),
        "finished_at": None if status is ExecutionStatus.RUNNING else ago(age - 0.012),
        "duration_ms": None if status is ExecutionStatus.RUNNING else 12,
        "worker": "demo-host:4242",
        "result": {"ok": True} if status is ExecutionStatus.COMPLETED else None,
        "error": (
            ExecutionError(message="boom", name="RuntimeError")
            if status is ExecutionStatus.FAILED
            else None
        ),
    }
    return Execution(**(base | overrides))


def fixed_stats() -> Stats:
    throughput = [
        MinuteThroughput(
            minute=NOW - timedelta(minutes=59 - i), completed=(i * 7) % 31, failed=i % 13 == 0
        )
        for i in range(60)
    ]
    counts = {
        "demo.tick": {
            JobStatus.PENDING: 1,
            JobStatus.READY: 0,
            JobStatus.RUNNING: 1,
            JobStatus.COMPLETED: 1700,
            JobStatus.FAILED: 3,
        },
        "send-report": {JobStatus.READY: 4, JobStatus.RETRYING: 2, JobStatus.CANCELLED: 1},
    }
    handlers = [
        HandlerStats(handler="demo.tick", counts=counts["demo.tick"], oldest_ready_age_ms=None),
        HandlerStats(
            handler="send-report",
            counts=counts["send-report"],
            oldest_ready_at=ago(95),
            oldest_ready_age_ms=95_000,
        ),
    ]
    totals = {s: sum(c.get(s, 0) for c in counts.values()) for s in JobStatus}
    return Stats(
        generated_at=NOW, window_minutes=60, handlers=handlers, totals=totals, throughput=throughput
    )


def fixed_workers() -> Workers:
    """Two channels serve demo.tick (5 credits free); send-report has none; a worker for
    send-mail is saturated (no credit left)."""
    return Workers.model_validate(
        {
            "channels": [
                {"worker": "tick-1:11", "handlers": ["demo.tick"], "credits": 3,
                 "connected_at": ago(600)},
                {"worker": "tick-2:12", "handlers": ["demo.tick"], "credits": 2,
                 "connected_at": ago(300)},
                {"worker": "mail:13", "handlers": ["send-mail"], "credits": 0,
                 "connected_at": ago(60)},
            ],
            "handlers": [
                {"handler": "demo.tick", "channels": 2, "credits": 5},
                {"handler": "send-mail", "channels": 1, "credits": 0},
            ],
        }
    )  # fmt: skip


def window(
    items: Sequence[T], size: int, page: int, cursor: str | None = None, cursors: bool = True
) -> Page[T]:
    """Page `page` (from 1) of `items`, or the page after the row a `cursor` names, as the server
    cuts them; with `cursors`, each page but the last gives the cursor of its last row."""
    start = (page - 1) * size
    if cursor is not None:
        start = next(i for i, item in enumerate(items) if getattr(item, "id", None) == cursor) + 1
    found = tuple(items[start : start + size])
    more = cursors and start + size < len(items) and bool(found)
    return Page(
        found,
        len(items),
        next_cursor=str(getattr(found[-1], "id", "")) if more else None,
    )


@dataclass
class FakeAPI:
    """`DashboardAPI` over lists held in memory; set `down` to simulate an unreachable server."""

    schedules: list[Schedule] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    stats_doc: Stats = field(default_factory=fixed_stats)
    workers_doc: Workers | None = field(default_factory=fixed_workers)
    down: bool = False
    limited: bool = False  # answer `stats` with HTTP 429, Retry-After 30 s
    stats_calls: int = 0
    account_doc: Account = field(
        default_factory=lambda: Account(id=str(uuid.uuid5(uuid.NAMESPACE_URL, "a")), name="default")
    )
    account_calls: int = 0
    workers_calls: int = 0
    schedule_gets: int = 0
    calls: list[tuple[str, str]] = field(default_factory=list)
    created: dict[str, Any] = field(default_factory=dict)  # the last `create_job` body
    closed: bool = False
    cursors: bool = True  # False: an older server without keyset paging
    pages_asked: list[tuple[int, str | None]] = field(default_factory=list)  # (page, cursor)

    @property
    def base_url(self) -> str:
        return "http://chronos.test"

    def _check(self) -> None:
        if self.down:
            raise ServerUnreachable("cannot reach http://chronos.test: connection refused")

    async def aclose(self) -> None:
        self.closed = True

    async def stats(self, window_minutes: int = 60) -> Stats:
        self._check()
        self.stats_calls += 1
        if self.limited:
            raise RequestFailed("Rate limit exceeded (HTTP 429)", 429, "rate_limit_exceeded", 30.0)
        return self.stats_doc

    async def account(self) -> Account:
        self._check()
        self.account_calls += 1
        return self.account_doc

    async def workers(self) -> Workers | None:
        self._check()
        self.workers_calls += 1
        return self.workers_doc

    async def list_schedules(
        self,
        *,
        status: str | None = None,
        handler: str | None = None,
        size: int = 50,
        page: int = 1,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        self._check()
        found = [
            s
            for s in self.schedules
            if (status is None or s.status == status) and (handler is None or s.handler == handler)
        ]
        return self._window(found, size, page, cursor)

    async def get_schedule(self, schedule_id: str) -> Schedule:
        self._check()
        self.schedule_gets += 1
        return self._schedule(schedule_id)

    async def archive_schedule(self, schedule_id: str) -> Schedule:
        self.calls.append(("archive", schedule_id))
        found = self._schedule(schedule_id)
        if found.status is not ScheduleStatus.ACTIVE:
            raise RequestFailed("Schedule is archived (HTTP 409)", 409, "schedule_archived")
        archived = found.model_copy(update={"status": ScheduleStatus.ARCHIVED, "archived_at": NOW})
        self.schedules = [archived if s.id == schedule_id else s for s in self.schedules]
        for job in list(self.jobs):
            if job.schedule_id == schedule_id and job.status in CANCELLABLE_STATES:
                self._replace_job(job.model_copy(update={"status": JobStatus.CANCELLED}))
        return archived

    async def pause_schedule(self, schedule_id: str) -> Schedule:
        self.calls.append(("pause", schedule_id))
        return self._set_schedule(schedule_id, paused_at=NOW)

    async def resume_schedule(self, schedule_id: str) -> Schedule:
        self.calls.append(("resume", schedule_id))
        return self._set_schedule(schedule_id, paused_at=None)

    def _set_schedule(self, schedule_id: str, **fields: Any) -> Schedule:
        changed = self._schedule(schedule_id).model_copy(update=fields)
        self.schedules = [changed if s.id == schedule_id else s for s in self.schedules]
        return changed

    async def run_schedule(self, schedule_id: str) -> Job:
        self.calls.append(("run", schedule_id))
        s = self._schedule(schedule_id)
        job = make_job(s.name, s.handler or "", JobStatus.PENDING, 0, schedule_id=s.id)
        job = job.model_copy(update={"id": str(uuid.uuid4())})
        self.jobs.insert(0, job)
        return job

    async def list_jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        handler: str | None = None,
        schedule_id: str | None = None,
        size: int = 50,
        page: int = 1,
        cursor: str | None = None,
    ) -> Page[Job]:
        self._check()
        found = [
            j
            for j in self.jobs
            if (not statuses or j.status in statuses)
            and (handler is None or j.handler == handler)
            and (schedule_id is None or j.schedule_id == schedule_id)
        ]
        return self._window(found, size, page, cursor)

    async def get_job(self, job_id: str) -> Job:
        self._check()
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise RequestFailed("Job not found (HTTP 404)", 404, "job_not_found")

    async def cancel_job(self, job_id: str) -> Job:
        self.calls.append(("cancel", job_id))
        job = await self.get_job(job_id)
        if job.status not in CANCELLABLE_STATES:
            raise RequestFailed("Job cannot be cancelled (HTTP 409)", 409, "job_not_cancellable")
        done = job.model_copy(update={"status": JobStatus.CANCELLED, "finished_at": NOW})
        self._replace_job(done)
        return done

    async def create_job(self, body: Mapping[str, Any]) -> Job:
        self.calls.append(("create", str(body.get("name"))))
        self.created = dict(body)
        job = make_job(str(body["name"]), str(body.get("handler")), JobStatus.PENDING, 0)
        job = job.model_copy(update={"id": str(uuid.uuid4()), "payload": body.get("payload")})
        self.jobs.insert(0, job)
        return job

    async def list_executions(
        self,
        *,
        job_id: str | None = None,
        statuses: Sequence[str] = (),
        size: int = 50,
        page: int = 1,
        cursor: str | None = None,
    ) -> Page[Execution]:
        self._check()
        found = [
            e
            for e in self.executions
            if (job_id is None or e.job_id == job_id) and (not statuses or e.status in statuses)
        ]
        return self._window(found, size, page, cursor)

    async def get_execution(self, execution_id: str) -> Execution:
        self._check()
        for e in self.executions:
            if e.id == execution_id:
                return e
        raise RequestFailed("Execution not found (HTTP 404)", 404, "execution_not_found")

    def _window(self, found: Sequence[T], size: int, page: int, cursor: str | None) -> Page[T]:
        self.pages_asked.append((page, cursor))
        return window(found, size, page, cursor if self.cursors else None, self.cursors)

    def _schedule(self, schedule_id: str) -> Schedule:
        for s in self.schedules:
            if s.id == schedule_id:
                return s
        raise RequestFailed("Schedule not found (HTTP 404)", 404, "schedule_not_found")

    def _replace_job(self, job: Job) -> None:
        self.jobs = [job if j.id == job.id else j for j in self.jobs]


def demo_api() -> FakeAPI:
    """Two handlers: `demo.tick` busy and healthy, `send-report` with jobs nobody claims."""
    tick = make_schedule("demo tick", "demo.tick")
    report = make_schedule(
        "daily report", "send-report", interval=None, cron="0 9 * * 1-5", timezone="Europe/Paris"
    )
    jobs = [
        make_job("demo tick", "demo.tick", JobStatus.RUNNING, 0.5, schedule_id=tick.id),
        *(
            make_job("demo tick", "demo.tick", JobStatus.COMPLETED, 2 * i + 2, schedule_id=tick.id)
            for i in range(8)
        ),
        make_job("welcome mail", "send-mail", JobStatus.FAILED, 30, attempt_count=4),
        *(
            make_job("daily report", "send-report", JobStatus.READY, 95 - i, schedule_id=report.id)
            for i in range(4)
        ),
        make_job("daily report", "send-report", JobStatus.RETRYING, 200, schedule_id=report.id),
    ]
    jobs.sort(key=lambda j: j.created_at, reverse=True)
    executions: list[Execution] = []
    for job in jobs:
        if job.status is JobStatus.RUNNING:
            executions.append(make_execution(job, ExecutionStatus.RUNNING, 0.5))
        elif job.status is JobStatus.COMPLETED:
            age = (NOW - job.created_at).total_seconds()
            executions.append(make_execution(job, ExecutionStatus.COMPLETED, age - 0.01))
        elif job.status is JobStatus.FAILED:
            executions.append(make_execution(job, ExecutionStatus.FAILED, 30, trigger="api"))
            executions.append(
                make_execution(job, ExecutionStatus.TIMEOUT, 60, attempt=3, trigger="system_retry")
            )
    executions.sort(key=lambda e: e.started_at, reverse=True)
    return FakeAPI(schedules=[tick, report], jobs=jobs, executions=executions)

"""The API's resource objects (spec §4), the stats document and the extensions' objects, as
frozen pydantic models: the typed results of `chronos_worker.Client` / `AsyncClient`.

The client validates each `data` object into one of these at once; the TUI and the `chronos`
command work with these types. Unknown fields are ignored so a newer server does not break an
older client; fields of extensions a server may not have yet are optional. `payload`,
`delivery` and `result` stay JSON: the client carries them, it never interprets them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict


class JobStatus(StrEnum):
    PENDING = "pending"
    ADMITTING = "admitting"
    QUEUED = "queued"
    READY = "ready"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


PIPELINE_STATES = (
    JobStatus.PENDING,
    JobStatus.ADMITTING,
    JobStatus.QUEUED,
    JobStatus.READY,
    JobStatus.RUNNING,
    JobStatus.RETRYING,
)
TERMINAL_STATES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
CANCELLABLE_STATES = frozenset(
    {JobStatus.PENDING, JobStatus.ADMITTING, JobStatus.QUEUED, JobStatus.READY, JobStatus.RETRYING}
)


class ExecutionStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"


class ScheduleStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ARCHIVED = "archived"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Interval(_Model):
    value: int
    unit: str


class Schedule(_Model):
    id: str
    name: str
    description: str | None = None
    handler: str | None = None
    cron: str | None = None
    interval: Interval | None = None
    timezone: str
    runs: int | None = None
    stop_at: datetime | None = None
    delivery: dict[str, Any]
    payload: dict[str, Any] | None = None
    timeout: int
    max_retries: int
    status: ScheduleStatus
    run_count: int
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    created_at: datetime
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    archived_at: datetime | None = None
    # Extensions (README "Schedule policies"); absent on servers without them.
    catch_up: str | None = None
    catch_up_limit: int | None = None
    overlap: str | None = None
    paused_at: datetime | None = None


class Job(_Model):
    id: str
    schedule_id: str | None = None
    name: str
    description: str | None = None
    handler: str | None = None
    delivery: dict[str, Any]
    payload: dict[str, Any] | None = None
    timeout: int
    max_retries: int
    idempotency_key: str | None = None
    status: JobStatus
    scheduled_for: datetime
    run_at: datetime
    attempt_count: int
    last_execution_id: str | None = None
    created_at: datetime
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    # Extensions (issue 13): the last execution's error, and the job this one replays.
    last_error: str | None = None
    replay_of: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATES


class ExecutionError(_Model):
    message: str
    name: str | None = None
    stack: str | None = None


class Execution(_Model):
    id: str
    job_id: str
    attempt: int
    trigger: str
    status: ExecutionStatus
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: int | None = None
    lease_expires_at: datetime | None = None
    worker: str | None = None
    result: Any = None
    error: ExecutionError | None = None
    http_status: int | None = None
    response_body: str | None = None


class HandlerLimits(_Model):
    """A handler's limits (server extension; README "Handler limits"): in a stats row (no
    `handler`), and from `/v1/handlers/{name}/limits`."""

    handler: str | None = None
    max_running: int | None = None
    max_per_second: float | None = None
    updated_at: datetime | None = None


class HandlerStats(_Model):
    handler: str | None
    counts: dict[JobStatus, int]
    oldest_ready_at: datetime | None = None
    oldest_ready_age_ms: int | None = None
    # Absent from a server without handler limits: no limit, nothing held back.
    limits: HandlerLimits | None = None
    limited: int = 0  # `queued` jobs waiting for the limits
    queued_reason: str | None = None  # `max_running` or `max_per_second`

    def count(self, status: JobStatus) -> int:
        return self.counts.get(status, 0)

    @property
    def open_jobs(self) -> int:
        return sum(self.count(s) for s in PIPELINE_STATES)


class MinuteThroughput(_Model):
    minute: datetime
    completed: int
    failed: int


class Stats(_Model):
    generated_at: datetime
    window_minutes: int
    handlers: list[HandlerStats]
    totals: dict[JobStatus, int]
    throughput: list[MinuteThroughput]


class SigningSecretState(_Model):
    """Whether a signing-secret rotation is in progress: until `previous_sent_until`, deliveries
    are signed by the previous secret too (the API never shows the secrets themselves)."""

    rotating: bool = False
    previous_sent_until: datetime | None = None

    def rotating_at(self, now: datetime) -> bool:
        return self.previous_sent_until is not None and now < self.previous_sent_until


class Account(_Model):
    """`GET /v1/account` (extension): the API key's account."""

    id: str
    name: str
    timezone: str = "UTC"
    signing_secret: SigningSecretState = SigningSecretState()


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list endpoint: the items (newest first), `meta.paging.total` and what the
    next page is: `next_cursor` when the server pages by cursor, else `page`/`pages`."""

    items: tuple[T, ...]
    total: int
    page: int = 1
    pages: int = 1
    next_cursor: str | None = None
    total_estimated: bool = False

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None or self.page < self.pages


class HealthStatus(_Model):
    status: str


class BatchItem(_Model):
    """One entry of `POST /v1/jobs/batch`'s answer: the job, or why this item was refused."""

    success: bool
    data: Job | None = None
    code: str | None = None
    message: str | None = None
    errors: list[dict[str, Any]] = []


class ReplayResult(_Model):
    """`POST /v1/jobs/replay` (extension): how many jobs were replayed, and the new jobs' ids."""

    count: int
    job_ids: list[str]


class WorkerChannel(_Model):
    """One open worker channel (`GET /v1/worker/stream`) on the server process that answered."""

    worker: str | None = None
    handlers: list[str]
    credits: int
    connected_at: datetime


class HandlerWorkers(_Model):
    """Per handler: how many open channels serve it and their free credits (summed)."""

    handler: str
    channels: int
    credits: int


class Workers(_Model):
    """`GET /v1/workers` (an extension): the caller's open worker channels, on one process."""

    channels: list[WorkerChannel]
    handlers: list[HandlerWorkers]

    def for_handler(self, handler: str | None) -> HandlerWorkers | None:
        return next((h for h in self.handlers if h.handler == handler), None)

    @property
    def credits(self) -> int:
        return sum(c.credits for c in self.channels)

"""Domain records shared by the store, the loops and the API.

Times are integer Unix milliseconds (UTC) everywhere inside the server; the API layer converts
them to ISO 8601 strings on the way out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, NamedTuple, TypeVar

JSON = Any


class ScheduleStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ARCHIVED = "archived"


class CatchUp(StrEnum):
    """What a schedule spawns for slots it missed (downtime, or a pause): extension, README
    "Schedule policies". `latest` is the spec's G-27."""

    LATEST = "latest"
    NONE = "none"
    ALL = "all"


class Overlap(StrEnum):
    """What a slot does while an earlier job of its schedule is unfinished: extension, README
    "Schedule policies". `allow` is the spec's G-28."""

    ALLOW = "allow"
    SKIP = "skip"
    QUEUE = "queue"
    CANCEL_PREVIOUS = "cancel_previous"


DEFAULT_CATCH_UP_LIMIT = 10
MAX_CATCH_UP_LIMIT = 1_000


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


class ExecutionStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    API = "api"
    MANUAL = "manual"
    SYSTEM_RETRY = "system_retry"


class DeliveryType(StrEnum):
    PULL = "pull"
    PUSH = "push"


class IntervalUnit(StrEnum):
    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


UNIT_MS: dict[IntervalUnit, int] = {
    IntervalUnit.SECOND: 1_000,
    IntervalUnit.MINUTE: 60_000,
    IntervalUnit.HOUR: 3_600_000,
    IntervalUnit.DAY: 86_400_000,
    IntervalUnit.WEEK: 604_800_000,
}

TERMINAL_JOB_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
CANCELLABLE_JOB_STATUSES = frozenset(
    {JobStatus.PENDING, JobStatus.ADMITTING, JobStatus.QUEUED, JobStatus.READY, JobStatus.RETRYING}
)


@dataclass(frozen=True)
class Interval:
    value: int
    unit: IntervalUnit

    @property
    def ms(self) -> int:
        return self.value * UNIT_MS[self.unit]

    def to_json(self) -> dict[str, JSON]:
        return {"value": self.value, "unit": self.unit.value}


@dataclass(frozen=True)
class HttpTarget:
    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    # Extension: 4xx codes to retry instead of failing at once (e.g. 408, 429).
    retry_on_status: tuple[int, ...] = ()


@dataclass(frozen=True)
class Delivery:
    type: DeliveryType
    http: HttpTarget | None = None

    def to_json(self) -> dict[str, JSON]:
        if self.http is None:
            return {"type": self.type.value}
        http: dict[str, JSON] = {
            "url": self.http.url,
            "method": self.http.method,
            "headers": dict(self.http.headers),
        }
        if self.http.retry_on_status:
            http["retry_on_status"] = list(self.http.retry_on_status)
        return {"type": self.type.value, "http": http}

    @staticmethod
    def from_json(raw: dict[str, JSON]) -> Delivery:
        http = raw.get("http")
        target = None
        if http is not None:
            target = HttpTarget(
                url=str(http["url"]),
                method=str(http["method"]),
                headers={str(k): str(v) for k, v in (http.get("headers") or {}).items()},
                retry_on_status=tuple(int(c) for c in http.get("retry_on_status") or ()),
            )
        return Delivery(type=DeliveryType(raw["type"]), http=target)


PULL = Delivery(DeliveryType.PULL)


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    timezone: str
    signing_secret: str | None
    created_at: int


@dataclass(frozen=True)
class Schedule:
    id: str
    account_id: str
    name: str
    description: str | None
    handler: str | None
    cron: str | None
    interval: Interval | None
    timezone: str
    runs: int | None
    stop_at: int | None
    delivery: Delivery
    payload: dict[str, JSON] | None
    timeout: int
    max_retries: int
    status: ScheduleStatus
    run_count: int
    next_run_at: int | None
    last_run_at: int | None
    anchor_at: int
    created_at: int
    updated_at: int
    completed_at: int | None = None
    archived_at: int | None = None
    catch_up: CatchUp = CatchUp.LATEST
    catch_up_limit: int = DEFAULT_CATCH_UP_LIMIT
    overlap: Overlap = Overlap.ALLOW
    # Paused (an active schedule that spawns nothing): when, and the slot it had not spawned yet
    # then (`next_run_at` is None meanwhile). Both None unless paused.
    paused_at: int | None = None
    paused_next_run_at: int | None = None

    @property
    def pending_slot(self) -> int | None:
        """The first slot not spawned yet, paused or not (`next_run_at` is None while paused)."""
        return self.paused_next_run_at if self.paused_at is not None else self.next_run_at


@dataclass(frozen=True)
class Job:
    id: str
    account_id: str
    schedule_id: str | None
    name: str
    description: str | None
    handler: str | None
    delivery: Delivery
    payload: dict[str, JSON] | None
    timeout: int
    max_retries: int
    idempotency_key: str | None
    status: JobStatus
    scheduled_for: int
    run_at: int
    attempt_count: int
    last_execution_id: str | None
    first_trigger: Trigger
    created_at: int
    updated_at: int
    finished_at: int | None = None
    # A `pending` job of an `overlap: queue` schedule that waits for the earlier jobs of its
    # schedule to finish before admission may take it (stored with status `held`).
    held: bool = False
    # The last finished execution's error, one line (`describe_failure`); None after a success.
    last_error: str | None = None
    # The job this one re-runs (`POST /v1/jobs/:id/replay`), if any.
    replay_of: str | None = None


@dataclass(frozen=True)
class ExecutionError:
    message: str
    name: str | None = None
    stack: str | None = None

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"message": self.message}
        if self.name is not None:
            out["name"] = self.name
        if self.stack is not None:
            out["stack"] = self.stack
        return out


@dataclass(frozen=True)
class Execution:
    id: str
    job_id: str
    account_id: str
    attempt: int
    trigger: Trigger
    status: ExecutionStatus
    started_at: int
    finished_at: int | None
    duration_ms: int | None
    lease_expires_at: int | None
    worker: str | None
    result: JSON
    error: ExecutionError | None
    http_status: int | None = None
    response_body: str | None = None


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker receives from a claim: the job snapshot plus its new execution."""

    job: Job
    execution: Execution


@dataclass(frozen=True)
class Outcome:
    """A reported (pull) or observed (push) end of one execution."""

    status: ExecutionStatus
    result: JSON = None
    error: ExecutionError | None = None
    retryable: bool = True
    http_status: int | None = None
    response_body: str | None = None
    retry_after_ms: int | None = None  # a receiver's Retry-After, used instead of the backoff


# `Job.last_error` is a summary for lists, not the record: the execution keeps the whole error.
LAST_ERROR_MAX_CHARS = 500


def describe_failure(outcome: Outcome) -> str | None:
    """`Job.last_error` after this outcome: None for a success; for a push answer its HTTP
    status and the start of its body (`HTTP 503: busy`); otherwise the error as
    `Name: message` (a timeout, a network error, a handler's exception)."""
    if outcome.status is ExecutionStatus.COMPLETED:
        return None
    if outcome.http_status is not None:
        text = f"HTTP {outcome.http_status}"
        body = " ".join((outcome.response_body or "").split())
        if body:
            text += f": {body}"
    elif outcome.error is not None:
        name, message = outcome.error.name, " ".join(outcome.error.message.split())
        text = f"{name}: {message}" if name else message
    else:
        text = outcome.status.value
    if len(text) > LAST_ERROR_MAX_CHARS:
        text = text[: LAST_ERROR_MAX_CHARS - 1] + "…"
    return text


class ObservedOutcome(NamedTuple):
    """A push attempt's outcome and when it ended as the sender saw it (response read, error
    raised, timeout hit): the execution's `finished_at`, not the later time its batch is
    written (outcomes are group-committed)."""

    execution_id: str
    outcome: Outcome
    ended_at: int


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    # `total` is an estimate (the list is too long to count on every request).
    estimated: bool = False
    # More rows follow the last item (keyset paging hands out a cursor only then).
    more: bool = False

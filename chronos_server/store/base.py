"""The `Store` protocol: the one narrow seam between the server and its database.

Every method is one transaction. Every state write is compare-and-set on the expected current
state; a write that finds another state changes nothing and says so (returns False/None or raises
the specific ChronosError). Time always comes in as `now` (Unix ms) from the caller's clock.
One conformance suite (tests/store/) runs against every implementation.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import trio

from chronos_server.core.limits import HandlerLimit
from chronos_server.core.models import (
    Account,
    ClaimedJob,
    Execution,
    ExecutionStatus,
    Job,
    JobStatus,
    ObservedOutcome,
    Outcome,
    Page,
    Schedule,
    ScheduleStatus,
)
from chronos_server.errors import ChronosError


@dataclass(frozen=True)
class ReadyBatch:
    """Jobs a dispatch pass made claimable, grouped for waking exactly that many claimers."""

    account_id: str
    handler: str
    count: int


@dataclass(frozen=True)
class Admitted:
    """What one admission pass did, in one transaction: slots spawned, jobs made `ready` (to
    wake that many claimers), push jobs `queued` for the sender, and the next due time."""

    spawned: int
    ready: list[ReadyBatch]
    queued_push: int
    taken: int  # due jobs moved on (ready, queued or cancelled)
    next_wakeup: int | None  # the next due time (a push job's less the push lead)
    released: int = 0  # held jobs (`overlap: queue`) whose turn came: now `pending`, due
    # The (account, handler) of the next due pull job, where the store's claims can take a due
    # job straight from `pending` (PostgreSQL): admission wakes a claimer of it at that instant.
    next_claimable: tuple[str, str] | None = None
    # Jobs of limited handlers this pass let go on (already counted in `ready`/`queued_push`),
    # and whether a handler had a whole batch to let go (the caller looks again at once).
    limited_released: int = 0
    limited_more: bool = False


@dataclass
class Released:
    """What a release of jobs waiting for their handler's limits did: pull jobs made `ready`
    (claimers to wake), push jobs `queued` for the sender, and when the next token lets a
    rate-limited handler's next job go (the caller wakes then; nothing polls meanwhile)."""

    ready: list[ReadyBatch] = field(default_factory=list)
    queued_push: int = 0
    next_wakeup: int | None = None
    more: bool = False  # a handler released a whole batch: look again at once

    @property
    def count(self) -> int:
        return sum(b.count for b in self.ready) + self.queued_push


@dataclass(frozen=True)
class ReplayFilter:
    """Which finished jobs a bulk replay re-runs: `statuses` (terminal ones only), optionally a
    handler, a schedule and a window on `finished_at` (`since` inclusive, `until` exclusive);
    at most `limit`, the earliest finished first. Jobs replayed before are left out, so the
    same request made again replays the next ones, never the same twice."""

    statuses: frozenset[JobStatus]
    handler: str | None = None
    schedule_id: str | None = None
    since: int | None = None
    until: int | None = None
    limit: int = 100


@dataclass(frozen=True)
class TimedOut:
    """An execution the sweep timed out, and what became of its job (for the log)."""

    execution: Execution
    handler: str | None
    job_status: JobStatus
    delivery: str = "pull"


@dataclass(frozen=True)
class SweepResult:
    timed_out: int
    recovered_admitting: int
    timeouts: tuple[TimedOut, ...] = ()
    # When the first lease still running after this sweep ends (None: nothing runs); the
    # sweeper sleeps until then, or less (`loops.sweeper.next_sweep_in`).
    next_lease_end: int | None = None


@dataclass(frozen=True)
class Stats:
    """Aggregates for the dashboard, all from indexed queries (no job rows are loaded)."""

    counts: dict[tuple[str | None, JobStatus], int]
    oldest_ready: dict[str | None, int]
    per_minute: dict[tuple[int, JobStatus], int]
    # Per-handler limits: the account's, and how many `queued` jobs wait for them (`limited`).
    limits: dict[str, HandlerLimit] = field(default_factory=dict)
    limited: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Pruned:
    """What one retention batch deleted (or a dry run would delete): jobs per status, their
    executions, ended schedules, and the ids of the jobs deleted (empty for a dry run)."""

    jobs: dict[str, int]
    executions: int
    schedules: int
    job_ids: tuple[str, ...] = ()

    @property
    def total_jobs(self) -> int:
        return sum(self.jobs.values())


@dataclass(frozen=True)
class ApiKeyInfo:
    """One API key as `chronos keys list` shows it (never the key or its hash)."""

    prefix: str
    account: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None


@dataclass(frozen=True)
class SigningSecrets:
    """An account's push signing secrets. `current` signs every delivery; after a rotation with
    an overlap, `previous` signs them too until `previous_until` (Unix ms, exclusive).

    The one decision here (is the previous secret still sent at `now`?) is made by the sender at
    send time with its injected clock, so nothing has to run when the overlap ends; the store
    clears an expired previous secret lazily (`drop_expired_signing_secrets`). It lives beside
    the store rather than on `core.models.Account` so that reading an account (every
    authenticated request, through the key cache) never carries the secrets around.
    """

    current: str | None
    previous: str | None = None
    previous_until: int | None = None

    def previous_at(self, now: int) -> str | None:
        """The previous secret if a delivery sent at `now` still carries its signature."""
        if self.previous is None or self.previous_until is None or now >= self.previous_until:
            return None
        return self.previous

    def rotating_until(self, now: int) -> int | None:
        """When the previous secret stops being sent, if it is still sent at `now`."""
        return self.previous_until if self.previous_at(now) is not None else None


class WakeBoard(Protocol):
    """Where a store delivers wake-ups that come from other server processes (the ClaimBoard)."""

    def notify(self, account_id: str, handler: str, count: int) -> int: ...
    def parked_keys(self) -> list[tuple[str, str]]: ...
    def limits_changed(self) -> None:
        """Another process changed a handler's limits (or we may have missed that it did)."""
        ...


class Store(Protocol):
    dialect: str

    async def close(self) -> None: ...
    async def ping(self) -> None: ...

    async def run_listener(
        self, board: WakeBoard, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver other processes' wake-ups to `board` until cancelled (started in the root
        nursery). A store that only ever has one process (SQLite) returns at once."""
        ...

    async def run_probe(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """While the database is known to be unreachable (calls raise `StoreUnavailable` at once),
        probe it and let calls through again once it answers; until cancelled (started in the
        root nursery). A store that cannot lose its database (SQLite: a file) returns at once."""
        ...

    async def run_checkpoints(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep the write-ahead log short from outside the writer, so that no write waits for a
        checkpoint; until cancelled (started in the root nursery). A store whose database
        server checkpoints on its own (PostgreSQL) returns at once."""
        ...

    # accounts and keys
    async def ensure_account(self, name: str, now: int) -> tuple[Account, bool]: ...
    async def count_accounts(self) -> int: ...
    async def get_account(self, account_id: str) -> Account | None: ...
    async def add_api_key(self, account_id: str, key_hash: str, prefix: str, now: int) -> None: ...
    async def revoke_api_key(self, key_or_prefix: str, now: int) -> int: ...
    async def account_for_key(self, key_hash: str) -> Account | None: ...
    async def get_account_by_name(self, name: str) -> Account | None: ...
    async def touch_api_key(self, key_hash: str, now: int) -> None:
        """Record a use of the key at `now` unless one was recorded in the minute before."""
        ...

    async def list_api_keys(self) -> list[ApiKeyInfo]: ...
    async def set_signing_secret(self, account_id: str, secret: str) -> None:
        """Set the secret as is; a rotation's overlap is kept only if `secret` is unchanged."""
        ...

    async def get_signing_secrets(self, account_id: str) -> SigningSecrets | None: ...
    async def rotate_signing_secret(
        self, account_id: str, secret: str, *, previous_until: int | None
    ) -> SigningSecrets | None:
        """Put `secret` in force. With `previous_until`, the secret in force so far is kept as
        the previous one until then (an older previous one is dropped); without, it is dropped
        at once. Returns the new state (None: no such account)."""
        ...

    async def drop_expired_signing_secrets(self, now: int) -> int:
        """Forget previous secrets whose overlap ended at or before `now`; returns how many."""
        ...

    # schedules
    async def insert_schedule(self, schedule: Schedule) -> None: ...
    async def get_schedule(self, account_id: str, schedule_id: str) -> Schedule | None: ...
    async def list_schedules(
        self,
        account_id: str,
        *,
        status: ScheduleStatus | None,
        handler: str | None,
        offset: int,
        limit: int,
        after: tuple[int, str] | None = None,
    ) -> Page[Schedule]:
        """Newest first; `after` = the (created_at, id) of the last row of the previous page."""
        ...

    async def replace_schedule(
        self, schedule: Schedule, *, expected_status: ScheduleStatus, expected_updated_at: int
    ) -> bool: ...
    async def archive_schedule(self, account_id: str, schedule_id: str, now: int) -> Schedule: ...
    async def run_schedule_now(
        self, account_id: str, schedule_id: str, job_id: str, now: int
    ) -> Job: ...
    async def pause_schedule(self, account_id: str, schedule_id: str, now: int) -> Schedule:
        """Stop spawning (no-op if paused already); 404/409 as archive for missing or ended."""
        ...

    async def resume_schedule(self, account_id: str, schedule_id: str, now: int) -> Schedule:
        """Spawn again, the missed slots caught up by `catch_up` (no-op if not paused)."""
        ...

    # jobs
    async def insert_job(self, job: Job) -> None: ...
    async def insert_jobs(self, jobs: list[Job]) -> list[Job | ChronosError]:
        """Several jobs in ONE transaction, in order: each is inserted (returned as given) or
        refused with `IdempotencyKeyConflict` naming the job that holds its key, stored before
        or earlier in `jobs` (what creating each in turn would answer). A failure writes none."""
        ...

    async def get_job(self, account_id: str, job_id: str) -> Job | None: ...
    async def list_jobs(
        self,
        account_id: str,
        *,
        statuses: Collection[JobStatus] | None,
        schedule_id: str | None,
        handler: str | None,
        offset: int,
        limit: int,
        since: int | None = None,
        after: tuple[int, str] | None = None,
    ) -> Page[Job]:
        """Newest first; `after` = the (created_at, id) of the last row of the previous page.
        `total` exact up to listing.EXACT_TOTAL_UP_TO, else possibly an estimate (flagged)."""
        ...

    async def cancel_job(self, account_id: str, job_id: str, now: int) -> Job: ...
    async def replay_job(self, account_id: str, job_id: str, new_id: str, now: int) -> Job:
        """A finished job run again as a new one-off job (`core.transitions.replay`), stored;
        `JobNotFound`, or `InvalidState` unless the original is completed, failed or cancelled."""
        ...

    async def replay_jobs(self, account_id: str, which: ReplayFilter, now: int) -> list[Job]:
        """Every job `which` selects replayed, in ONE transaction; the new jobs, in order."""
        ...

    # executions
    async def get_execution(self, account_id: str, execution_id: str) -> Execution | None: ...
    async def list_executions(
        self,
        account_id: str,
        *,
        job_id: str | None,
        statuses: Collection[ExecutionStatus] | None,
        offset: int,
        limit: int,
        since: int | None = None,
        after: tuple[int, str] | None = None,
    ) -> Page[Execution]:
        """Newest first; `after` = the (started_at, id) of the last row of the previous page."""
        ...

    async def stats(self, account_id: str, since: int) -> Stats: ...
    async def queue_counts(self) -> dict[tuple[str | None, JobStatus], int]:
        """Open jobs of every account per (handler, state), `held` ones counted `pending`:
        the metrics' gauge, one query over the partial indexes of the open states."""
        ...

    async def fold_counts(self, *, vacuum: bool = False, keep_from_minute: int = 0) -> int:
        """Fold the job-count deltas into the kept counts (PostgreSQL; a store that keeps its
        counts up to date in place returns 0), dropping the per-minute finished counts of the
        minutes before `keep_from_minute` (Unix minutes), then, with `vacuum`, vacuum the deltas
        tables. Returns the delta rows folded."""
        ...

    # retention
    async def prune(
        self, cutoffs: Mapping[JobStatus, int], schedules_before: int | None, limit: int
    ) -> Pruned:
        """ONE batch: up to `limit` jobs of the statuses in `cutoffs` (finished ones only) that
        finished before their cutoff, with their executions; then ended schedules with no job
        left that ended before `schedules_before`. Replicas pruning at once take disjoint
        batches."""
        ...

    async def count_prunable(
        self, cutoffs: Mapping[JobStatus, int], schedules_before: int | None
    ) -> Pruned:
        """What pruning everything now would delete (nothing is)."""
        ...

    # per-handler limits
    async def list_handler_limits(self, account_id: str) -> list[HandlerLimit]: ...
    async def get_handler_limits(self, account_id: str, handler: str) -> HandlerLimit | None: ...
    async def set_handler_limits(
        self,
        account_id: str,
        handler: str,
        max_running: int | None,
        max_per_second: float | None,
        now: int,
    ) -> HandlerLimit:
        """Create or replace; jobs it holds back or lets go are for the next admission pass."""
        ...

    async def delete_handler_limits(
        self, account_id: str, handler: str, now: int
    ) -> Released | None:
        """Remove (None: there were none); every job waiting for them goes on at once."""
        ...

    async def limited_handlers(self) -> set[tuple[str, str]]:
        """Every (account, handler) with limits (the server's cache of who must hear of a
        finish)."""
        ...

    # pipeline: admission
    async def admit_due(self, now: int, limit: int, push_lead: int = 0) -> Admitted:
        """One admission pass at `now`; push jobs due within `push_lead` ms are taken too (the
        sender starts them ahead, each sent at its instant), and the next wake-up comes that
        much before the next push job."""
        ...

    async def spawn_due_schedules(self, now: int, limit: int) -> int: ...
    async def take_due_jobs(self, now: int, limit: int) -> list[str]: ...
    async def queue_admitted(self, job_ids: list[str], now: int) -> int: ...
    async def next_wakeup(self) -> int | None: ...

    # pipeline: dispatch and claim
    async def ready_pull_jobs(self, now: int, limit: int) -> list[ReadyBatch]: ...
    async def claim_ready_job(
        self, account_id: str, handlers: list[str], worker: str | None, now: int
    ) -> ClaimedJob | None: ...
    async def claim_ready_jobs(
        self,
        account_id: str,
        handlers: list[str],
        worker: str | None,
        now: int,
        limit: int,
        due_by: int | None = None,
    ) -> list[ClaimedJob]:
        """Up to `limit` jobs of `handlers`, oldest `run_at` first: `ready` ones, and pull jobs
        due by `due_by` (default `now`) that no limit holds back. A job taken before its due
        instant (`due_by` later than `now`: a worker that starts each job at that instant
        itself) is started as of that instant (`started_at`, and its lease); the others at
        `now`."""
        ...

    async def unclaim(self, claimed: ClaimedJob, now: int) -> bool: ...
    async def start_push_jobs(self, now: int, limit: int) -> list[ClaimedJob]: ...

    # pipeline: outcomes and sweeping
    async def finish_execution(
        self,
        account_id: str | None,
        execution_id: str,
        outcome: Outcome,
        now: int,
        rng: random.Random,
    ) -> Execution: ...
    async def finish_executions(
        self,
        account_id: str | None,
        outcomes: list[tuple[str, Outcome]],
        now: int,
        rng: random.Random,
    ) -> list[Execution | ChronosError]: ...
    async def extend_leases(
        self, account_id: str, items: list[tuple[str, int | None]], now: int
    ) -> list[Execution | ChronosError]: ...
    async def record_push_outcomes(
        self, outcomes: list[ObservedOutcome], now: int, rng: random.Random
    ) -> dict[str, ChronosError]: ...
    async def sweep(
        self,
        now: int,
        lease_grace_ms: int,
        admitting_grace_ms: int,
        rng: random.Random,
        limit: int,
        *,
        recover_admitting: bool = True,
    ) -> SweepResult: ...

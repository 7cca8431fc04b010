"""`SqlStore`: the async `Store` over the shared transactions; dialects supply `_tx` and `_read`.

A dialect runs `fn(tx)` inside one transaction (writes) or one read snapshot (reads), off the Trio
thread. Everything else — which queries, in what order, which CAS — lives in `transactions/`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

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
from chronos_server.errors import ChronosError, IdempotencyKeyConflict
from chronos_server.store import transactions as t
from chronos_server.store.base import (
    Admitted,
    ApiKeyInfo,
    Pruned,
    ReadyBatch,
    Released,
    ReplayFilter,
    SigningSecrets,
    Stats,
    SweepResult,
    WakeBoard,
)
from chronos_server.store.listing import EXACT_TOTAL_UP_TO, JOBS, SCHEDULES, ListQuery
from chronos_server.store.listing import EXECUTIONS as EXECUTIONS_TABLE
from chronos_server.store.rows import (
    Row,
    account_from_row,
    api_status,
    execution_from_row,
    job_from_row,
    schedule_from_row,
    schedule_params,
    signing_secrets_from_row,
)
from chronos_server.store.transactions import Tx
from chronos_server.store.transactions import limits as tl

R = TypeVar("R")
T = TypeVar("T")


def _job_statuses(statuses: Collection[JobStatus] | None) -> tuple[str, ...]:
    """Stored status values; `pending` takes in the jobs stored `held`, `queued` those stored
    `limited` (what clients see them as)."""
    if not statuses:
        return ()
    values = {s.value for s in statuses}
    values |= {stored for stored, shown in t.SHOWN_AS.items() if shown in statuses}
    return tuple(sorted(values))


def _equal(**columns: str | None) -> tuple[tuple[str, str], ...]:
    return tuple((column, value) for column, value in columns.items() if value is not None)


class SqlStore:
    dialect = "sql"

    async def _tx(self, fn: Callable[[Tx], R]) -> R:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Tx], R]) -> R:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def _one(self, query: str, **params: Any) -> Row | None:
        """One read statement's first row; a dialect may run it on a cheaper path."""
        return await self._read(lambda tx: tx.one(query, **params))

    async def ping(self) -> None:
        await self._one("count_accounts")

    async def run_listener(
        self, board: WakeBoard, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """No other process shares this database: in-process events are all the wake-ups."""
        task_status.started()

    async def run_probe(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """No circuit breaker: the database is a file, there is no server to lose."""
        task_status.started()

    async def run_checkpoints(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Nothing to do unless the dialect keeps its own write-ahead log (SQLite)."""
        task_status.started()

    # accounts and keys ------------------------------------------------------------------

    async def ensure_account(self, name: str, now: int) -> tuple[Account, bool]:
        def fn(tx: Tx) -> tuple[Account, bool]:
            created = tx.run(
                "insert_account", id=t.new_id(), name=name, signing_secret=None, now=now
            )
            row = tx.one("account_by_name", name=name)
            assert row is not None
            return account_from_row(row), created == 1

        return await self._tx(fn)

    async def count_accounts(self) -> int:
        row = await self._one("count_accounts")
        return int(row["n"]) if row else 0

    async def get_account(self, account_id: str) -> Account | None:
        row = await self._one("account_by_id", id=account_id)
        return account_from_row(row) if row else None

    async def add_api_key(self, account_id: str, key_hash: str, prefix: str, now: int) -> None:
        await self._tx(
            lambda tx: tx.run(
                "insert_api_key",
                id=t.new_id(),
                account_id=account_id,
                key_hash=key_hash,
                prefix=prefix,
                now=now,
            )
        )

    async def revoke_api_key(self, key_or_prefix: str, now: int) -> int:
        return await self._tx(lambda tx: tx.run("revoke_api_key", key=key_or_prefix, now=now))

    async def account_for_key(self, key_hash: str) -> Account | None:
        row = await self._one("account_for_key", key_hash=key_hash)
        return account_from_row(row) if row else None

    async def get_account_by_name(self, name: str) -> Account | None:
        row = await self._read(lambda tx: tx.one("account_by_name", name=name))
        return account_from_row(row) if row else None

    async def touch_api_key(self, key_hash: str, now: int) -> None:
        await self._tx(lambda tx: tx.run("touch_api_key", key_hash=key_hash, now=now))

    async def list_api_keys(self) -> list[ApiKeyInfo]:
        rows = await self._read(lambda tx: tx.all("list_api_keys"))
        return [
            ApiKeyInfo(
                prefix=r["prefix"],
                account=r["account"],
                created_at=int(r["created_at"]),
                last_used_at=None if r["last_used_at"] is None else int(r["last_used_at"]),
                revoked_at=None if r["revoked_at"] is None else int(r["revoked_at"]),
            )
            for r in rows
        ]

    async def set_signing_secret(self, account_id: str, secret: str) -> None:
        await self._tx(lambda tx: tx.run("set_signing_secret", id=account_id, secret=secret))

    async def get_signing_secrets(self, account_id: str) -> SigningSecrets | None:
        row = await self._read(lambda tx: tx.one("signing_secrets", id=account_id))
        return signing_secrets_from_row(row) if row else None

    async def rotate_signing_secret(
        self, account_id: str, secret: str, *, previous_until: int | None
    ) -> SigningSecrets | None:
        def fn(tx: Tx) -> SigningSecrets | None:
            if previous_until is None:
                tx.run("rotate_signing_secret_at_once", id=account_id, secret=secret)
            else:
                tx.run(
                    "rotate_signing_secret_with_overlap",
                    id=account_id,
                    secret=secret,
                    until=previous_until,
                )
            row = tx.one("signing_secrets", id=account_id)
            return signing_secrets_from_row(row) if row else None

        return await self._tx(fn)

    async def drop_expired_signing_secrets(self, now: int) -> int:
        return await self._tx(lambda tx: tx.run("drop_expired_signing_secrets", now=now))

    # schedules --------------------------------------------------------------------------

    async def insert_schedule(self, schedule: Schedule) -> None:
        await self._tx(lambda tx: tx.run("insert_schedule", **schedule_params(schedule)))

    async def get_schedule(self, account_id: str, schedule_id: str) -> Schedule | None:
        row = await self._one("get_schedule", id=schedule_id, account_id=account_id)
        return schedule_from_row(row) if row else None

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
        query = ListQuery(
            SCHEDULES,
            _equal(account_id=account_id, handler=handler),
            (status.value,) if status else (),
            after=after,
        )
        return await self._list(query, offset, limit, schedule_from_row)

    async def replace_schedule(
        self, schedule: Schedule, *, expected_status: ScheduleStatus, expected_updated_at: int
    ) -> bool:
        return await self._tx(
            lambda tx: t.replace_schedule(tx, schedule, expected_status, expected_updated_at)
        )

    async def archive_schedule(self, account_id: str, schedule_id: str, now: int) -> Schedule:
        return await self._tx(lambda tx: t.archive_schedule(tx, account_id, schedule_id, now))

    async def run_schedule_now(
        self, account_id: str, schedule_id: str, job_id: str, now: int
    ) -> Job:
        return await self._tx(
            lambda tx: t.run_schedule_now(tx, account_id, schedule_id, job_id, now)
        )

    async def pause_schedule(self, account_id: str, schedule_id: str, now: int) -> Schedule:
        return await self._tx(lambda tx: t.pause_schedule(tx, account_id, schedule_id, now))

    async def resume_schedule(self, account_id: str, schedule_id: str, now: int) -> Schedule:
        return await self._tx(lambda tx: t.resume_schedule(tx, account_id, schedule_id, now))

    # jobs -------------------------------------------------------------------------------

    async def insert_job(self, job: Job) -> None:
        await self._tx(lambda tx: t.insert_job(tx, job))

    async def insert_jobs(self, jobs: list[Job]) -> list[Job | ChronosError]:
        holders = await self._tx(lambda tx: t.insert_jobs(tx, jobs))
        return [
            job if holder is None else IdempotencyKeyConflict(holder)
            for job, holder in zip(jobs, holders, strict=True)
        ]

    async def get_job(self, account_id: str, job_id: str) -> Job | None:
        row = await self._one("get_job", id=job_id, account_id=account_id)
        return job_from_row(row) if row else None

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
        query = ListQuery(
            JOBS,
            _equal(account_id=account_id, schedule_id=schedule_id, handler=handler),
            _job_statuses(statuses),
            since,
            after,
        )
        return await self._list(query, offset, limit, job_from_row)

    async def cancel_job(self, account_id: str, job_id: str, now: int) -> Job:
        return await self._tx(lambda tx: t.cancel_job(tx, account_id, job_id, now))

    async def replay_job(self, account_id: str, job_id: str, new_id: str, now: int) -> Job:
        return await self._tx(lambda tx: t.replay_job(tx, account_id, job_id, new_id, now))

    async def replay_jobs(self, account_id: str, which: ReplayFilter, now: int) -> list[Job]:
        return await self._tx(lambda tx: t.replay_jobs(tx, account_id, which, now))

    # executions -------------------------------------------------------------------------

    async def get_execution(self, account_id: str, execution_id: str) -> Execution | None:
        row = await self._one("get_execution", id=execution_id, account_id=account_id)
        return execution_from_row(row) if row else None

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
        query = ListQuery(
            EXECUTIONS_TABLE,
            _equal(account_id=account_id, job_id=job_id),
            tuple(sorted(s.value for s in statuses or ())),
            since,
            after,
        )
        return await self._list(query, offset, limit, execution_from_row)

    # lists (listing.py) -----------------------------------------------------------------

    def _register(self, name: str, sql: str) -> str:
        """Keep a list query's text under its shape's name (a dialect may convert it)."""
        raise NotImplementedError

    async def _estimate(self, query: ListQuery) -> int | None:
        """The database's estimate of the rows matching `query` (None: it has none)."""
        return None

    async def _all(self, query: str, **params: Any) -> list[Row]:
        """One read statement's rows; a dialect may run it on a cheaper path."""
        return await self._read(lambda tx: tx.all(query, **params))

    async def _list(
        self, query: ListQuery, offset: int, limit: int, parse: Callable[[Row], T]
    ) -> Page[T]:
        """One page (limit + 1 rows read: is there more?) and its total: exact up to
        EXACT_TOTAL_UP_TO matching rows, beyond that exact from the kept counts where they
        answer it, else the database's estimate (flagged). Each a statement of its own (READ
        COMMITTED, as every read here): the total may be a commit apart from the page."""
        name, sql, params = query.page_sql()
        self._register(name, sql)
        rows = await self._all(
            name, limit=limit + 1, offset=offset, depth=offset + limit + 1, **params
        )
        more = len(rows) > limit
        if offset == 0 and query.after is None and not more:
            return Page([parse(r) for r in rows], len(rows), more=False)
        count_name, count_text, _ = query.count_sql()
        self._register(count_name, count_text)
        counted = await self._one(count_name, cap=EXACT_TOTAL_UP_TO + 1, **params)
        total, estimated = int(counted["n"]) if counted else 0, False
        if total > EXACT_TOTAL_UP_TO:
            total, estimated = await self._beyond(query, total)
        return Page([parse(r) for r in rows[:limit]], total, estimated, more)

    async def _beyond(self, query: ListQuery, at_least: int) -> tuple[int, bool]:
        from_counts = query.counts_sql()
        if from_counts is not None:
            name, sql, params = from_counts
            self._register(name, sql)
            row = await self._one(name, **params)
            return max(int(row["n"]) if row else 0, at_least), False
        estimate = await self._estimate(query)
        return max(estimate or 0, at_least), True

    async def stats(self, account_id: str, since: int) -> Stats:
        """Four statements: the kept counts, the window's finished jobs, the oldest `ready`
        job of each handler that has one (`transactions.jobs`), the handler limits."""
        counts = await self._all("stats_state_counts", account_id=account_id)
        finished = await self._all("stats_finished", account_id=account_id, since=since)
        ready = t.ready_handlers(counts)
        oldest = (
            await self._all("stats_oldest_ready", account_id=account_id, handlers=ready)
            if ready != "[]"
            else []
        )
        limits = await self._all("list_handler_limits", account_id=account_id)
        return t.stats_from_rows(counts, finished, oldest, [tl.limit_from_row(r) for r in limits])

    async def fold_counts(self, *, vacuum: bool = False, keep_from_minute: int = 0) -> int:
        # SQLite: the row triggers keep the counts themselves up to date; only the per-minute
        # finished counts of minutes no window reaches are dropped.
        if keep_from_minute > 0:
            await self._tx(lambda tx: tx.run("drop_finished_minutes", keep_from=keep_from_minute))
        return 0

    # retention --------------------------------------------------------------------------

    async def prune(
        self, cutoffs: Mapping[JobStatus, int], schedules_before: int | None, limit: int
    ) -> Pruned:
        return await self._tx(lambda tx: t.prune(tx, cutoffs, schedules_before, limit))

    async def count_prunable(
        self, cutoffs: Mapping[JobStatus, int], schedules_before: int | None
    ) -> Pruned:
        return await self._read(lambda tx: t.count_prunable(tx, cutoffs, schedules_before))

    async def queue_counts(self) -> dict[tuple[str | None, JobStatus], int]:
        rows = await self._read(lambda tx: tx.all("queue_counts"))
        counts: dict[tuple[str | None, JobStatus], int] = {}
        for r in rows:
            key = (r["handler"], api_status(r["status"]))
            counts[key] = counts.get(key, 0) + int(r["n"])
        return counts

    # per-handler limits -----------------------------------------------------------------

    async def list_handler_limits(self, account_id: str) -> list[HandlerLimit]:
        return await self._read(lambda tx: tl.list_limits(tx, account_id))

    async def get_handler_limits(self, account_id: str, handler: str) -> HandlerLimit | None:
        return await self._read(lambda tx: tl.get_limits(tx, account_id, handler))

    async def set_handler_limits(
        self,
        account_id: str,
        handler: str,
        max_running: int | None,
        max_per_second: float | None,
        now: int,
    ) -> HandlerLimit:
        return await self._tx(
            lambda tx: tl.set_limits(tx, account_id, handler, max_running, max_per_second, now)
        )

    async def delete_handler_limits(
        self, account_id: str, handler: str, now: int
    ) -> Released | None:
        return await self._tx(lambda tx: tl.delete_limits(tx, account_id, handler, now))

    async def limited_handlers(self) -> set[tuple[str, str]]:
        return await self._read(tl.limited_keys)

    # pipeline ---------------------------------------------------------------------------

    async def admit_due(self, now: int, limit: int, push_lead: int = 0) -> Admitted:
        return await self._tx(lambda tx: t.admit_due(tx, now, limit, push_lead))

    async def spawn_due_schedules(self, now: int, limit: int) -> int:
        return await self._tx(lambda tx: t.spawn_due_schedules(tx, now, limit))

    async def take_due_jobs(self, now: int, limit: int) -> list[str]:
        return await self._tx(lambda tx: t.take_due_jobs(tx, now, limit))

    async def queue_admitted(self, job_ids: list[str], now: int) -> int:
        return await self._tx(lambda tx: t.queue_admitted(tx, job_ids, now))

    async def next_wakeup(self) -> int | None:
        return await self._read(t.next_wakeup)

    async def ready_pull_jobs(self, now: int, limit: int) -> list[ReadyBatch]:
        return await self._tx(lambda tx: t.ready_pull_jobs(tx, now, limit))

    async def claim_ready_job(
        self, account_id: str, handlers: list[str], worker: str | None, now: int
    ) -> ClaimedJob | None:
        claimed = await self.claim_ready_jobs(account_id, handlers, worker, now, 1)
        return claimed[0] if claimed else None

    async def claim_ready_jobs(
        self,
        account_id: str,
        handlers: list[str],
        worker: str | None,
        now: int,
        limit: int,
        due_by: int | None = None,
    ) -> list[ClaimedJob]:
        return await self._tx(
            lambda tx: t.claim_ready_jobs(tx, account_id, handlers, worker, now, limit, due_by)
        )

    async def start_push_jobs(self, now: int, limit: int) -> list[ClaimedJob]:
        return await self._tx(lambda tx: t.start_push_jobs(tx, now, limit))

    async def unclaim(self, claimed: ClaimedJob, now: int) -> bool:
        return await self._tx(lambda tx: t.unclaim(tx, claimed, now))

    async def finish_execution(
        self,
        account_id: str | None,
        execution_id: str,
        outcome: Outcome,
        now: int,
        rng: random.Random,
    ) -> Execution:
        return await self._tx(
            lambda tx: t.finish_execution(tx, account_id, execution_id, outcome, now, rng)
        )

    async def finish_executions(
        self,
        account_id: str | None,
        outcomes: list[tuple[str, Outcome]],
        now: int,
        rng: random.Random,
    ) -> list[Execution | ChronosError]:
        return await self._tx(lambda tx: t.finish_executions(tx, account_id, outcomes, now, rng))

    async def extend_leases(
        self, account_id: str, items: list[tuple[str, int | None]], now: int
    ) -> list[Execution | ChronosError]:
        return await self._tx(lambda tx: t.extend_leases(tx, account_id, items, now))

    async def record_push_outcomes(
        self, outcomes: list[ObservedOutcome], now: int, rng: random.Random
    ) -> dict[str, ChronosError]:
        return await self._tx(lambda tx: t.record_push_outcomes(tx, outcomes, now, rng))

    async def sweep(
        self,
        now: int,
        lease_grace_ms: int,
        admitting_grace_ms: int,
        rng: random.Random,
        limit: int,
        *,
        recover_admitting: bool = True,
    ) -> SweepResult:
        return await self._tx(
            lambda tx: t.sweep(
                tx, now, lease_grace_ms, admitting_grace_ms, rng, limit, recover_admitting
            )
        )

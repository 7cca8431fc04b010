"""The PostgreSQL store: psycopg 3 (sync) over a connection pool, one transaction per thread call.

Each store call runs `fn(tx)` from `transactions/` in one READ COMMITTED transaction on a pooled
connection, in a worker thread (`CapacityLimiter` = pool size). Row hand-outs lock with
`FOR UPDATE SKIP LOCKED` (queries.sql), so replicas split the work; every write is still the
shared compare-and-set. Why a sync driver in threads: docs/decisions.md.

Failure boundary: psycopg's `OperationalError` family (server gone, connection lost, pool
timeout, deadlock, cancelled query) becomes `StoreUnavailable` (`raise … from exc`); anything else
(a bad query, a constraint violation) is a bug and propagates as it is. A transaction whose
connection was found dead before its COMMIT was sent wrote nothing, so it runs once more on a
fresh connection (after `pool.drain()` has dropped the other idle ones, once per loss): a
restarted database costs one retry, not a burst of 503s.

Outages: a call that cannot get a live connection (the pool timeout, or the retry's connection
dead too) trips a circuit breaker (`breaker.py`). While it is open, calls raise `StoreUnavailable`
at once, before taking a thread or asking the pool, and `run_probe` (in the server's root
nursery) opens a connection of its own every 0.5-1 s; once that works and the pool serves a
transaction again, the breaker closes. Time bounds, and why: `docs/decisions.md` (PostgreSQL).

Cancellation: a cancelled Trio caller has the server abort the running statement
(`conn.cancel_safe()`), and the transaction rolls back; see `interruptible.py`.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import psycopg
import trio
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from chronos_server.core.limits import HandlerLimit
from chronos_server.core.models import (
    ClaimedJob,
    Execution,
    ExecutionStatus,
    Job,
    JobStatus,
    Outcome,
)
from chronos_server.errors import (
    ChronosError,
    ExecutionAlreadyFinished,
    IdempotencyKeyConflict,
    StoreUnavailable,
)
from chronos_server.store import pg_listen
from chronos_server.store import transactions as t
from chronos_server.store.base import Admitted, Pruned, ReadyBatch, Released, WakeBoard
from chronos_server.store.breaker import BreakerOpen, StoreBreaker
from chronos_server.store.interruptible import run_interruptible
from chronos_server.store.listing import ListQuery
from chronos_server.store.pg_native import ConnectionLost, NativePool, numbered
from chronos_server.store.queries import load_queries, migrations
from chronos_server.store.rows import Row, dump_json, execution_from_row, job_params, json_text
from chronos_server.store.sql_store import SqlStore
from chronos_server.store.transactions import Tx
from chronos_server.store.transactions import limits as tl

R = TypeVar("R")
log = logging.getLogger("chronos.store.postgres")

POOL_SIZE = 10
# Trio-native connections for single statements (pg_native.py): no thread, so few are needed;
# more only queue more statements on the database at once.
NATIVE_POOL_SIZE = 6
# The limiter never lets more calls in than there are connections, so waiting this long for one
# means the pool cannot reconnect: the database is gone, answer 503 rather than hang.
POOL_TIMEOUT_SECONDS = 2.0
# A thread waiting for a connection looks at the breaker this often, so calls queued when it
# opens give up within this long instead of each waiting out the whole pool timeout.
GETCONN_SLICE_SECONDS = 0.1
# How long the pool itself keeps trying to replace a lost connection (psycopg_pool's default is
# 300 s, with backoff doubling to a minute between tries, so after a long outage the pool could
# take that long to notice the database was back). After this it gives up and shrinks; the
# probe's transaction, or any caller waiting for a connection, grows it again at once.
RECONNECT_TIMEOUT_SECONDS = 2.0
# The probe's own connection: psycopg's connect_timeout is at least 2 s; a Trio deadline of
# 1 s abandons a slower attempt (its thread ends by itself within the connect timeout).
PROBE_TIMEOUT_SECONDS = 1.0
PROBE_CONNECT_TIMEOUT = 2
OPEN_TIMEOUT_SECONDS = 10.0
CANCEL_TIMEOUT_SECONDS = 2.0
_PARAM = re.compile(r"(?<![:\w]):(\w+)")  # `:name`, never the `::` of a cast


def pyformat(sql: str) -> str:
    """`:name` parameters (the style both dialects' files share) → psycopg's `%(name)s`."""
    return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


def _load(filename: str) -> dict[str, str]:
    return {name: pyformat(sql) for name, sql in load_queries("postgres", filename).items()}


class _Interrupted(Exception):
    """The Trio caller was cancelled: stop before the next statement (the result is unwanted)."""


class _ConnectionLost(Exception):
    """The connection died before COMMIT was sent: nothing was written, safe to run again."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch  # the pool epoch its connection was handed out in


class _Unreachable(StoreUnavailable):
    """No live connection could be had: the database is (for now) unreachable."""


class _Slot:
    """The connection one transaction holds, shared with the Trio side so it can cancel it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn: psycopg.Connection[Any] | None = None
        self.interrupted = False
        self.cancel_sent = False
        self.epoch = 0
        self.atomic = True  # False: one autocommit statement, no transaction block
        self.rerun_safe = False  # an autocommit statement that may run again after a loss

    def interrupt(self) -> bool:
        """Called from another thread when the caller is cancelled; True if a query may run."""
        with self.lock:
            self.interrupted = True
            if self.conn is None:
                return False
            self.cancel_sent = True
            with suppress(psycopg.Error):
                self.conn.cancel_safe(timeout=CANCEL_TIMEOUT_SECONDS)
            return True


class _PgTx:
    def __init__(self, conn: psycopg.Connection[Any], queries: dict[str, str], slot: _Slot) -> None:
        self._conn = conn
        self._queries = queries
        self._slot = slot

    def _execute(self, query: str, params: dict[str, Any]) -> psycopg.Cursor[DictRow]:
        if self._slot.interrupted:
            raise _Interrupted()
        return self._conn.cursor(row_factory=dict_row).execute(self._queries[query], params)

    def one(self, query: str, **params: Any) -> Row | None:
        return self._execute(query, params).fetchone()

    def all(self, query: str, **params: Any) -> list[Row]:
        return list(self._execute(query, params).fetchall())

    def run(self, query: str, **params: Any) -> int:
        return self._execute(query, params).rowcount


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply pending migrations in one transaction under an advisory lock, so replicas starting
    together apply each exactly once (the others wait, then find nothing left to do)."""
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock("
            "hashtext('chronos_migrations.' || coalesce(current_schema(), '')))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS chronos_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM chronos_migrations")}
        applied = []
        for version, name, sql in migrations("postgres"):
            if version in done:
                continue
            conn.execute(sql)  # no parameters: simple protocol, several statements in one call
            conn.execute(
                "INSERT INTO chronos_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (version, name, time.time_ns() // 1_000_000),
            )
            applied.append(name)
        return applied


class PostgresStore(SqlStore):
    dialect = "postgres"

    def __init__(
        self, pool: ConnectionPool[psycopg.Connection[Any]], conninfo: str, pool_size: int
    ) -> None:
        self._pool = pool
        self._conninfo = conninfo
        self._limiter = trio.CapacityLimiter(pool_size)
        self._queries = (
            _load("queries.sql")
            | _load("wakeups.sql")
            | _load("hotpath.sql")
            | _load("maintenance.sql")
        )
        self._native_sql = {
            name: numbered(sql)
            for filename in ("queries.sql", "wakeups.sql", "hotpath.sql", "maintenance.sql")
            for name, sql in load_queries("postgres", filename).items()
        }
        self._native = NativePool(conninfo, NATIVE_POOL_SIZE, pg_listen.CONNECT_KWARGS)
        self._origin = uuid.uuid4().hex  # lets the listener skip this process's own NOTIFYs
        self.breaker = StoreBreaker()
        self._epoch = 0  # bumped by each drain of the pool after a lost connection
        self._epoch_lock = threading.Lock()

    def _register(self, name: str, sql: str) -> str:
        if name not in self._queries:
            self._native_sql[name] = numbered(sql)
            self._queries[name] = pyformat(sql)
        return name

    async def _all(self, query: str, **params: Any) -> list[Row]:
        return await self._query(query, **params)

    async def _estimate(self, query: ListQuery) -> int | None:
        name, sql, params = query.estimate_sql()
        self._register(name, sql)
        row = await self._one(name, **params)
        if row is None:
            return None
        plan = row["QUERY PLAN"]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])

    async def _tx(self, fn: Callable[[Tx], R]) -> R:
        self.breaker.check()  # known unreachable: no thread, no pool, no wait
        return await self._call(fn, guarded=True)

    _read = _tx  # READ COMMITTED reads: each statement sees the latest commits

    async def _statement(self, fn: Callable[[Tx], R], *, rerun_safe: bool = False) -> R:
        """`fn` runs ONE statement, on its own (autocommit: one round trip, no BEGIN/COMMIT).
        Not run again after a lost connection, since whether it committed is unknown, unless
        `rerun_safe`: a statement whose second run answers as the first would have, committed
        or not (`insert_jobs`), runs once more on a fresh connection like a transaction."""
        self.breaker.check()
        return await self._call(fn, guarded=True, atomic=False, rerun_safe=rerun_safe)

    async def _call(
        self,
        fn: Callable[[Tx], R],
        *,
        guarded: bool,
        atomic: bool = True,
        rerun_safe: bool = False,
    ) -> R:
        generation = self.breaker.generation
        slot = _Slot()
        slot.atomic = atomic
        slot.rerun_safe = rerun_safe
        try:
            return await run_interruptible(
                lambda: self._run(slot, fn, guarded), slot.interrupt, limiter=self._limiter
            )
        except BreakerOpen:  # opened while this call waited for a thread or a connection
            self.breaker.rejected += 1
            raise
        except _Unreachable:
            self.breaker.failed(generation)
            raise

    async def _query(self, name: str, **params: Any) -> list[Row]:
        """One named statement on a Trio-native connection (autocommit: one round trip, no
        thread). Not run again after a lost connection: whether it committed is unknown."""
        self.breaker.check()
        generation = self.breaker.generation
        try:
            async with self._native.connection() as conn:
                return await conn.execute(name, self._native_sql[name], params)
        except ConnectionLost as exc:
            self._native.drain()
            self.breaker.failed(generation)
            raise StoreUnavailable(f"PostgreSQL: {exc}") from exc

    async def _one(self, query: str, **params: Any) -> Row | None:
        rows = await self._query(query, **params)
        return rows[0] if rows else None

    async def fold_counts(self, *, vacuum: bool = False, keep_from_minute: int = 0) -> int:
        row = await self._one("fold_count_deltas", keep_from=keep_from_minute)
        if vacuum:
            await self._statement(lambda tx: tx.run("vacuum_count_deltas"))
        return int(row["n"]) if row else 0

    async def close(self) -> None:
        self._native.close()
        await trio.to_thread.run_sync(self._pool.close)

    # --- the breaker's probe ------------------------------------------------------------------

    async def run_probe(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await self.breaker.run_probe(self._probe_once, task_status=task_status)

    async def _probe_once(self) -> bool:
        """A connection of our own first (cheap, and free of the pool's reconnect backoff), then
        one transaction through the pool, the way every call will go once the breaker closes."""
        connected = False
        with trio.move_on_after(PROBE_TIMEOUT_SECONDS):
            try:
                await trio.to_thread.run_sync(self._connect_once, abandon_on_cancel=True)
                connected = True
            except psycopg.Error as exc:
                log.info("probe: database still unreachable (%s)", str(exc).strip())
        if not connected:
            return False
        try:
            await self._call(lambda tx: tx.one("count_accounts"), guarded=False)
        except StoreUnavailable as exc:
            log.info("probe: database reachable, the pool not yet (%s)", exc)
            return False
        return True

    def _connect_once(self) -> None:
        kwargs = pg_listen.CONNECT_KWARGS | {"connect_timeout": PROBE_CONNECT_TIMEOUT}
        with psycopg.connect(self._conninfo, **kwargs) as conn:
            conn.execute("SELECT 1")

    # --- in the worker thread ---------------------------------------------------------------

    def _run(self, slot: _Slot, fn: Callable[[Tx], R], guarded: bool) -> R:
        try:
            try:
                return self._attempt(slot, fn, guarded)
            except _ConnectionLost as lost:
                self._drain_once(lost.epoch)
                return self._attempt(slot, fn, guarded)
        except _ConnectionLost as exc:
            raise _Unreachable(f"PostgreSQL: {exc.__cause__}") from exc.__cause__
        except PoolTimeout as exc:
            raise _Unreachable(f"PostgreSQL: {exc}") from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL: {exc}") from exc

    def _drain_once(self, epoch: int) -> None:
        """Drop every idle connection (they all predate the loss), once per loss, not once per
        caller: skipped if the pool was drained since that connection was handed out. Closing is
        bounded; `pool.check()` would send a query on each one, and on a silent network each
        would wait out the TCP timeout."""
        with self._epoch_lock:  # held while draining: no other loser retries on a stale one
            if epoch != self._epoch:
                return
            self._epoch += 1
            self._pool.drain()

    def _getconn(self, slot: _Slot, guarded: bool) -> psycopg.Connection[Any]:
        """`pool.getconn()` within POOL_TIMEOUT_SECONDS, in short waits so that a call gives up
        as soon as the breaker opens (or the caller is cancelled)."""
        deadline = time.monotonic() + POOL_TIMEOUT_SECONDS
        while True:
            if guarded and self.breaker.rejects():
                raise BreakerOpen()
            if slot.interrupted:
                raise _Interrupted()
            left = deadline - time.monotonic()
            if left <= 0:
                raise PoolTimeout(f"no connection within {POOL_TIMEOUT_SECONDS:g} s")
            with suppress(PoolTimeout):
                return self._pool.getconn(timeout=min(left, GETCONN_SLICE_SECONDS))

    def _attempt(self, slot: _Slot, fn: Callable[[Tx], R], guarded: bool) -> R:
        # Read before asking: a connection handed out after a drain is always a new one, while
        # one handed out before it would, read after, look newer than it is.
        slot.epoch = self._epoch
        conn = self._getconn(slot, guarded)
        try:
            with slot.lock:
                if slot.interrupted:
                    raise _Interrupted()
                slot.conn = conn
            return self._in_transaction(conn, slot, fn)
        finally:
            with slot.lock:
                slot.conn = None
                if slot.cancel_sent:
                    # A cancel request could still reach this backend late: never reuse it.
                    conn.close()
            self._pool.putconn(conn)

    def _in_transaction(
        self, conn: psycopg.Connection[Any], slot: _Slot, fn: Callable[[Tx], R]
    ) -> R:
        committing = not slot.atomic and not slot.rerun_safe
        try:
            if not slot.atomic:
                return fn(_PgTx(conn, self._queries, slot))
            with conn.transaction():
                result = fn(_PgTx(conn, self._queries, slot))
                committing = True
            return result
        except psycopg.OperationalError as exc:
            if conn.broken and not committing and not slot.interrupted:
                raise _ConnectionLost(slot.epoch) from exc
            raise

    # --- PostgreSQL only: cross-replica wake-ups ------------------------------------------------

    async def ready_pull_jobs(self, now: int, limit: int) -> list[ReadyBatch]:
        def fn(tx: Tx) -> list[ReadyBatch]:
            batches = t.ready_pull_jobs(tx, now, limit)
            self._notify_ready(tx, batches)
            return batches

        return await self._tx(fn)

    async def admit_due(self, now: int, limit: int, push_lead: int = 0) -> Admitted:
        """The pass as ONE statement (`admit_pass`: jobs moved, NOTIFY, next due times), plus a
        spawning transaction only when a schedule slot is due or a job is held (`overlap:
        queue`: it releases the held jobs whose turn came); the jobs it spawned or released are
        admitted by the next pass, which the caller runs at once (`spawned` > 0, or a wake-up
        of now)."""
        rows = await self._query(
            "admit_pass",
            now=now,
            push_by=now + push_lead,
            limit=limit,
            channel=pg_listen.CHANNEL,
            origin=self._origin,
        )
        moved = [row for row in rows if row["status"] != "next"]
        [following] = [row for row in rows if row["status"] == "next"]
        next_schedule = following["next_schedule"]
        held = bool(following["held"])
        spawned = released = 0
        if held or (next_schedule is not None and next_schedule <= now):

            def spawn(tx: Tx) -> tuple[int, int]:
                return t.release_held_jobs(tx, now, limit), t.spawn_due_schedules(tx, now, limit)

            released, spawned = await self._tx(spawn)
        following_due = t.push_wakeup(following["n"], following["next_push"], push_lead)
        wakes = [w for w in (following_due, next_schedule) if w is not None]
        if released:
            wakes.append(now)
        admitted = Admitted(
            spawned=spawned,
            ready=[
                ReadyBatch(r["account_id"], r["handler"], int(r["n"]))
                for r in moved
                if r["status"] == "ready"
            ],
            queued_push=sum(int(r["n"]) for r in moved if r["status"] == "queued"),
            taken=sum(int(r["n"]) for r in moved),
            next_wakeup=t.held_recheck(min(wakes) if wakes else None, held, now),
            released=released,
            next_claimable=(
                (following["account_id"], following["handler"])
                if following["handler"] is not None and following["n"] == min(wakes)
                else None
            ),
        )
        if not following["limited"]:  # no job waits for its handler's limits: nothing to do
            return admitted
        return t.with_limited_released(admitted, await self._release_limited(now, limit))

    async def _release_limited(self, now: int, limit: int) -> Released:
        """Jobs waiting for their handler's limits let go as far as the limits allow, in one
        transaction holding each limit row's lock while it counts and releases."""

        def fn(tx: Tx) -> Released:
            out = tl.release_limited(tx, now, limit)
            self._notify_ready(tx, out.ready)
            return out

        return await self._tx(fn)

    async def set_handler_limits(
        self,
        account_id: str,
        handler: str,
        max_running: int | None,
        max_per_second: float | None,
        now: int,
    ) -> HandlerLimit:
        def fn(tx: Tx) -> HandlerLimit:
            found = tl.set_limits(tx, account_id, handler, max_running, max_per_second, now)
            self._notify_limits_changed(tx)
            return found

        return await self._tx(fn)

    async def delete_handler_limits(
        self, account_id: str, handler: str, now: int
    ) -> Released | None:
        def fn(tx: Tx) -> Released | None:
            out = tl.delete_limits(tx, account_id, handler, now)
            if out is not None:
                self._notify_ready(tx, out.ready)
                self._notify_limits_changed(tx)
            return out

        return await self._tx(fn)

    def _notify_limits_changed(self, tx: Tx) -> None:
        payloads = [pg_listen.encode_limits_changed(self._origin)]
        tx.all("notify_ready", channel=pg_listen.CHANNEL, payloads=payloads)

    def _notify_ready(self, tx: Tx, batches: list[ReadyBatch]) -> None:
        if batches:  # delivered on COMMIT only, to every LISTENing replica
            payloads = pg_listen.encode_ready(self._origin, batches)
            tx.all("notify_ready", channel=pg_listen.CHANNEL, payloads=payloads)

    # --- PostgreSQL only: the hot path in one statement each (hotpath.sql) ----------------------

    async def claim_ready_jobs(
        self,
        account_id: str,
        handlers: list[str],
        worker: str | None,
        now: int,
        limit: int,
        due_by: int | None = None,
    ) -> list[ClaimedJob]:
        rows = await self._query(
            "claim_jobs",
            account_id=account_id,
            handlers=handlers,
            worker=worker,
            now=now,
            limit=limit,
            due_by=now if due_by is None else max(now, due_by),
        )
        return [
            t.claimed_from_started(row, worker, t.started_at(row["run_at"], now, due_by))
            for row in rows
        ]

    async def finish_execution(
        self,
        account_id: str | None,
        execution_id: str,
        outcome: Outcome,
        now: int,
        rng: random.Random,
    ) -> Execution:
        if account_id is None or outcome.status is not ExecutionStatus.COMPLETED:
            return await super().finish_execution(account_id, execution_id, outcome, now, rng)
        [found] = await self._complete_reported(account_id, [(execution_id, outcome)], now)
        if isinstance(found, ChronosError):
            raise found
        return found

    async def prune(
        self, cutoffs: Mapping[JobStatus, int], schedules_before: int | None, limit: int
    ) -> Pruned:
        """As everywhere, with an asynchronous commit: a retention batch lost in a crash is
        deleted again by the next round, and its commit neither waits for nor forces a WAL
        flush the pipeline's commits then wait behind."""

        def batch(tx: Tx) -> Pruned:
            tx.run("asynchronous_commit")
            return t.prune(tx, cutoffs, schedules_before, limit)

        return await self._tx(batch)

    async def finish_executions(
        self,
        account_id: str | None,
        outcomes: list[tuple[str, Outcome]],
        now: int,
        rng: random.Random,
    ) -> list[Execution | ChronosError]:
        ids = [execution_id for execution_id, _ in outcomes]
        if (
            account_id is None
            or len(set(ids)) != len(ids)  # a repeated id: the second report is refused, in order
            or any(o.status is not ExecutionStatus.COMPLETED for _, o in outcomes)
        ):
            return await super().finish_executions(account_id, outcomes, now, rng)
        return await self._complete_reported(account_id, outcomes, now)

    async def insert_job(self, job: Job) -> None:
        [found] = await self.insert_jobs([job])
        if isinstance(found, ChronosError):
            raise found

    async def insert_jobs(self, jobs: list[Job]) -> list[Job | ChronosError]:
        """All in ONE statement (`insert_jobs`), run once more on a fresh connection if its
        connection is lost (it answers the same either way). A key given twice is sent once,
        with its first job; the later ones are answered as a second create of it would be."""
        if not jobs:
            return []
        first: dict[tuple[str, str], Job] = {}
        sent: list[Job] = []
        for job in jobs:
            key = job.idempotency_key
            if key is not None:
                if (job.account_id, key) in first:
                    continue
                first[(job.account_id, key)] = job
            sent.append(job)
        items = json_text([job_params(job) for job in sent])
        rows = await self._statement(lambda tx: tx.all("insert_jobs", items=items), rerun_safe=True)
        # A job found stored under its own id was inserted by a run of this statement whose
        # answer was lost with its connection.
        holders: dict[str, str | None] = {
            row["id"]: None if row["holder"] == row["id"] else row["holder"] for row in rows
        }
        for job in sent:
            if job.id not in holders:  # what stopped it committed while the statement ran
                holders[job.id] = await self._holder(job)
        results: list[Job | ChronosError] = []
        for job in jobs:
            key = job.idempotency_key
            earlier = first[(job.account_id, key)] if key is not None else job
            holder = holders[earlier.id] if earlier is job else holders[earlier.id] or earlier.id
            results.append(job if holder is None else IdempotencyKeyConflict(holder))
        return results

    async def _holder(self, job: Job) -> str | None:
        """None if the job is stored (by a lost run of the statement), else who holds its key."""

        def fn(tx: Tx) -> str | None:
            if tx.one("get_job", id=job.id, account_id=job.account_id) is not None:
                return None
            return t.insert_holder(tx, job)

        return await self._read(fn)

    async def _execution_row(self, account_id: str, execution_id: str) -> Row | None:
        return await self._one("get_execution", id=execution_id, account_id=account_id)

    async def _complete_reported(
        self, account_id: str, outcomes: list[tuple[str, Outcome]], now: int
    ) -> list[Execution | ChronosError]:
        """Completed reports, one statement for all; the rare one that lost a race (its row was
        locked by a sweep that finished it first) is looked at once more to say why."""
        items = [{"id": e, "result": dump_json(o.result)} for e, o in outcomes]
        rows = await self._query(
            "complete_reported", items=json.dumps(items), account_id=account_id, now=now
        )
        by_id = {row["id"]: row for row in rows}
        results: list[Execution | ChronosError] = []
        for execution_id, _ in outcomes:
            row = by_id.get(execution_id)
            if row is not None and row["done"]:
                results.append(execution_from_row(row))
                continue
            refused = t.refusal(row)
            if refused is None:  # running when the statement began, finished by another since
                refused = t.refusal(await self._execution_row(account_id, execution_id))
                refused = refused or ExecutionAlreadyFinished()
            results.append(refused)
        return results

    async def run_listener(
        self, board: WakeBoard, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        resync = trio.Event()

        def on_ready(batches: list[ReadyBatch]) -> None:
            for batch in batches:
                board.notify(batch.account_id, batch.handler, batch.count)

        def on_connected() -> None:
            resync.set()  # notifications sent while we were not listening are lost: look now
            board.limits_changed()

        listener = pg_listen.Listener(
            self._conninfo, self._origin, on_ready, on_connected, board.limits_changed
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_listen_thread, listener)
            task_status.started()
            while True:
                with trio.move_on_after(pg_listen.FALLBACK_SECONDS):
                    await resync.wait()
                resync = trio.Event()
                await self.wake_parked(board)

    async def _run_listen_thread(self, listener: pg_listen.Listener) -> None:
        await run_interruptible(listener.listen, listener.stop, limiter=trio.CapacityLimiter(1))

    async def wake_parked(self, board: WakeBoard) -> int:
        """The fallback: wake as many parked claimers as there are ready jobs for their keys."""
        keys = board.parked_keys()
        if not keys:
            return 0
        try:
            rows = await self._read(
                lambda tx: tx.all(
                    "ready_counts_for",
                    accounts=[account for account, _ in keys],
                    handlers=[handler for _, handler in keys],
                )
            )
        except StoreUnavailable as exc:
            log.warning("fallback wake-up check: store unavailable (%s)", exc)
            return 0
        return sum(board.notify(r["account_id"], r["handler"], int(r["n"])) for r in rows)


def _open(conninfo: str, pool_size: int) -> PostgresStore:
    with psycopg.connect(conninfo, connect_timeout=int(OPEN_TIMEOUT_SECONDS)) as conn:
        applied = migrate(conn)
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
        conninfo,
        min_size=pool_size,
        max_size=pool_size,
        open=False,
        timeout=POOL_TIMEOUT_SECONDS,
        reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
        kwargs=pg_listen.CONNECT_KWARGS,
        name="chronos",
    )
    try:
        pool.open(wait=True, timeout=OPEN_TIMEOUT_SECONDS)
    except BaseException:
        pool.close()
        raise
    return PostgresStore(pool, conninfo, pool_size)


@asynccontextmanager
async def open_postgres_store(
    database_url: str, *, pool_size: int = POOL_SIZE
) -> AsyncIterator[PostgresStore]:
    """Migrate (under the advisory lock), open the pool, and close it on exit."""
    try:
        store = await trio.to_thread.run_sync(_open, database_url, pool_size)
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"PostgreSQL: {exc}") from exc
    try:
        yield store
    finally:
        await store.close()

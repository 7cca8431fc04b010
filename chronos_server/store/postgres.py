"""The PostgreSQL store: psycopg 3 (sync) over a connection pool, one transaction per thread call.

Each store call runs `fn(tx)` from `transactions/` in one READ COMMITTED transaction on a pooled
connection, in a worker thread (`CapacityLimiter` = pool size). Row hand-outs lock with
`FOR UPDATE SKIP LOCKED` (queries.sql), so replicas split the work; every write is still the
shared compare-and-set. Why a sync driver in threads: docs/decisions.md.

Failure boundary: psycopg's `OperationalError` family (server gone, connection lost, pool
timeout, deadlock, cancelled query) becomes `StoreUnavailable` (`raise … from exc`); anything else
(a bad query, a constraint violation) is a bug and propagates as it is. A transaction whose
connection was found dead before its COMMIT was sent wrote nothing, so it runs once more on a
fresh connection (after `pool.check()` has dropped the other dead ones): a restarted database
costs one retry, not a burst of 503s.

Cancellation: a cancelled Trio caller has the server abort the running statement
(`conn.cancel_safe()`), and the transaction rolls back; see `interruptible.py`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import psycopg
import trio
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from chronos_server.errors import StoreUnavailable
from chronos_server.store import pg_listen
from chronos_server.store import transactions as t
from chronos_server.store.base import ReadyBatch, WakeBoard
from chronos_server.store.interruptible import run_interruptible
from chronos_server.store.queries import load_queries, migrations
from chronos_server.store.rows import Row
from chronos_server.store.sql_store import SqlStore
from chronos_server.store.transactions import Tx

R = TypeVar("R")
log = logging.getLogger("chronos.store.postgres")

POOL_SIZE = 10
# The limiter never lets more calls in than there are connections, so waiting this long for one
# means the pool cannot reconnect: the database is gone, answer 503 rather than hang.
POOL_TIMEOUT_SECONDS = 2.0
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


class _Slot:
    """The connection one transaction holds, shared with the Trio side so it can cancel it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn: psycopg.Connection[Any] | None = None
        self.interrupted = False
        self.cancel_sent = False

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
        self._queries = _load("queries.sql") | _load("wakeups.sql")
        self._origin = uuid.uuid4().hex  # lets the listener skip this process's own NOTIFYs

    async def _tx(self, fn: Callable[[Tx], R]) -> R:
        slot = _Slot()
        return await run_interruptible(
            lambda: self._run(slot, fn), slot.interrupt, limiter=self._limiter
        )

    _read = _tx  # READ COMMITTED reads: each statement sees the latest commits

    async def close(self) -> None:
        await trio.to_thread.run_sync(self._pool.close)

    # --- in the worker thread ---------------------------------------------------------------

    def _run(self, slot: _Slot, fn: Callable[[Tx], R]) -> R:
        try:
            try:
                return self._attempt(slot, fn)
            except _ConnectionLost:
                self._pool.check()  # drop every dead idle connection, not one per request
                return self._attempt(slot, fn)
        except _ConnectionLost as exc:
            raise StoreUnavailable(f"PostgreSQL: {exc.__cause__}") from exc.__cause__
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL: {exc}") from exc

    def _attempt(self, slot: _Slot, fn: Callable[[Tx], R]) -> R:
        conn = self._pool.getconn()
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
        committing = False
        try:
            with conn.transaction():
                result = fn(_PgTx(conn, self._queries, slot))
                committing = True
            return result
        except psycopg.OperationalError as exc:
            if conn.broken and not committing and not slot.interrupted:
                raise _ConnectionLost() from exc
            raise

    # --- PostgreSQL only: cross-replica wake-ups ------------------------------------------------

    async def ready_pull_jobs(self, now: int, limit: int) -> list[ReadyBatch]:
        def fn(tx: Tx) -> list[ReadyBatch]:
            batches = t.ready_pull_jobs(tx, now, limit)
            if batches:  # delivered on COMMIT only, to every LISTENing replica
                payloads = pg_listen.encode_ready(self._origin, batches)
                tx.all("notify_ready", channel=pg_listen.CHANNEL, payloads=payloads)
            return batches

        return await self._tx(fn)

    async def run_listener(
        self, board: WakeBoard, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        resync = trio.Event()

        def on_ready(batches: list[ReadyBatch]) -> None:
            for batch in batches:
                board.notify(batch.account_id, batch.handler, batch.count)

        def on_connected() -> None:
            resync.set()  # notifications sent while we were not listening are lost: look now

        listener = pg_listen.Listener(self._conninfo, self._origin, on_ready, on_connected)
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

"""The embedded SQLite store: one writer connection in WAL mode, transactions in a worker thread.

SQLite has no row locks, so every write transaction is `BEGIN IMMEDIATE` on the single writer
connection, serialised by a `CapacityLimiter(1)`; reads use a small pool of reader connections
(WAL readers never block the writer). `inline=True` runs transactions on the Trio thread instead,
for `:memory:` databases in MockClock tests where threads would break the virtual clock.
Durability: `synchronous=NORMAL` in WAL mode survives any process crash (SIGKILL included); only
an OS crash or power loss can drop the last commits.

Checkpoints: by default SQLite copies the WAL back into the database file inside the commit that
grows it past 1,000 pages, i.e. in the writer, holding the one write lock for the 10-25 ms the
copy and its fsync take, so every claim and report behind it waits (a lateness spike each time;
often, while retention deletes). A server runs `run_checkpoints` instead: a PASSIVE checkpoint
every `CHECKPOINT_SECONDS` on a connection and thread of its own, which never takes the write
lock. The writer keeps an automatic checkpoint only as a backstop at `BACKSTOP_PAGES`, for a
process that does not run the loop (the admin commands) or a loop that falls behind.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from chronos_server.errors import StoreUnavailable
from chronos_server.store.queries import load_queries, migrations
from chronos_server.store.rows import Row
from chronos_server.store.sql_store import SqlStore

R = TypeVar("R")
READERS = 3
CHECKPOINT_SECONDS = 1.0
BACKSTOP_PAGES = 10_000  # ~40 MB of WAL: the writer checkpoints itself only past this
log = logging.getLogger("chronos.store")


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection, queries: dict[str, str]) -> None:
        self._conn = conn
        self._queries = queries

    def one(self, query: str, **params: Any) -> Row | None:
        row: Row | None = self._conn.execute(self._queries[query], params).fetchone()
        return row

    def all(self, query: str, **params: Any) -> list[Row]:
        return list(self._conn.execute(self._queries[query], params).fetchall())

    def run(self, query: str, **params: Any) -> int:
        return self._conn.execute(self._queries[query], params).rowcount


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    if path != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
    return conn


def _checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """One PASSIVE checkpoint: (busy, WAL frames, frames checkpointed). It copies what no
    reader still needs and never waits for, nor blocks, the writer."""
    busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(busy), int(frames), int(done)


# Primary result codes of a database that is busy or failing rather than of a bad query: the loops
# back off on StoreUnavailable, while anything else (a bug) must still stop the server loudly.
_TRANSIENT_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)


def _in_transaction(conn: sqlite3.Connection, begin: str, fn: Callable[[], R]) -> R:
    try:
        conn.execute(begin)
        try:
            result = fn()
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT leaves the transaction open (and some errors already rolled it
            # back): without this check the writer would refuse every later BEGIN.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result
    except sqlite3.OperationalError as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _TRANSIENT_CODES:
            raise StoreUnavailable(f"SQLite: {exc}") from exc
        raise


def _split_statements(script: str) -> list[str]:
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    return statements


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations in one IMMEDIATE transaction (safe if two processes start)."""

    def apply() -> list[str]:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS chronos_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        )
        done = {r[0] for r in conn.execute("SELECT version FROM chronos_migrations")}
        applied = []
        for version, name, sql in migrations("sqlite"):
            if version in done:
                continue
            for statement in _split_statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO chronos_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, time.time_ns() // 1_000_000),
            )
            applied.append(name)
        return applied

    return _in_transaction(conn, "BEGIN IMMEDIATE", apply)


class SQLiteStore(SqlStore):
    dialect = "sqlite"

    def __init__(
        self,
        writer: sqlite3.Connection,
        readers: list[sqlite3.Connection],
        inline: bool,
        checkpointer: sqlite3.Connection | None = None,
    ) -> None:
        self._writer = writer
        self._readers = readers
        self._inline = inline
        self._checkpointer = checkpointer
        self._checkpoint_thread = trio.CapacityLimiter(1)
        # + list shapes (_register)
        self._queries = load_queries("sqlite") | load_queries("sqlite", "maintenance.sql")
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(max(1, len(readers)))
        # The reader threads' own tokens: with trio's default limiter, reads would queue behind
        # whatever else holds its threads (every push's `getaddrinfo`), and a slow resolver
        # would stall every API read, authentication included.
        self._read_threads = trio.CapacityLimiter(max(1, len(readers)))

    def _register(self, name: str, sql: str) -> str:
        self._queries.setdefault(name, sql)
        return name

    async def _tx(self, fn: Callable[[Any], R]) -> R:
        def work() -> R:
            return _in_transaction(
                self._writer, "BEGIN IMMEDIATE", lambda: fn(_SqliteTx(self._writer, self._queries))
            )

        if self._inline:
            return work()
        return await trio.to_thread.run_sync(work, limiter=self._write_limiter)

    async def _read(self, fn: Callable[[Any], R]) -> R:
        if self._inline or not self._readers:
            return await self._tx(fn)
        async with self._read_limiter:
            conn = self._readers.pop()
            try:
                return await trio.to_thread.run_sync(
                    lambda: _in_transaction(
                        conn, "BEGIN", lambda: fn(_SqliteTx(conn, self._queries))
                    ),
                    limiter=self._read_threads,
                )
            finally:
                self._readers.append(conn)

    async def run_checkpoints(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        conn = self._checkpointer
        if conn is None:  # in memory: no WAL
            return
        while True:
            await trio.sleep(CHECKPOINT_SECONDS)
            try:
                await trio.to_thread.run_sync(_checkpoint, conn, limiter=self._checkpoint_thread)
            except sqlite3.Error as exc:  # e.g. the disk is full: the backstop still holds
                log.warning("SQLite checkpoint failed (%s); trying again", exc)

    async def checkpoint(self) -> tuple[int, int, int]:
        """One checkpoint now, as the loop makes them (tests)."""
        assert self._checkpointer is not None, "an in-memory database has no WAL"
        return await trio.to_thread.run_sync(
            _checkpoint, self._checkpointer, limiter=self._checkpoint_thread
        )

    async def close(self) -> None:
        extra = [] if self._checkpointer is None else [self._checkpointer]
        for conn in [self._writer, *self._readers, *extra]:
            conn.close()


def sqlite_path(database_url: str) -> str:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db` or `sqlite://:memory:` → a path."""
    if not database_url.startswith("sqlite:"):
        raise ValueError(f"not a SQLite URL: {database_url!r}")
    rest = database_url[len("sqlite:") :]
    if rest in ("", "//", "///", "//:memory:", "///:memory:", ":memory:"):
        return ":memory:"
    if rest.startswith("///"):
        return rest[3:]
    if rest.startswith("//"):
        return rest[2:]
    return rest


def open_sqlite_connections(path: str, inline: bool) -> SQLiteStore:
    writer = _connect(path)
    migrate(writer)
    on_disk = not inline and path != ":memory:"
    readers = [_connect(path) for _ in range(READERS)] if on_disk else []
    return SQLiteStore(writer, readers, inline, _connect(path) if on_disk else None)


@asynccontextmanager
async def open_sqlite_store(
    database_url: str, *, inline: bool = False
) -> AsyncIterator[SQLiteStore]:
    path = sqlite_path(database_url)
    if inline:
        store = open_sqlite_connections(path, inline=True)
    else:
        store = await trio.to_thread.run_sync(open_sqlite_connections, path, False)
    try:
        yield store
    finally:
        await store.close()

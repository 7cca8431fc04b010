"""Trio-native PostgreSQL statements: libpq in non-blocking mode, driven from the Trio thread.

psycopg implements its protocol as non-blocking generators (`psycopg.generators`) that yield what
they wait for — the socket readable or writable — and runs them with a blocking or an asyncio wait
function; its author's answer to Trio users is to supply another wait function, which is what
`_wait` is. A statement then costs its round trip and nothing else: measured here, 81 µs for a
trivial query against 202 µs through `trio.to_thread` + psycopg, and no GIL hand-off with a
database thread. The hot path's single statements run here (claims, reports, admission passes,
key lookups, point reads); multi-statement transactions stay on the thread pool (postgres.py).

- Queries are the same named SQL as everywhere (`:name` parameters, turned into `$n` once);
  values are dumped and rows loaded by psycopg's `Transformer` (the same adapters as the thread
  path). Each statement is prepared once per connection (per parameter types).
- A connection failure raises `ConnectionLost` (the store maps it to StoreUnavailable and tells
  its breaker); an SQL error is psycopg's exception, as on the thread path.
- A caller cancelled while its statement is in flight closes that connection (the server rolls
  back a statement that had not committed); it is never reused, so no late answer is misread.
"""

from __future__ import annotations

import re
import select
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager, suppress
from typing import Any

import psycopg
import trio
from psycopg import generators, pq
from psycopg.adapt import PyFormat, Transformer
from psycopg.errors import error_from_result
from psycopg.waiting import Ready, Wait

from chronos_server.store.rows import Row

_PARAM = re.compile(r"(?<![:\w]):(\w+)")  # `:name`, never the `::` of a cast
_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


class ConnectionLost(Exception):
    """The connection broke (or could not be made): nothing more can be said about the
    statement that was in flight."""


def numbered(sql: str) -> tuple[bytes, list[str]]:
    """`:name` parameters → `$1..$n` (a repeated name keeps its number) and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAM.sub(number, sql).encode(), names


class NativeConnection:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.pgconn.nonblocking = 1
        self.usable = True
        self._prepared: dict[tuple[str, tuple[int, ...]], bytes] = {}

    def close(self) -> None:
        self.usable = False
        with suppress(Exception):
            self.conn.close()

    async def execute(
        self, name: str, sql: tuple[bytes, list[str]], params: dict[str, Any]
    ) -> list[Row]:
        query, names = sql
        tx = Transformer(self.conn)
        values = tx.dump_sequence([params[n] for n in names], [PyFormat.AUTO] * len(names))
        key = (name, tuple(tx.types or ()))
        statement = self._prepared.get(key)
        done = False
        try:
            if statement is None:
                statement = f"chronos_{len(self._prepared)}".encode()
                self.pgconn.send_prepare(statement, query, param_types=tx.types)
                self._check(await self._wait(generators.execute(self.pgconn)))
                self._prepared[key] = statement
            self.pgconn.send_query_prepared(statement, values, param_formats=tx.formats)
            result = self._check(await self._wait(generators.execute(self.pgconn)))
            done = True
        except psycopg.OperationalError as exc:
            self.close()
            raise ConnectionLost(str(exc)) from exc
        finally:
            if (
                not done
                and self.usable
                and self.pgconn.transaction_status != pq.TransactionStatus.IDLE
            ):
                self.close()  # cancelled mid-statement: its answer must never be read as another's
        tx.set_pgresult(result)
        columns = [(result.fname(i) or b"").decode() for i in range(result.nfields)]
        return tx.load_rows(
            0, result.ntuples, lambda values: dict(zip(columns, values, strict=True))
        )

    def _check(self, results: list[pq.abc.PGresult]) -> pq.abc.PGresult:
        result = results[-1]
        if result.status not in _OK:
            raise error_from_result(result, encoding=self.conn.info.encoding)
        return result

    async def _wait(self, gen: Generator[Any, Any, list[pq.abc.PGresult]]) -> list[pq.abc.PGresult]:
        fileno = self.pgconn.socket
        try:
            state = next(gen)
            while True:
                state = gen.send(await _ready(fileno, state))
        except StopIteration as stop:
            results: list[pq.abc.PGresult] = stop.value
            return results


async def _ready(fileno: int, state: Any) -> Ready:
    if state == Wait.R:
        await trio.lowlevel.wait_readable(fileno)
        return Ready.R
    if state == Wait.W:
        await trio.lowlevel.wait_writable(fileno)
        return Ready.W
    poller = select.poll()  # Wait.RW: whichever comes first (rare: a large send under way)
    poller.register(fileno, select.POLLIN | select.POLLOUT)
    while not (events := poller.poll(0)):
        await trio.lowlevel.wait_writable(fileno)
    readable = any(mask & (select.POLLIN | select.POLLHUP | select.POLLERR) for _, mask in events)
    writable = any(mask & select.POLLOUT for _, mask in events)
    if readable and writable:
        return Ready.RW
    return Ready.R if readable else Ready.W


class NativePool:
    """Up to `size` native connections; made on demand (connecting is blocking: a thread),
    reused last-in first-out so the warm ones stay warm."""

    def __init__(self, conninfo: str, size: int, connect_kwargs: dict[str, Any]) -> None:
        self._conninfo = conninfo
        self._kwargs = connect_kwargs
        self._slots = trio.Semaphore(size)
        # Connecting blocks: its own threads, never trio's default limiter (which resolver
        # threads of push deliveries may hold; tests/store/test_thread_limiter.py).
        self._connecting = trio.CapacityLimiter(size)
        self._idle: list[NativeConnection] = []
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[NativeConnection]:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            finally:
                if conn.usable and not self._closed:
                    self._idle.append(conn)
                else:
                    conn.close()

    async def _connect(self) -> NativeConnection:
        try:
            raw = await trio.to_thread.run_sync(
                lambda: psycopg.connect(self._conninfo, **self._kwargs),
                abandon_on_cancel=True,
                limiter=self._connecting,
            )
        except psycopg.OperationalError as exc:
            raise ConnectionLost(str(exc)) from exc
        return NativeConnection(raw)

    def drain(self) -> None:
        """Drop every idle connection (after a lost one: they may all be dead)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        self._closed = True
        self.drain()

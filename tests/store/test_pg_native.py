"""The Trio-native statement path (store/pg_native.py) on a real PostgreSQL: parameters and
rows as on the thread path, statements prepared per parameter types, a cancelled statement
closing its connection, a lost connection answered with StoreUnavailable."""

from __future__ import annotations

import pytest
import trio

from chronos_server.errors import StoreUnavailable
from chronos_server.store.pg_listen import CONNECT_KWARGS
from chronos_server.store.pg_native import NativePool, numbered
from tests import pg


def test_named_parameters_become_numbered_once_each() -> None:
    sql, names = numbered("SELECT :a::text, :b, :a, x::bigint, ':' FROM t WHERE y = :b_2")
    assert sql == b"SELECT $1::text, $2, $1, x::bigint, ':' FROM t WHERE y = $3"
    assert names == ["a", "b", "b_2"]


@pytest.fixture
def url() -> str:
    return pg.new_schema_url()


async def test_values_and_rows_round_trip(url: str) -> None:
    pool = NativePool(url, 2, CONNECT_KWARGS)
    sql = numbered("SELECT :n::bigint + 1 AS n, :s::text AS s, :l::text[] AS l, :z::text AS z")
    async with pool.connection() as conn:
        rows = await conn.execute("q", sql, {"n": 41, "s": "é", "l": ["a", "b"], "z": None})
        assert rows == [{"n": 42, "s": "é", "l": ["a", "b"], "z": None}]
        # An int that needs a wider type is prepared again, not sent with the first types.
        big = await conn.execute("q", sql, {"n": 2**40, "s": "", "l": [], "z": "x"})
        assert big[0]["n"] == 2**40 + 1
    pool.close()


async def test_a_cancelled_statement_closes_its_connection(url: str) -> None:
    pool = NativePool(url, 1, CONNECT_KWARGS)
    sleep = numbered("SELECT pg_sleep(:s)")
    async with pool.connection() as conn:
        with trio.move_on_after(0.2):
            await conn.execute("sleep", sleep, {"s": 5})
        assert not conn.usable
    async with pool.connection() as fresh:  # a new connection, answering at once
        assert fresh is not conn
        assert await fresh.execute("one", numbered("SELECT 1 AS one"), {}) == [{"one": 1}]
    pool.close()


async def test_a_lost_connection_is_store_unavailable(url: str) -> None:
    async with pg.open_test_store(url) as store:
        assert await store._query("count_accounts") == [{"n": 0}]
        pg.terminate_backends(url)
        with pytest.raises(StoreUnavailable):
            await store._query("count_accounts")
        assert await store._query("count_accounts") == [{"n": 0}]  # the pool made a new one

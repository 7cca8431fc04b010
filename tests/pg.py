"""PostgreSQL for the tests: one fresh database per test session, one fresh schema per store.

`CHRONOS_TEST_POSTGRES_URL` (default `postgresql://postgres@127.0.0.1:5432/test`) names the server
and a database to connect to first. The session creates its own `chronos_test_<pid>_<hex>` database
there on first use and drops it at the end (`pytest_sessionfinish` in tests/conftest.py), so runs
never see each other's rows; each store or server then gets its own schema in it (a
`search_path` in the URL), so tests never see each other's rows either.

PostgreSQL unreachable: the test is skipped with a message saying so — except under `CI=true`,
where it fails: CI must never pass by silently skipping a whole store.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
import trio

from chronos_server.store.postgres import PostgresStore, open_postgres_store

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
_schemas = itertools.count(1)
_session_url: str | None = None
_unreachable: str | None = None


def base_url() -> str:
    return os.environ.get("CHRONOS_TEST_POSTGRES_URL") or DEFAULT_URL


def with_database(url: str, dbname: str, schema: str | None = None) -> str:
    """`url` pointing at another database (and, given `schema`, with it as the search_path)."""
    parts = urlsplit(url)
    query = f"options={quote(f'-csearch_path={schema}', safe='')}" if schema else ""
    return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", query, ""))


def _unavailable(reason: str) -> None:
    message = (
        f"PostgreSQL is not reachable at {base_url()} ({reason}); "
        "set CHRONOS_TEST_POSTGRES_URL to run the PostgreSQL tests"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " — under CI=true this is a failure, not a skip", pytrace=False)
    pytest.skip(message)


def session_url() -> str:
    """The URL of this session's own database, created on first use."""
    global _session_url, _unreachable
    if _session_url is not None:
        return _session_url
    if _unreachable is None:
        name = f"chronos_test_{os.getpid()}_{secrets.token_hex(4)}"
        try:
            with psycopg.connect(base_url(), autocommit=True, connect_timeout=3) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            _session_url = with_database(base_url(), name)
            return _session_url
        except psycopg.OperationalError as exc:
            _unreachable = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    _unavailable(_unreachable)
    raise AssertionError("unreachable")  # _unavailable always raises


def drop_session_database() -> None:
    global _session_url
    if _session_url is None:
        return
    name = urlsplit(_session_url).path.lstrip("/")
    _session_url = None
    with psycopg.connect(base_url(), autocommit=True, connect_timeout=3) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def new_schema_url() -> str:
    """A URL whose connections live in a new, empty schema of the session database."""
    url = session_url()
    schema = f"s{next(_schemas)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return with_database(url, urlsplit(url).path.lstrip("/"), schema)


async def new_schema_url_async() -> str:
    return await trio.to_thread.run_sync(new_schema_url)


@asynccontextmanager
async def open_test_store(url: str | None = None) -> AsyncIterator[PostgresStore]:
    """A migrated PostgresStore on a fresh schema (or on `url`, to share one with another)."""
    async with open_postgres_store(url or await new_schema_url_async()) as store:
        yield store


async def eventually(check: Callable[[], bool | Awaitable[bool]], seconds: float = 10) -> None:
    """Poll `check` (sync or async) until it is true; fail after `seconds`."""
    with trio.fail_after(seconds):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await trio.sleep(0.02)


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """A plain autocommit connection for a test's own inspection queries."""
    return psycopg.connect(url, autocommit=True)


def dbname(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def terminate_backends(url: str) -> int:
    """Kill every other connection to the session database, as a database restart would."""
    with connect(base_url()) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname(url),),
        ).fetchall()
    return len(rows)


@contextmanager
def database_down(url: str) -> Iterator[None]:
    """The session database refuses connections and has lost all of them, until the block ends."""
    name = dbname(url)
    with connect(base_url()) as conn:
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        try:
            terminate_backends(url)
            yield
        finally:
            conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")

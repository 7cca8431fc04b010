"""`open_store(url)`: picks the store implementation from the database URL's scheme."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chronos_server.store.base import Store
from chronos_server.store.sqlite import open_sqlite_store


@asynccontextmanager
async def open_store(database_url: str) -> AsyncIterator[Store]:
    if database_url.startswith("sqlite:"):
        async with open_sqlite_store(database_url) as store:
            yield store
        return
    if database_url.startswith(("postgresql:", "postgres:")):
        # Imported here so that a SQLite-only run never loads the PostgreSQL driver.
        from chronos_server.store.postgres import open_postgres_store

        async with open_postgres_store(database_url) as pg_store:
            yield pg_store
        return
    raise ValueError(f"unsupported database URL scheme: {database_url!r}")

"""Migration 0005 (signing-secret rotation) on a database written before it, on both dialects.

The database is built at schema version 3 with the real 0001-0003 files and holds an account with
a secret. After the upgrade the secret is untouched and no rotation is in progress. 0005 touches
`accounts` only, so it must also apply when another branch's 0004 (schedule columns) reaches a
database after 0005 did; a stand-in 0004 checks the runner takes it late.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chronos_server.store import postgres as pg_store
from chronos_server.store import sqlite as sqlite_store
from chronos_server.store.base import SigningSecrets, Store
from chronos_server.store.queries import migrations
from tests import pg

from .conftest import T0

Migrations = list[tuple[int, str, str]]
SECRET, NEW = "whsec_QUFBQQ==", "whsec_QkJCQg=="
STAND_IN_0004 = (4, "0004_stand_in.sql", "ALTER TABLE schedules ADD COLUMN stand_in INTEGER;")


def up_to(dialect: str, version: int) -> Migrations:
    return [m for m in migrations(dialect) if m[0] <= version]


@dataclass
class Database:
    """A database migrated only as far as `migrate(files)` says."""

    dialect: str
    migrate: Callable[[Migrations], list[str]]
    execute: Callable[[str], object]
    rows: Callable[[str], list[tuple[Any, ...]]]
    open: Callable[[], AbstractAsyncContextManager[Store]]


@contextmanager
def sqlite_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)

    def migrate(files: Migrations) -> list[str]:
        with monkeypatch.context() as m:
            m.setattr(sqlite_store, "migrations", lambda _dialect: files)
            return sqlite_store.migrate(conn)

    try:
        yield Database(
            "sqlite",
            migrate,
            conn.execute,
            lambda sql: conn.execute(sql).fetchall(),
            lambda: sqlite_store.open_sqlite_store(f"sqlite:///{path}"),
        )
    finally:
        conn.close()


@contextmanager
def postgres_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    url = pg.new_schema_url()
    with pg.connect(url) as conn:

        def migrate(files: Migrations) -> list[str]:
            with monkeypatch.context() as m:
                m.setattr(pg_store, "migrations", lambda _dialect: files)
                return pg_store.migrate(conn)

        @asynccontextmanager
        async def open_store() -> AsyncIterator[Store]:
            async with pg.open_test_store(url) as store:
                yield store

        yield Database(
            "postgres",
            migrate,
            conn.execute,
            lambda sql: conn.execute(sql).fetchall(),
            open_store,
        )


@pytest.fixture(params=["sqlite", "postgres"])
def db(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Database]:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skip (or fail under CI) with a reason
        with postgres_database(monkeypatch) as database:
            yield database
    else:
        with sqlite_database(tmp_path, monkeypatch) as database:
            yield database


def add_account(db: Database) -> None:
    db.execute(
        "INSERT INTO accounts (id, name, timezone, signing_secret, created_at) "
        f"VALUES ('acc-1', 'acme', 'UTC', '{SECRET}', {T0})"
    )


async def test_upgrade_keeps_the_secret_and_starts_no_rotation(db: Database) -> None:
    db.migrate(up_to(db.dialect, 3))
    add_account(db)
    assert "0005_secret_rotation.sql" in db.migrate(migrations(db.dialect))
    async with db.open() as store:
        assert await store.get_signing_secrets("acc-1") == SigningSecrets(SECRET)
        rotated = await store.rotate_signing_secret("acc-1", NEW, previous_until=T0 + 1000)
        assert rotated == SigningSecrets(NEW, SECRET, T0 + 1000)


async def test_a_0004_that_arrives_after_0005_is_still_applied(db: Database) -> None:
    db.migrate(up_to(db.dialect, 3))
    add_account(db)
    without_0004 = [m for m in migrations(db.dialect) if m[0] != 4]
    assert "0005_secret_rotation.sql" in db.migrate(without_0004)
    later = [m for m in without_0004 if m[0] > 3]
    assert db.migrate([*up_to(db.dialect, 3), STAND_IN_0004, *later]) == ["0004_stand_in.sql"]
    assert (4,) in db.rows("SELECT version FROM chronos_migrations")
    assert db.rows("SELECT stand_in FROM schedules") == []
    assert db.rows("SELECT signing_secret_previous FROM accounts") == [(None,)]


def test_a_previous_secret_always_has_an_end_and_an_end_a_secret(db: Database) -> None:
    db.migrate(migrations(db.dialect))
    add_account(db)
    refused = (sqlite3.IntegrityError, psycopg.errors.CheckViolation)
    with pytest.raises(refused):
        db.execute(f"UPDATE accounts SET signing_secret_previous = '{SECRET}'")
    with pytest.raises(refused):
        db.execute(f"UPDATE accounts SET signing_secret_previous_until = {T0}")
    db.execute(
        f"UPDATE accounts SET signing_secret_previous = '{NEW}', "
        f"signing_secret_previous_until = {T0}"
    )

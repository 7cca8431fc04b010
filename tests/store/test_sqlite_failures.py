"""SQLite only: driver failures at the store boundary.

The loops back off only on `StoreUnavailable` (conventions: transient families); a locked or
failing database must surface as that, not as a raw `sqlite3` exception that stops the server.
And a failed COMMIT must not leave the single writer connection inside an open transaction, or
every later write fails with "cannot start a transaction within a transaction".
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from chronos_server import errors
from chronos_server.core.models import JobStatus
from chronos_server.store.base import Store
from chronos_server.store.sqlite import SQLiteStore

from .conftest import T0, Accounts, make_job, must_job


class _CommitFailsOnce:
    """Wraps the writer connection; its next COMMIT fails as a full disk would."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.armed = True

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.armed:
            self.armed = False
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)


@pytest.mark.stores("sqlite-file")
async def test_locked_database_is_store_unavailable(
    store: Store, acct: Accounts, tmp_path: Path
) -> None:
    assert isinstance(store, SQLiteStore)
    store._writer.execute("PRAGMA busy_timeout = 50")  # fail fast instead of after 10 s
    other = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(errors.StoreUnavailable):
            await store.insert_job(make_job(acct.a))
        with pytest.raises(errors.StoreUnavailable):
            await store.take_due_jobs(T0, 10)
        other.execute("ROLLBACK")
    finally:
        other.close()

    job = make_job(acct.a)
    await store.insert_job(job)  # the lock is gone: the store carries on
    assert await store.take_due_jobs(T0, 10) == [job.id]


@pytest.mark.stores("sqlite-file", "sqlite-memory-inline")
async def test_failed_commit_leaves_the_writer_usable(store: Store, acct: Accounts) -> None:
    assert isinstance(store, SQLiteStore)
    real = store._writer
    store._writer = _CommitFailsOnce(real)  # type: ignore[assignment]
    lost = make_job(acct.a)
    try:
        with pytest.raises((errors.StoreUnavailable, sqlite3.OperationalError)):
            await store.insert_job(lost)
    finally:
        store._writer = real

    assert not real.in_transaction
    assert await store.get_job(acct.a, lost.id) is None  # rolled back, not half-committed
    kept = make_job(acct.a)
    await store.insert_job(kept)
    assert (await must_job(store, acct.a, kept.id)).status is JobStatus.PENDING

"""SQLite only: WAL checkpoints happen beside the writer, never inside its commits.

SQLite's default copies the WAL back into the database inside the commit that grows it past
1,000 pages, holding the one write lock meanwhile (every claim and report behind it waits). The
writer now checkpoints itself only past a backstop; `run_checkpoints` (in the server's root
nursery) makes PASSIVE checkpoints on a connection of its own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from chronos_server.store import sqlite as sqlite_store
from chronos_server.store.sqlite import BACKSTOP_PAGES, open_sqlite_store


def _grow_wal(conn: sqlite3.Connection, pages: int) -> None:
    """Commit about `pages` pages of writes, 100 rows (one page each) per commit."""
    conn.execute("CREATE TABLE IF NOT EXISTS scratch (blob BLOB)")
    for _ in range(pages // 100 + 1):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO scratch VALUES (randomblob(3000))", [()] * 100)
        conn.execute("COMMIT")


async def test_commits_past_a_thousand_pages_do_not_checkpoint_in_the_writer(
    tmp_path: Path,
) -> None:
    async with open_sqlite_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        writer = store._writer
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
        _grow_wal(writer, 1500)
        busy, frames, done = await store.checkpoint()
        # The WAL held every commit (SQLite's default would have reset it past 1,000 pages);
        # the checkpointer's connection copied them all back.
        assert busy == 0 and frames > 1500 and done == frames


async def test_the_loop_checkpoints_on_its_own_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[int, int, int]] = []
    real = sqlite_store._checkpoint
    seen = trio.Event()

    def recording(conn: sqlite3.Connection) -> tuple[int, int, int]:
        result = real(conn)
        made.append(result)
        _, frames, done = result
        if frames > 300 and done == frames:  # the writes below, all copied back
            trio.from_thread.run_sync(seen.set)
        return result

    monkeypatch.setattr(sqlite_store, "_checkpoint", recording)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_SECONDS", 0.01)
    async with open_sqlite_store(f"sqlite:///{tmp_path / 'l.db'}") as store:
        checkpointer = store._checkpointer
        assert checkpointer is not None and checkpointer is not store._writer
        await trio.to_thread.run_sync(_grow_wal, store._writer, 300)
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run_checkpoints)
            with trio.fail_after(10):
                await seen.wait()
            nursery.cancel_scope.cancel()
    assert made[0][0] == 0  # never busy: the writer was idle


async def test_an_in_memory_store_has_no_checkpoint_loop() -> None:
    async with open_sqlite_store("sqlite://:memory:", inline=True) as store:
        assert store._checkpointer is None
        with trio.fail_after(1):
            await store.run_checkpoints()  # returns at once

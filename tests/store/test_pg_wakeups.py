"""PostgreSQL only: wake-ups across replicas (LISTEN/NOTIFY) and the fallback that does not
depend on them. Two stores on one schema stand for two server processes; the board is a fake
that records what it is told."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from chronos_server.core.models import JobStatus
from chronos_server.store import pg_listen
from chronos_server.store.base import ReadyBatch
from chronos_server.store.postgres import PostgresStore
from tests import pg

from .conftest import T0, make_job

pytestmark = pytest.mark.usefixtures("postgres_url")  # skip/fail with a reason


class FakeBoard:
    def __init__(self, keys: list[tuple[str, str]] | None = None) -> None:
        self.keys = keys or []
        self.notified: list[tuple[str, str, int]] = []
        self.checks = 0
        self.limit_changes = 0

    def notify(self, account_id: str, handler: str, count: int) -> int:
        self.notified.append((account_id, handler, count))
        return count

    def parked_keys(self) -> list[tuple[str, str]]:
        self.checks += 1
        return self.keys

    def limits_changed(self) -> None:
        self.limit_changes += 1


@asynccontextmanager
async def listening(store: PostgresStore, board: FakeBoard) -> AsyncIterator[None]:
    """`store.run_listener(board)` in the background, once its first LISTEN is in place."""
    async with trio.open_nursery() as nursery:
        await nursery.start(store.run_listener, board)
        await pg.eventually(lambda: board.checks >= 1)  # the resync that follows each connect
        yield
        nursery.cancel_scope.cancel()


def listener_pids(url: str) -> set[int]:
    with pg.connect(pg.base_url()) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE query = %s AND datname = %s",
            (f"LISTEN {pg_listen.CHANNEL}", pg.dbname(url)),
        ).fetchall()
    return {int(str(r[0])) for r in rows}


async def make_ready(store: PostgresStore, account_id: str, handler: str, n: int) -> None:
    jobs = [make_job(account_id, handler=handler) for _ in range(n)]
    for job in jobs:
        await store.insert_job(job)
    taken = await store.take_due_jobs(T0, 100)
    await store.queue_admitted(taken, T0)
    assert await store.ready_pull_jobs(T0, 100) == [ReadyBatch(account_id, handler, n)]


async def test_jobs_made_ready_by_one_replica_wake_claimers_of_another() -> None:
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as one, pg.open_test_store(url) as two:
        account, _ = await one.ensure_account("acme", T0)
        remote, local = FakeBoard(), FakeBoard()
        async with listening(two, remote), listening(one, local):
            await make_ready(one, account.id, "h", 3)
            await pg.eventually(lambda: remote.notified == [(account.id, "h", 3)])
            await make_ready(one, account.id, "other", 1)
            await pg.eventually(lambda: len(remote.notified) == 2)
            # The dispatcher that made jobs ready wakes its own claimers, so its listener skips
            # its own NOTIFYs; they arrive in commit order, so once `two`'s later one is in,
            # `one`'s would have been too.
            await make_ready(two, account.id, "late", 1)
            await pg.eventually(lambda: local.notified == [(account.id, "late", 1)])


async def test_a_change_of_limits_on_one_replica_is_announced_to_the_others() -> None:
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as one, pg.open_test_store(url) as two:
        account, _ = await one.ensure_account("acme", T0)
        remote, local = FakeBoard(), FakeBoard()
        async with listening(two, remote), listening(one, local):
            connected = remote.limit_changes  # each (re)connect counts as a possible change
            await one.set_handler_limits(account.id, "h", 2, None, T0)
            await pg.eventually(lambda: remote.limit_changes == connected + 1)
            await one.delete_handler_limits(account.id, "h", T0)
            await pg.eventually(lambda: remote.limit_changes == connected + 2)
            # Its own announcements are not news to the process that made them.
            assert local.limit_changes == 1


async def test_after_connecting_the_listener_wakes_claimers_of_jobs_already_ready() -> None:
    async with pg.open_test_store() as store:
        account, _ = await store.ensure_account("acme", T0)
        for _ in range(2):  # ready without any NOTIFY, e.g. while no listener was connected
            await store.insert_job(make_job(account.id, status=JobStatus.READY, handler="h"))
        board = FakeBoard([(account.id, "h"), (account.id, "idle")])
        async with listening(store, board):
            await pg.eventually(lambda: board.notified == [(account.id, "h", 2)])


async def test_the_listener_reconnects_after_its_connection_is_killed() -> None:
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as one, pg.open_test_store(url) as two:
        account, _ = await one.ensure_account("acme", T0)
        board = FakeBoard()
        async with listening(two, board):
            first = await trio.to_thread.run_sync(listener_pids, url)
            assert len(first) == 1
            checks = board.checks
            await trio.to_thread.run_sync(pg.terminate_backends, url)

            async def new_listener() -> bool:
                pids = await trio.to_thread.run_sync(listener_pids, url)
                return bool(pids) and not pids & first

            await pg.eventually(new_listener)
            await pg.eventually(lambda: board.checks > checks)  # resynced after reconnecting
            await make_ready(one, account.id, "h", 1)
            await pg.eventually(lambda: board.notified == [(account.id, "h", 1)])


def test_notify_payloads_round_trip_split_under_the_limit_and_skip_their_origin() -> None:
    batches = [ReadyBatch(f"account-{i:04d}", "h" * 200, i) for i in range(100)]
    payloads = pg_listen.encode_ready("me", batches)
    assert len(payloads) > 1
    assert all(len(p.encode()) < pg_listen.MAX_PAYLOAD_BYTES for p in payloads)
    decoded = [b for p in payloads for b in pg_listen.decode_ready(p, "someone-else")]
    assert decoded == batches
    assert all(pg_listen.decode_ready(p, "me") == [] for p in payloads)
    assert pg_listen.decode_ready("not json", "me") == []
    assert pg_listen.decode_ready('{"o": "x", "r": [["a", "h"]]}', "me") == []

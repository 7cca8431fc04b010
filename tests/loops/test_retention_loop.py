"""The retention loop under MockClock on the inline SQLite store: finished jobs go once their
period has passed (not before), in batches, never an unfinished job; progress is logged."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from chronos_server.clock import TrioClock
from chronos_server.core.models import PULL, Job, JobStatus, Trigger
from chronos_server.loops.retention import Pruner, run_retention
from chronos_server.settings import parse_retention
from chronos_server.store.sqlite import open_sqlite_store
from chronos_server.store.transactions import new_id

ORIGIN_MS = 1_800_000_000_000
DAY = 86_400.0


def job(account_id: str, now: int) -> Job:
    return Job(
        id=new_id(), account_id=account_id, schedule_id=None, name="j", description=None,
        handler="h", delivery=PULL, payload=None, timeout=30, max_retries=3,
        idempotency_key=None, status=JobStatus.PENDING, scheduled_for=now + 10**10,
        run_at=now + 10**10, attempt_count=0, last_execution_id=None,
        first_trigger=Trigger.API, created_at=now, updated_at=now,
    )  # fmt: skip


async def test_finished_jobs_go_after_their_period_in_batches(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chronos.retention")
    async with open_sqlite_store("sqlite://:memory:", inline=True) as store:
        clock = TrioClock(ORIGIN_MS)
        account, _ = await store.ensure_account("acme", ORIGIN_MS)
        now = clock.now_ms()
        cancelled = [job(account.id, now) for _ in range(5)]
        waiting = [job(account.id, now) for _ in range(2)]
        await store.insert_jobs(cancelled + waiting)
        for j in cancelled:
            await store.cancel_job(account.id, j.id, now)
        pruner = Pruner(store, clock, parse_retention("1d,failed=7d"), batch_size=2)
        async with trio.open_nursery() as nursery:
            await nursery.start(run_retention, pruner, 3600.0)
            await trio.sleep(DAY - 1)
            assert all([await store.get_job(account.id, j.id) for j in cancelled])
            await trio.sleep(3600 + 2)  # the first round after the period
            for j in cancelled:
                assert await store.get_job(account.id, j.id) is None
            for j in waiting:
                assert await store.get_job(account.id, j.id) is not None
            stats = pruner.statistics()
            assert stats.jobs == {"cancelled": 5} and stats.batches >= 3
            await trio.sleep(30 * DAY)
            for j in waiting:
                assert await store.get_job(account.id, j.id) is not None
            nursery.cancel_scope.cancel()
    assert any("retention: deleted 5 job(s) (cancelled 5)" in r.message for r in caplog.records)


async def test_off_keeps_everything(autojump_clock: trio.testing.MockClock) -> None:
    async with open_sqlite_store("sqlite://:memory:", inline=True) as store:
        clock = TrioClock(ORIGIN_MS)
        account, _ = await store.ensure_account("acme", ORIGIN_MS)
        old = job(account.id, clock.now_ms())
        await store.insert_job(old)
        await store.cancel_job(account.id, old.id, clock.now_ms())
        pruner = Pruner(store, clock, parse_retention("off"))
        with trio.fail_after(1):
            await run_retention(pruner)  # returns at once: nothing to do, ever
        await trio.sleep(400 * DAY)
        assert await pruner.round_once() is not None
        assert await store.get_job(account.id, old.id) is not None

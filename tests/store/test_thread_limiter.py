"""Store calls never wait for trio's default thread limiter.

That limiter is shared with everything else that runs in a thread, `trio.socket.getaddrinfo`
among it: push deliveries to hosts whose DNS is slow used to take all its tokens, and every
SQLite read (authentication, lists, gets) then queued behind them: the API stalled for seconds
(found by the schemathesis run, tests/api/test_schemathesis.py). Each store runs its queries on
threads counted by its own limiters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from chronos_server.store.base import Store

from .conftest import Accounts, make_job, must_job


@asynccontextmanager
async def default_threads_taken() -> AsyncIterator[None]:
    """Every token of trio's default thread limiter held, as busy resolver threads hold them."""
    limiter = trio.to_thread.current_default_thread_limiter()
    holders = [object() for _ in range(int(limiter.total_tokens))]
    for holder in holders:
        await limiter.acquire_on_behalf_of(holder)
    try:
        yield
    finally:
        for holder in holders:
            limiter.release_on_behalf_of(holder)


async def test_reads_and_writes_do_not_need_default_threads(store: Store, acct: Accounts) -> None:
    job = make_job(acct.a)
    async with default_threads_taken():
        with trio.fail_after(10):  # bounds a regression; the calls take milliseconds
            await store.insert_job(job)
            assert (await must_job(store, acct.a, job.id)).id == job.id
            assert await store.account_for_key("0" * 64) is None

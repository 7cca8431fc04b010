"""`insert_jobs`: several jobs in one transaction (one statement on PostgreSQL), each inserted or
refused on its own with the idempotency conflict a create of each in turn would get (§12.1)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
import trio

from chronos_server.core.models import Job, JobStatus
from chronos_server.errors import ChronosError, IdempotencyKeyConflict
from chronos_server.store.base import Store

from .conftest import T0, Accounts, job_ids, make_job


def _holders(results: list[Job | ChronosError]) -> list[str | None]:
    """None for a job inserted, else the id its conflict names."""
    out: list[str | None] = []
    for result in results:
        if isinstance(result, IdempotencyKeyConflict):
            out.append(result.existing_job_id)
        else:
            assert isinstance(result, Job), result
            out.append(None)
    return out


async def test_inserts_every_job_in_order_and_each_round_trips(
    store: Store, acct: Accounts
) -> None:
    jobs = [make_job(acct.a, run_at=T0 + i, payload={"i": i, "text": "snow ☃"}) for i in range(5)]
    jobs.append(make_job(acct.a, status=JobStatus.READY, idempotency_key="k", handler="x"))
    results = await store.insert_jobs(jobs)
    assert results == jobs
    for job in jobs:
        assert await store.get_job(acct.a, job.id) == job


async def test_no_jobs_is_nothing(store: Store, acct: Accounts) -> None:
    assert await store.insert_jobs([]) == []


async def test_a_key_already_held_refuses_only_its_own_job(store: Store, acct: Accounts) -> None:
    held = make_job(acct.a, idempotency_key="order-42")
    await store.insert_job(held)
    jobs = [
        make_job(acct.a),
        make_job(acct.a, idempotency_key="order-42", handler="other"),
        make_job(acct.a, idempotency_key="order-43"),
    ]
    results = await store.insert_jobs(jobs)
    assert _holders(results) == [None, held.id, None]
    conflict = results[1]
    assert isinstance(conflict, ChronosError)
    assert [e.to_json() for e in conflict.errors] == [
        {
            "field": "idempotency_key",
            "message": f"already used by job {held.id}",
            "job_id": held.id,
        }
    ]
    assert await store.get_job(acct.a, jobs[1].id) is None
    assert sorted(await job_ids(store, acct.a)) == sorted([held.id, jobs[0].id, jobs[2].id])


async def test_a_key_given_twice_is_taken_by_the_first(store: Store, acct: Accounts) -> None:
    await store.insert_job(held := make_job(acct.a, idempotency_key="old"))
    jobs = [
        make_job(acct.a, idempotency_key="new"),
        make_job(acct.a, idempotency_key="old"),
        make_job(acct.a, idempotency_key="new"),
        make_job(acct.a, idempotency_key="old"),
        make_job(acct.b, idempotency_key="new"),  # another account's key space
    ]
    results = await store.insert_jobs(jobs)
    assert _holders(results) == [None, held.id, jobs[0].id, held.id, None]
    assert await store.get_job(acct.a, jobs[2].id) is None
    assert await store.get_job(acct.b, jobs[4].id) == jobs[4]


async def test_a_failed_insert_writes_none_of_the_jobs(store: Store, acct: Accounts) -> None:
    jobs = [make_job(acct.a), make_job("no-such-account"), make_job(acct.a)]
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        await store.insert_jobs(jobs)  # a bug, not a refusal to report
    assert await job_ids(store, acct.a) == []


@pytest.mark.stores("sqlite-file", "postgres")
async def test_concurrent_inserts_of_one_key_make_one_job(store: Store, acct: Accounts) -> None:
    """Racing writes (threads; on PostgreSQL the losers wait on the winner's row, which their
    statement cannot see): exactly one is inserted and every other names it."""
    jobs = [make_job(acct.a, idempotency_key="race") for _ in range(12)]
    results: dict[str, Job | ChronosError] = {}

    async def insert(job: Job) -> None:
        [results[job.id]] = await store.insert_jobs([job])

    async with trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(insert, job)
    winners = [job_id for job_id, result in results.items() if isinstance(result, Job)]
    assert len(winners) == 1
    assert sorted(_holders(list(results.values())), key=str) == [None] + winners * 11
    assert await job_ids(store, acct.a) == winners

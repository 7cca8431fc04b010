"""Accounts, API keys, signing secrets (§13, G-20, G-21) and foreign-account isolation."""

from __future__ import annotations

import random

import pytest

from chronos_server import errors
from chronos_server.core.models import ExecutionStatus, JobStatus
from chronos_server.store.base import Store

from .conftest import (
    DONE,
    T0,
    Accounts,
    insert_running,
    make_job,
    make_schedule,
    must_execution,
    must_job,
    must_schedule,
)


async def test_ensure_account_is_idempotent(store: Store) -> None:
    first, created = await store.ensure_account("acme", T0)
    again, created_again = await store.ensure_account("acme", T0 + 1000)
    other, created_other = await store.ensure_account("other", T0)

    assert (created, created_again, created_other) == (True, False, True)
    assert again == first
    assert first.created_at == T0 and first.timezone == "UTC" and first.signing_secret is None
    assert other.id != first.id
    assert await store.count_accounts() == 2
    assert await store.get_account(first.id) == first
    assert await store.get_account("no-such-account") is None


async def test_api_keys_resolve_and_revoke_by_hash(store: Store, acct: Accounts) -> None:
    await store.add_api_key(acct.a, "hash-one", "chrns_onexxxxx", T0)
    await store.add_api_key(acct.a, "hash-two", "chrns_twoxxxxx", T0)
    await store.add_api_key(acct.b, "hash-three", "chrns_thrxxxxx", T0)

    found = await store.account_for_key("hash-one")
    assert found is not None and found.id == acct.a
    found_b = await store.account_for_key("hash-three")
    assert found_b is not None and found_b.id == acct.b
    assert await store.account_for_key("chrns_onexxxxx") is None  # a prefix is not a key
    assert await store.account_for_key("unknown-hash") is None

    assert await store.revoke_api_key("hash-one", T0 + 1) == 1
    assert await store.account_for_key("hash-one") is None
    still = await store.account_for_key("hash-two")
    assert still is not None and still.id == acct.a
    assert await store.revoke_api_key("hash-one", T0 + 2) == 0  # already revoked


async def test_api_keys_revoke_by_display_prefix(store: Store, acct: Accounts) -> None:
    await store.add_api_key(acct.a, "hash-one", "chrns_onexxxxx", T0)
    await store.add_api_key(acct.a, "hash-two", "chrns_twoxxxxx", T0)

    assert await store.revoke_api_key("chrns_twoxxxxx", T0 + 1) == 1
    assert await store.account_for_key("hash-two") is None
    assert await store.account_for_key("hash-one") is not None
    assert await store.revoke_api_key("chrns_nothing1", T0 + 1) == 0


async def test_set_signing_secret_is_per_account(store: Store, acct: Accounts) -> None:
    await store.set_signing_secret(acct.a, "whsec_Zmlyc3Q=")
    await store.set_signing_secret(acct.a, "whsec_c2Vjb25k")  # rotation

    a = await store.get_account(acct.a)
    b = await store.get_account(acct.b)
    assert a is not None and a.signing_secret == "whsec_c2Vjb25k"
    assert b is not None and b.signing_secret is None


async def test_foreign_account_sees_nothing(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    schedule = make_schedule(acct.a)
    await store.insert_schedule(schedule)
    pending = make_job(acct.a, run_at=T0 + 60_000)
    await store.insert_job(pending)
    await store.insert_job(make_job(acct.a, status=JobStatus.READY, handler="h"))
    running = await insert_running(store, acct.a, T0, handler="h2")
    execution_id = running.execution.id

    assert await store.get_job(acct.b, pending.id) is None
    assert await store.get_schedule(acct.b, schedule.id) is None
    assert await store.get_execution(acct.b, execution_id) is None
    page_jobs = await store.list_jobs(
        acct.b, statuses=None, schedule_id=None, handler=None, offset=0, limit=100
    )
    page_schedules = await store.list_schedules(
        acct.b, status=None, handler=None, offset=0, limit=100
    )
    page_execs = await store.list_executions(
        acct.b, job_id=None, statuses=None, offset=0, limit=100
    )
    assert (page_jobs.total, page_schedules.total, page_execs.total) == (0, 0, 0)
    assert page_jobs.items == [] and page_schedules.items == [] and page_execs.items == []

    assert await store.claim_ready_job(acct.b, ["h", "h2"], None, T0) is None
    with pytest.raises(errors.JobNotFound):
        await store.cancel_job(acct.b, pending.id, T0)
    with pytest.raises(errors.ScheduleNotFound):
        await store.archive_schedule(acct.b, schedule.id, T0)
    with pytest.raises(errors.ScheduleNotFound):
        await store.run_schedule_now(acct.b, schedule.id, "job-foreign", T0)
    with pytest.raises(errors.ExecutionNotFound):
        await store.finish_execution(acct.b, execution_id, DONE, T0 + 1, rng)

    # ...and none of those attempts changed anything in account a.
    assert (await must_job(store, acct.a, pending.id)).status is JobStatus.PENDING
    assert (await must_schedule(store, acct.a, schedule.id)) == schedule
    assert (await must_job(store, acct.a, running.job.id)).status is JobStatus.RUNNING
    execution = await must_execution(store, acct.a, execution_id)
    assert execution.status is ExecutionStatus.RUNNING
    assert await store.get_job(acct.a, "job-foreign") is None
    claimed = await store.claim_ready_job(acct.a, ["h"], None, T0)
    assert claimed is not None


async def test_system_report_without_account_reaches_the_execution(
    store: Store, acct: Accounts, rng: random.Random
) -> None:
    running = await insert_running(store, acct.a, T0)
    done = await store.finish_execution(None, running.execution.id, DONE, T0 + 5, rng)
    assert done.status is ExecutionStatus.COMPLETED
    assert (await must_job(store, acct.a, running.job.id)).status is JobStatus.COMPLETED

"""`creates`: one job through the group commit, several in one store call; admission nudged once
per call, for the earliest job actually created."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from chronos_server.clock import TrioClock
from chronos_server.errors import IdempotencyKeyConflict
from chronos_server.pipeline.creates import create_job, create_jobs
from chronos_server.pipeline.services import Pipeline
from chronos_server.store.sqlite import open_sqlite_store
from tests.store.conftest import T0, make_job


@pytest.fixture
async def pipeline(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Pipeline, str]]:
    async with open_sqlite_store("sqlite://:memory:", inline=True) as store:
        account, _ = await store.ensure_account("acme", T0)
        yield Pipeline(store, TrioClock(T0), random.Random(1)), account.id


def record_nudges(p: Pipeline, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    due: list[int] = []
    monkeypatch.setattr(p, "admit_by", due.append)
    return due


async def test_a_batch_nudges_admission_once_for_its_earliest_created_job(
    pipeline: tuple[Pipeline, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, account = pipeline
    await create_job(p, make_job(account, idempotency_key="taken", run_at=T0 + 5))
    due = record_nudges(p, monkeypatch)
    jobs = [
        make_job(account, run_at=T0 + 300),
        make_job(account, idempotency_key="taken", run_at=T0 + 1),  # refused: not counted
        make_job(account, run_at=T0 + 200),
    ]
    results = await create_jobs(p, jobs)
    assert results[0] == jobs[0] and results[2] == jobs[2]
    assert isinstance(results[1], IdempotencyKeyConflict)
    assert due == [T0 + 200]


async def test_a_batch_with_nothing_created_does_not_nudge(
    pipeline: tuple[Pipeline, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, account = pipeline
    await create_job(p, make_job(account, idempotency_key="taken"))
    due = record_nudges(p, monkeypatch)
    [refused] = await create_jobs(p, [make_job(account, idempotency_key="taken")])
    assert isinstance(refused, IdempotencyKeyConflict)
    assert await create_jobs(p, []) == []
    assert due == []


async def test_a_single_create_nudges_for_its_job_and_a_conflict_does_not(
    pipeline: tuple[Pipeline, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, account = pipeline
    due = record_nudges(p, monkeypatch)
    job = make_job(account, idempotency_key="k", run_at=T0 + 7)
    assert await create_job(p, job) == job
    with pytest.raises(IdempotencyKeyConflict) as info:
        await create_job(p, make_job(account, idempotency_key="k"))
    assert info.value.existing_job_id == job.id
    assert due == [T0 + 7]

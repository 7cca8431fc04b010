"""The store conformance harness: one `store` fixture parametrised over every implementation.

A new implementation joins the suite by adding one entry to `STORES` (name -> factory of an async
context manager yielding a fresh, empty, migrated store). Tests that only make sense for some
implementations say so with `@pytest.mark.stores("name", ...)`; the other params are not even
generated for them.

Time is never read from a clock: tests pass explicit Unix-millisecond instants built from `T0`.
Jitter comes from `random.Random(SEED)`.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from chronos_server.core.models import (
    JSON,
    PULL,
    ClaimedJob,
    Delivery,
    Execution,
    ExecutionError,
    ExecutionStatus,
    Interval,
    IntervalUnit,
    Job,
    JobStatus,
    Outcome,
    Schedule,
    ScheduleStatus,
    Trigger,
)
from chronos_server.store.base import ReadyBatch, Store
from chronos_server.store.sqlite import open_sqlite_store
from tests.pg import open_test_store

StoreFactory = Callable[[Path], AbstractAsyncContextManager[Store]]

STORES: dict[str, StoreFactory] = {
    "sqlite-file": lambda tmp: open_sqlite_store(f"sqlite:///{tmp}/t.db"),
    "sqlite-memory-inline": lambda tmp: open_sqlite_store("sqlite://:memory:", inline=True),
    # A fresh schema in this session's own database (tests/pg.py); skipped if PostgreSQL is
    # unreachable, a failure under CI=true.
    "postgres": lambda tmp: open_test_store(),
}
SQLITE_STORES = ("sqlite-file", "sqlite-memory-inline")

T0 = 1_800_000_000_000  # 2027-01-15T08:00:00Z: a whole hour, so cron and interval grids align
SEED = 20_260_115
MINUTE = 60_000

DONE = Outcome(ExecutionStatus.COMPLETED, result={"synced": 12})
FAIL = Outcome(ExecutionStatus.FAILED, error=ExecutionError("db timeout", "TimeoutError", "tb"))
FATAL = Outcome(ExecutionStatus.FAILED, error=ExecutionError("bad input"), retryable=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stores(*names): run only on these store implementations")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("stores")
    names = [n for n in STORES if marker is None or n in marker.args]
    metafunc.parametrize("store", names, indirect=True)


@pytest.fixture(autouse=True)
def _postgres_reachable(request: pytest.FixtureRequest) -> None:
    """Skip a PostgreSQL param (with its reason) before the async `store` fixture runs: a skip
    raised inside a Trio task loses its message."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("store") == "postgres":
        request.getfixturevalue("postgres_url")


@pytest.fixture
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    name: str = request.param
    async with STORES[name](tmp_path) as opened:
        yield opened


@pytest.fixture
def rng() -> random.Random:
    return random.Random(SEED)


@dataclass(frozen=True)
class Accounts:
    """Two accounts: `a` is the one under test, `b` the foreigner who must see nothing of it."""

    a: str
    b: str


@pytest.fixture
async def acct(store: Store) -> Accounts:
    a, _ = await store.ensure_account("acme", T0)
    b, _ = await store.ensure_account("other", T0)
    return Accounts(a.id, b.id)


# --- record factories ----------------------------------------------------------------------

_ids = itertools.count(1)


def next_id(kind: str) -> str:
    return f"{kind}-{next(_ids):06d}"


def make_job(
    account_id: str,
    *,
    status: JobStatus = JobStatus.PENDING,
    run_at: int = T0,
    created_at: int | None = None,
    handler: str | None = "h",
    delivery: Delivery = PULL,
    schedule_id: str | None = None,
    idempotency_key: str | None = None,
    timeout: int = 30,
    max_retries: int = 3,
    first_trigger: Trigger = Trigger.API,
    payload: dict[str, JSON] | None = None,
    job_id: str | None = None,
) -> Job:
    created = T0 if created_at is None else created_at
    return Job(
        id=job_id or next_id("job"),
        account_id=account_id,
        schedule_id=schedule_id,
        name="job",
        description=None,
        handler=handler,
        delivery=delivery,
        payload=payload,
        timeout=timeout,
        max_retries=max_retries,
        idempotency_key=idempotency_key,
        status=status,
        scheduled_for=run_at,
        run_at=run_at,
        attempt_count=0,
        last_execution_id=None,
        first_trigger=first_trigger,
        created_at=created,
        updated_at=created,
    )


def make_schedule(
    account_id: str,
    *,
    every_ms: int | None = MINUTE,
    cron: str | None = None,
    anchor_at: int = T0,
    next_run_at: int | None = None,
    status: ScheduleStatus = ScheduleStatus.ACTIVE,
    runs: int | None = None,
    stop_at: int | None = None,
    handler: str | None = "h",
    created_at: int = T0,
    max_retries: int = 3,
    timeout: int = 30,
) -> Schedule:
    """An interval schedule (`every_ms`, in whole seconds) or, given `cron`, a cron schedule.

    `next_run_at` defaults to the first slot as the API computes it (G-25: anchor + interval).
    """
    interval = None
    if cron is None:
        assert every_ms is not None and every_ms % 1000 == 0
        interval = Interval(every_ms // 1000, IntervalUnit.SECOND)
    first = next_run_at if next_run_at is not None else anchor_at + (every_ms or 0)
    return Schedule(
        id=next_id("sch"),
        account_id=account_id,
        name="schedule",
        description="a schedule",
        handler=handler,
        cron=cron,
        interval=interval,
        timezone="UTC",
        runs=runs,
        stop_at=stop_at,
        delivery=PULL,
        payload={"tenant": "t_1"},
        timeout=timeout,
        max_retries=max_retries,
        status=status,
        run_count=0,
        next_run_at=first if status is ScheduleStatus.ACTIVE else next_run_at,
        last_run_at=None,
        anchor_at=anchor_at,
        created_at=created_at,
        updated_at=created_at,
    )


# --- small drivers over the store ----------------------------------------------------------


async def must_job(store: Store, account_id: str, job_id: str) -> Job:
    job = await store.get_job(account_id, job_id)
    assert job is not None, f"job {job_id} not found"
    return job


async def must_execution(store: Store, account_id: str, execution_id: str) -> Execution:
    execution = await store.get_execution(account_id, execution_id)
    assert execution is not None, f"execution {execution_id} not found"
    return execution


async def must_schedule(store: Store, account_id: str, schedule_id: str) -> Schedule:
    schedule = await store.get_schedule(account_id, schedule_id)
    assert schedule is not None, f"schedule {schedule_id} not found"
    return schedule


async def advance_to_ready(store: Store, now: int) -> list[ReadyBatch]:
    """One admission pass and one dispatch pass at `now`, as the loops would run them."""
    taken = await store.take_due_jobs(now, 1000)
    await store.queue_admitted(taken, now)
    return await store.ready_pull_jobs(now, 1000)


async def claim(
    store: Store, account_id: str, now: int, handlers: list[str] | None = None
) -> ClaimedJob:
    claimed = await store.claim_ready_job(account_id, handlers or ["h"], "worker-1", now)
    assert claimed is not None, "expected a claimable job"
    return claimed


async def insert_running(
    store: Store,
    account_id: str,
    now: int,
    *,
    handler: str = "h",
    timeout: int = 30,
    max_retries: int = 3,
    schedule_id: str | None = None,
    first_trigger: Trigger = Trigger.API,
) -> ClaimedJob:
    """A job inserted as `ready` and claimed at `now`: a realistic running attempt."""
    job = make_job(
        account_id,
        status=JobStatus.READY,
        run_at=now,
        created_at=now,
        handler=handler,
        timeout=timeout,
        max_retries=max_retries,
        schedule_id=schedule_id,
        first_trigger=first_trigger,
    )
    await store.insert_job(job)
    claimed = await claim(store, account_id, now, [handler])
    assert claimed.job.id == job.id
    return claimed


async def job_ids(
    store: Store,
    account_id: str,
    *,
    status: JobStatus | None = None,
    schedule_id: str | None = None,
    handler: str | None = None,
) -> list[str]:
    page = await store.list_jobs(
        account_id,
        statuses=[status] if status else None,
        schedule_id=schedule_id,
        handler=handler,
        offset=0,
        limit=1000,
    )
    return [j.id for j in page.items]


async def schedule_jobs(store: Store, account_id: str, schedule_id: str) -> list[Job]:
    page = await store.list_jobs(
        account_id, statuses=None, schedule_id=schedule_id, handler=None, offset=0, limit=1000
    )
    return page.items

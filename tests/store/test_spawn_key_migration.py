"""Upgrading a database written before spawn keys had their own namespace (migration 0003).

The database is built at schema version 2 with the real 0001/0002 files, and filled with rows as
the old code wrote them (a spawned job held `{schedule_id}.{slot_ms}` as its idempotency key, via
the same `insert_job` query clients use). After the upgrade the spawned job must hold its slot in
the spawn namespace (the slot still spawns once) and its key must be free for clients, while client
keys keep conflicting as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chronos_server import errors
from chronos_server.core.models import Job, Schedule, ScheduleStatus, Trigger
from chronos_server.store import postgres as pg_store
from chronos_server.store import sqlite as sqlite_store
from chronos_server.store.base import Store
from chronos_server.store.queries import load_queries, migrations
from chronos_server.store.rows import job_params, schedule_params
from tests import pg

from .conftest import MINUTE, T0, make_job, make_schedule, must_job, must_schedule, schedule_jobs

OLD_VERSION = 2
SLOT1, SLOT2 = T0 + MINUTE, T0 + 2 * MINUTE


@dataclass
class OldDatabase:
    """A database at an older schema version: `run` executes one named query of the dialect,
    `run_sql` one statement with `:name` parameters, `execute` and `rows` plain SQL; `migrate`
    upgrades it; `open` opens a store on it."""

    dialect: str
    version: int
    run: Callable[[str, dict[str, Any]], object]
    run_sql: Callable[[str, dict[str, Any]], object]
    execute: Callable[[str], object]
    rows: Callable[[str], list[tuple[Any, ...]]]
    migrate: Callable[[], list[str]]
    open: Callable[[], AbstractAsyncContextManager[Store]]

    def insert_schedule(self, schedule: Schedule) -> None:
        """As the code of that version wrote one: the columns of 0004 did not exist."""
        params = {k: v for k, v in schedule_params(schedule).items() if k not in POLICY_COLUMNS}
        columns = ", ".join(params)
        values = ", ".join(f":{name}" for name in params)
        self.run_sql(f"INSERT INTO schedules ({columns}) VALUES ({values})", params)

    def insert_job(self, job: Job) -> None:
        """As the code of that version wrote one (with `insert_job`'s column list of then):
        the columns of 0007 did not exist."""
        params = {k: v for k, v in job_params(job).items() if k not in REPLAY_COLUMNS}
        columns = ", ".join(params)
        values = ", ".join(f":{name}" for name in params)
        self.run_sql(f"INSERT INTO jobs ({columns}) VALUES ({values})", params)


# Added by 0004_schedule_policies.
POLICY_COLUMNS = ("catch_up", "catch_up_limit", "overlap", "paused_at", "paused_next_run_at")
# Added by 0007_replay_last_error.
REPLAY_COLUMNS = ("replay_of", "last_error")


def _migrations_up_to(version: int) -> Callable[[str], list[tuple[int, str, str]]]:
    return lambda dialect: [m for m in migrations(dialect) if m[0] <= version]


@contextmanager
def old_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int = OLD_VERSION
) -> Iterator[OldDatabase]:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    with monkeypatch.context() as m:
        m.setattr(sqlite_store, "migrations", _migrations_up_to(version))
        assert len(sqlite_store.migrate(conn)) == version
    queries = load_queries("sqlite")
    try:
        yield OldDatabase(
            dialect="sqlite",
            version=version,
            run=lambda name, params: conn.execute(queries[name], params),
            run_sql=conn.execute,
            execute=conn.execute,
            rows=lambda sql: conn.execute(sql).fetchall(),
            migrate=lambda: sqlite_store.migrate(conn),
            open=lambda: sqlite_store.open_sqlite_store(f"sqlite:///{path}"),
        )
    finally:
        conn.close()


@contextmanager
def old_postgres(
    monkeypatch: pytest.MonkeyPatch, version: int = OLD_VERSION
) -> Iterator[OldDatabase]:
    url = pg.new_schema_url()
    with pg.connect(url) as conn:
        with monkeypatch.context() as m:
            m.setattr(pg_store, "migrations", _migrations_up_to(version))
            assert len(pg_store.migrate(conn)) == version
        queries = load_queries("postgres")

        @asynccontextmanager
        async def open_store() -> AsyncIterator[Store]:
            async with pg.open_test_store(url) as store:
                yield store

        yield OldDatabase(
            dialect="postgres",
            version=version,
            run=lambda name, params: conn.execute(pg_store.pyformat(queries[name]), params),
            run_sql=lambda sql, params: conn.execute(pg_store.pyformat(sql), params),
            execute=conn.execute,
            rows=lambda sql: conn.execute(sql).fetchall(),
            migrate=lambda: pg_store.migrate(conn),
            open=open_store,
        )


@pytest.fixture(params=["sqlite", "postgres"])
def old_db(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OldDatabase]:
    if request.param == "postgres":
        request.getfixturevalue("postgres_url")  # skip (or fail under CI) with a reason
        with old_postgres(monkeypatch) as db:
            yield db
    else:
        with old_sqlite(tmp_path, monkeypatch) as db:
            yield db


async def test_upgrade_moves_spawned_jobs_to_the_spawn_namespace(old_db: OldDatabase) -> None:
    old_db.run("insert_account", {"id": "acc-1", "name": "acme", "signing_secret": None, "now": T0})
    # Slot 1 was spawned; the schedule waits for slot 2, whose key a client already took.
    schedule = replace(
        make_schedule("acc-1"), run_count=1, last_run_at=SLOT1, next_run_at=SLOT2, updated_at=SLOT1
    )
    old_db.insert_schedule(schedule)
    spawned = make_job(
        "acc-1",
        schedule_id=schedule.id,
        first_trigger=Trigger.SCHEDULE,
        idempotency_key=f"{schedule.id}.{SLOT1}",
        run_at=SLOT1,
        created_at=SLOT1,
    )
    client = make_job("acc-1", idempotency_key="order-42", created_at=T0 + 1)
    squatter = make_job("acc-1", idempotency_key=f"{schedule.id}.{SLOT2}", created_at=T0 + 2)
    for job in (spawned, client, squatter):
        old_db.insert_job(job)

    new = [name for version, name, _ in migrations(old_db.dialect) if version > old_db.version]
    assert old_db.migrate() == new
    assert sorted(old_db.rows("SELECT id, idempotency_key, spawn_slot FROM jobs")) == sorted(
        [
            (spawned.id, None, SLOT1),
            (client.id, "order-42", None),
            (squatter.id, f"{schedule.id}.{SLOT2}", None),
        ]
    )

    async with old_db.open() as store:
        # Every row reads back as before, the spawned job's key included.
        for job in (spawned, client, squatter):
            assert await must_job(store, "acc-1", job.id) == job
        # The spawned job's old key is free for a client now ...
        reuse = make_job("acc-1", idempotency_key=f"{schedule.id}.{SLOT1}", created_at=SLOT2)
        await store.insert_job(reuse)
        # ... and client keys still conflict, naming their holder (§12.1).
        with pytest.raises(errors.IdempotencyKeyConflict) as info:
            await store.insert_job(make_job("acc-1", idempotency_key="order-42"))
        assert info.value.existing_job_id == client.id

        # The squatted slot 2 spawns its own job.
        assert await store.spawn_due_schedules(SLOT2 + 3, 100) == 1
        # Slot 1 stays spawned once (the migrated row holds it) even if the schedule returns to it.
        after = await must_schedule(store, "acc-1", schedule.id)
        rewound = replace(after, next_run_at=SLOT1, updated_at=after.updated_at + 1)
        assert await store.replace_schedule(
            rewound, expected_status=ScheduleStatus.ACTIVE, expected_updated_at=after.updated_at
        )
        assert await store.spawn_due_schedules(SLOT2 + 4, 100) == 0

        jobs = await schedule_jobs(store, "acc-1", schedule.id)
        assert sorted((j.scheduled_for, j.idempotency_key) for j in jobs) == [
            (SLOT1, f"{schedule.id}.{SLOT1}"),
            (SLOT2, f"{schedule.id}.{SLOT2}"),
        ]
        assert (await must_schedule(store, "acc-1", schedule.id)).run_count == 2


def test_the_database_keeps_a_row_out_of_both_namespaces(old_db: OldDatabase) -> None:
    """The CHECK of 0003: a spawned row carries no client key and always names its schedule (a
    NULL schedule_id would slip past the unique index: NULLs never clash)."""
    old_db.migrate()
    old_db.run("insert_account", {"id": "acc-1", "name": "acme", "signing_secret": None, "now": T0})
    schedule = make_schedule("acc-1")
    old_db.insert_schedule(schedule)
    keyed = make_job("acc-1", schedule_id=schedule.id, idempotency_key="k", run_at=SLOT1)
    old_db.run("insert_job", job_params(keyed))
    orphan = make_job("acc-1", run_at=SLOT1)

    refused = (sqlite3.IntegrityError, psycopg.errors.CheckViolation)
    with pytest.raises(refused):
        old_db.execute(f"UPDATE jobs SET spawn_slot = {SLOT1} WHERE id = '{keyed.id}'")
    with pytest.raises(refused):
        old_db.run("insert_spawned_job", {**job_params(orphan), "spawn_slot": SLOT1})
    assert old_db.rows("SELECT id, spawn_slot FROM jobs") == [(keyed.id, None)]

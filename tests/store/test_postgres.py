"""PostgreSQL only: server-side cancellation, surviving lost connections and outages, migrations
under the advisory lock, and several stores (replicas) on one database splitting the work.

Each test opens its own stores on a fresh schema of the session database (tests/pg.py); the
outage tests close that database to new connections and terminate its backends, which touches no
other test (they run one at a time, and the database is this session's own).
"""

from __future__ import annotations

import random
import secrets
import threading
from typing import Any

import psycopg
import pytest
import trio

from chronos_server import errors
from chronos_server.core.models import ClaimedJob, JobStatus
from chronos_server.store import postgres
from chronos_server.store.postgres import PostgresStore, _PgTx, migrate
from chronos_server.store.queries import migrations
from chronos_server.store.rows import job_params
from chronos_server.store.transactions import Tx
from tests import pg

from .conftest import DONE, MINUTE, T0, make_job, make_schedule, schedule_jobs

SECOND = 1000

pytestmark = pytest.mark.usefixtures("postgres_url")  # skip/fail with a reason


def count_active(url: str, marker: str) -> int:
    with pg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
            "AND pid <> pg_backend_pid()",
            (f"%{marker}%",),
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


async def wait_until_ready(store: PostgresStore) -> None:
    with trio.fail_after(30):
        while True:
            try:
                await store.ping()
                return
            except errors.StoreUnavailable:
                await trio.sleep(0.1)


# --- cancellation ---------------------------------------------------------------------------


async def test_cancelling_a_call_cancels_its_query_on_the_server() -> None:
    url = await pg.new_schema_url_async()
    marker = f"chronos_cancel_{secrets.token_hex(4)}"

    def sleep(tx: Tx) -> None:
        assert isinstance(tx, _PgTx)
        tx._conn.execute(f"SELECT pg_sleep(10) /* {marker} */")

    async with pg.open_test_store(url) as store:
        scope, returned = trio.CancelScope(), trio.Event()

        async def call() -> None:
            with scope:
                await store._tx(sleep)
            returned.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)

            async def running() -> bool:
                return await trio.to_thread.run_sync(count_active, url, marker) > 0

            await pg.eventually(running, 5)
            scope.cancel()
            # Less than the 10 s sleep and less than the 5 s grace: only a server-side cancel
            # lets the call end in time.
            with trio.fail_after(4):
                await returned.wait()
        assert scope.cancelled_caught
        # The call waited for the aborted query, so it is already gone.
        assert await trio.to_thread.run_sync(count_active, url, marker) == 0
        assert await store.count_accounts() == 0  # the pool carries on


# --- lost connections and outages -----------------------------------------------------------


async def test_lost_connections_are_replaced_without_an_error() -> None:
    async with pg.open_test_store() as store:
        await store.ensure_account("acme", T0)
        assert await trio.to_thread.run_sync(pg.terminate_backends, pg.session_url()) >= 1
        # Every pooled connection is dead; the first call finds out, retries on a new one.
        assert await store.count_accounts() == 1
        _, created = await store.ensure_account("other", T0)
        assert created and await store.count_accounts() == 2


async def test_a_restart_drains_the_pool_once_however_many_calls_find_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with pg.open_test_store() as store:
        await store.ensure_account("acme", T0)
        drains = 0
        drain = store._pool.drain

        def counted_drain() -> None:
            nonlocal drains
            drains += 1
            drain()

        monkeypatch.setattr(store._pool, "drain", counted_drain)
        assert await trio.to_thread.run_sync(pg.terminate_backends, pg.session_url()) >= 1
        # Every call holds one of the (dead) pooled connections before any of them finds out.
        barrier, handed_out = threading.Barrier(postgres.POOL_SIZE), 0
        getconn = store._pool.getconn

        def held_getconn(timeout: float | None = None) -> Any:
            nonlocal handed_out
            conn = getconn(timeout)
            handed_out += 1  # under the GIL; only the first POOL_SIZE wait for each other
            if handed_out <= postgres.POOL_SIZE:
                barrier.wait(timeout=10)
            return conn

        monkeypatch.setattr(store._pool, "getconn", held_getconn)
        counts: list[int] = []

        async def count() -> None:  # a transaction on the thread pool (not a native statement)
            row = await store._read(lambda tx: tx.one("count_accounts"))
            counts.append(int(row["n"]) if row else 0)

        async with trio.open_nursery() as nursery:
            for _ in range(postgres.POOL_SIZE):
                nursery.start_soon(count)
        assert counts == [1] * postgres.POOL_SIZE  # every call got through, none got a 503
        assert drains == 1


async def test_an_outage_is_store_unavailable_and_the_store_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres, "POOL_TIMEOUT_SECONDS", 0.5)
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as store:
        account, _ = await store.ensure_account("acme", T0)
        job = make_job(account.id)
        with pg.database_down(url):
            with pytest.raises(errors.StoreUnavailable):
                await store.count_accounts()
            with pytest.raises(errors.StoreUnavailable):
                await store.insert_job(job)
            with pytest.raises(errors.StoreUnavailable):
                await store.take_due_jobs(T0, 10)
        await wait_until_ready(store)
        await store.insert_job(job)
        assert await store.take_due_jobs(T0, 10) == [job.id]


def pool_requests(store: PostgresStore) -> int:
    """How many times a connection was asked of the pool (psycopg_pool's own counter)."""
    return int(store._pool.get_stats().get("requests_num", 0))


async def test_an_open_breaker_answers_without_the_pool_and_the_probe_closes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres, "POOL_TIMEOUT_SECONDS", 0.5)
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as store, trio.open_nursery() as nursery:
        await nursery.start(store.run_probe)
        account, _ = await store.ensure_account("acme", T0)
        with pg.database_down(url):
            with pytest.raises(errors.StoreUnavailable):  # the call that finds out
                await store.count_accounts()
            assert not store.breaker.machine.closed and store.breaker.machine.trips == 1
            asked = pool_requests(store)

            async def insert() -> None:
                await store.insert_job(make_job(account.id))

            calls = [store.count_accounts, store.ping, insert]
            for call in calls:
                with pytest.raises(errors.StoreUnavailable) as refused:
                    await call()
                assert refused.value.code == "service_unavailable"
            # Answered by the breaker: no connection was asked of the pool (nor a thread taken).
            assert pool_requests(store) == asked
            assert store.breaker.rejected == len(calls)
        # The probe sees the database again and closes the breaker on its own.
        await pg.eventually(lambda: store.breaker.machine.closed, 30)
        assert store.breaker.machine.trips == 1 and store.breaker.generation == 1
        assert await store.count_accounts() == 1
        nursery.cancel_scope.cancel()


async def test_after_the_pool_gave_up_reconnecting_the_probe_brings_it_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """psycopg_pool stops replacing lost connections after `reconnect_timeout` and shrinks; the
    probe's transaction through the pool makes it grow again, so recovery does not wait for the
    pool's own backoff (which, by default, reaches a minute between tries)."""
    monkeypatch.setattr(postgres, "POOL_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(postgres, "RECONNECT_TIMEOUT_SECONDS", 0.5)
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as store, trio.open_nursery() as nursery:
        await nursery.start(store.run_probe)
        with pg.database_down(url):
            with pytest.raises(errors.StoreUnavailable):
                await pooled_count(store)
            await pg.eventually(lambda: store._pool.get_stats()["pool_size"] == 0, 20)
        await pg.eventually(lambda: store.breaker.machine.closed, 30)
        assert await pooled_count(store) == 0
        assert store._pool.get_stats()["pool_size"] > 0
        nursery.cancel_scope.cancel()


async def pooled_count(store: postgres.PostgresStore) -> int:
    """`count_accounts` as a transaction on the thread pool (the store's own call is a native
    statement, which does not use the pool)."""
    row = await store._read(lambda tx: tx.one("count_accounts"))
    return int(row["n"]) if row else 0


# --- migrations -----------------------------------------------------------------------------


def test_replicas_starting_together_apply_each_migration_once() -> None:
    url = pg.new_schema_url()
    results: list[list[str]] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        with psycopg.connect(url) as conn:
            barrier.wait()
            results.append(migrate(conn))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    applied = sorted(results, key=len)
    every = migrations("postgres")
    assert applied[:3] == [[], [], []] and applied[3] == [name for _, name, _ in every]
    assert applied[3][:3] == ["0001_init.sql", "0002_stats.sql", "0003_spawn_slots.sql"]
    with pg.connect(url) as conn:
        versions = conn.execute("SELECT version FROM chronos_migrations ORDER BY 1").fetchall()
        assert [v[0] for v in versions] == [v for v, _, _ in every]
        assert migrate(conn) == []


# --- replicas on one database ---------------------------------------------------------------


async def test_concurrent_claims_from_two_stores_hand_out_each_job_once() -> None:
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as one, pg.open_test_store(url) as two:
        account, _ = await one.ensure_account("acme", T0)
        jobs = [
            make_job(account.id, status=JobStatus.READY, run_at=T0 + i % 7, handler=f"h{i % 3}")
            for i in range(300)
        ]
        for job in jobs:
            await one.insert_job(job)
        claimed: list[ClaimedJob] = []

        async def claimer(store: PostgresStore, size: int) -> None:
            while batch := await store.claim_ready_jobs(
                account.id, ["h0", "h1", "h2"], "w", T0 + MINUTE, size
            ):
                claimed.extend(batch)

        async with trio.open_nursery() as nursery:
            for i in range(16):
                nursery.start_soon(claimer, (one, two)[i % 2], 1 + i % 4)

    ids = [c.job.id for c in claimed]
    assert len(ids) == len(set(ids)) == len(jobs)
    assert {c.execution.attempt for c in claimed} == {1}


async def test_concurrent_admission_takes_each_due_job_once() -> None:
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as one, pg.open_test_store(url) as two:
        account, _ = await one.ensure_account("acme", T0)
        for i in range(400):
            await one.insert_job(make_job(account.id, run_at=T0 - i))
        taken: list[str] = []

        async def admit(store: PostgresStore) -> None:
            while ids := await store.take_due_jobs(T0, 15):
                taken.extend(ids)
                await store.queue_admitted(ids, T0)

        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(admit, (one, two)[i % 2])
        ready = [await one.ready_pull_jobs(T0, 1000), await two.ready_pull_jobs(T0, 1000)]
    assert len(taken) == len(set(taken)) == 400
    assert sum(b.count for batches in ready for b in batches) == 400


async def test_two_stores_spawn_each_schedule_slot_exactly_once() -> None:
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as one, pg.open_test_store(url) as two:
        account, _ = await one.ensure_account("acme", T0)
        schedules = [make_schedule(account.id, every_ms=SECOND) for _ in range(20)]
        for schedule in schedules:
            await one.insert_schedule(schedule)
        counts: list[int] = []

        async def spawn(store: PostgresStore, now: int) -> None:
            counts.append(await store.spawn_due_schedules(now, 7))

        for k in range(1, 11):  # both "replicas" run two spawning passes at every slot, together
            async with trio.open_nursery() as nursery:
                for store in (one, two, one, two):
                    nursery.start_soon(spawn, store, T0 + k * SECOND)
            while more := await one.spawn_due_schedules(T0 + k * SECOND, 7):
                counts.append(more)  # whatever the batch limits left for another pass
        assert sum(counts) == 20 * 10
        for schedule in schedules:
            jobs = await schedule_jobs(one, account.id, schedule.id)
            assert sorted(j.scheduled_for for j in jobs) == [T0 + k * SECOND for k in range(1, 11)]


async def test_a_report_that_waited_for_a_sweep_of_its_lease_is_lease_expired(
    rng: random.Random,
) -> None:
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as store:
        account, _ = await store.ensure_account("acme", T0)
        await store.insert_job(make_job(account.id, status=JobStatus.READY, timeout=1))
        claimed = await store.claim_ready_job(account.id, ["h"], "w", T0)
        assert claimed is not None
        sweeper: psycopg.Connection[Any] = await trio.to_thread.run_sync(psycopg.connect, url)
        try:
            # Another replica's sweep, caught half-way: it holds the execution's row lock.
            sweeper.execute(
                "UPDATE executions SET status = 'timeout' WHERE id = %s", (claimed.execution.id,)
            )
            outcome: list[BaseException] = []

            async def report() -> None:
                try:
                    await store.finish_execution(account.id, claimed.execution.id, DONE, T0, rng)
                except errors.ChronosError as exc:
                    outcome.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(report)

                async def waiting() -> bool:
                    return await trio.to_thread.run_sync(count_lock_waits, url) > 0

                await pg.eventually(waiting, 5)
                await trio.to_thread.run_sync(sweeper.commit)
        finally:
            await trio.to_thread.run_sync(sweeper.close)
    assert [type(e) for e in outcome] == [errors.LeaseExpired]


async def test_inserting_jobs_survives_lost_connections_and_a_rerun_answers_the_same() -> None:
    """The insert is one autocommit statement that may run twice: after the database dropped
    every pooled connection it runs again on a fresh one, and a run whose jobs are already
    stored (its first run committed, its answer lost) answers as the first did."""
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as store:
        account, _ = await store.ensure_account("acme", T0)
        await trio.to_thread.run_sync(pg.terminate_backends, url)
        held = make_job(account.id, idempotency_key="held")
        assert await store.insert_jobs([held]) == [held]
        jobs = [make_job(account.id), make_job(account.id, idempotency_key="held")]
        jobs.append(make_job(account.id, idempotency_key="mine"))
        first = await store.insert_jobs(jobs)
        again = await store.insert_jobs(jobs)
    for results in (first, again):
        assert results[0] == jobs[0] and results[2] == jobs[2]
        assert isinstance(results[1], errors.IdempotencyKeyConflict)
        assert results[1].existing_job_id == held.id


async def test_an_insert_that_waited_for_its_key_holder_names_it() -> None:
    """The holder committed while the insert statement waited on its row: the statement's
    snapshot cannot see it, so the store looks it up."""
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as store:
        account, _ = await store.ensure_account("acme", T0)
        other: psycopg.Connection[Any] = await trio.to_thread.run_sync(psycopg.connect, url)
        holder = make_job(account.id, idempotency_key="raced")
        try:
            # Another replica's create, caught before its commit.
            params = postgres._load("queries.sql")["insert_job"]
            other.execute(params, job_params(holder))
            results: list[object] = []

            async def insert() -> None:
                job = make_job(account.id, idempotency_key="raced")
                results.extend(await store.insert_jobs([job, make_job(account.id)]))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(insert)

                async def waiting() -> bool:
                    return await trio.to_thread.run_sync(count_lock_waits, url) > 0

                await pg.eventually(waiting, 5)
                await trio.to_thread.run_sync(other.commit)
        finally:
            await trio.to_thread.run_sync(other.close)
    conflict, created = results
    assert isinstance(conflict, errors.IdempotencyKeyConflict)
    assert conflict.existing_job_id == holder.id
    assert not isinstance(created, errors.ChronosError)


def count_lock_waits(url: str) -> int:
    with pg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


async def test_the_scans_use_their_partial_indexes_at_scale() -> None:
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as store:
        account, _ = await store.ensure_account("acme", T0)
    queries = postgres._load("queries.sql")
    params = {"account_id": account.id, "handler": "h3", "limit": 1, "now": T0, "deadline": T0}
    with pg.connect(url) as conn:
        # Most rows finished, the states each scan looks for rare: only an index on exactly
        # those states keeps the scans from walking the history.
        conn.execute(
            "INSERT INTO jobs (id, account_id, name, handler, delivery_type, delivery, timeout, "
            "max_retries, status, scheduled_for, run_at, first_trigger, created_at, updated_at) "
            "SELECT 'bulk-' || i, %s, 'job', 'h' || (i %% 10), 'pull', '{}', 30, 3, "
            "CASE WHEN i %% 10 < 7 THEN 'completed' WHEN i %% 100 = 7 THEN 'pending' "
            "WHEN i %% 100 = 8 THEN 'queued' ELSE 'ready' END, %s - i, %s - i, 'api', %s, %s "
            "FROM generate_series(1, 50000) AS i",
            (account.id, T0, T0, T0, T0),
        )
        conn.execute(
            "INSERT INTO executions (id, job_id, account_id, attempt, trigger, status, "
            "started_at, lease_expires_at) SELECT 'e-' || i, 'bulk-' || i, %s, 1, 'api', "
            "CASE WHEN i %% 100 = 0 THEN 'running' ELSE 'completed' END, %s, %s + i "
            "FROM generate_series(1, 20000) AS i",
            (account.id, T0, T0),
        )
        conn.execute(
            "INSERT INTO schedules (id, account_id, name, interval_value, interval_unit, "
            "timezone, delivery, timeout, max_retries, status, next_run_at, anchor_at, "
            "created_at, updated_at) SELECT 's-' || i, %s, 's', 1, 'minute', 'UTC', '{}', 30, 3, "
            "CASE WHEN i %% 100 = 0 THEN 'active' ELSE 'archived' END, %s + i, %s, %s, %s "
            "FROM generate_series(1, 10000) AS i",
            (account.id, T0, T0, T0, T0),
        )
        conn.execute("ANALYZE")
        for name, index in [
            ("oldest_ready_for_handler", "jobs_ready"),
            ("take_due_jobs", "jobs_due"),
            ("ready_pull_jobs", "jobs_queued"),
            ("expired_leases", "executions_lease"),
            ("due_schedules", "schedules_due"),
        ]:
            plan = "\n".join(
                str(r[0]) for r in conn.execute(f"EXPLAIN {queries[name]}", params).fetchall()
            )
            assert index in plan, (name, plan)
            assert "Seq Scan" not in plan, (name, plan)


def explain_into(conn: psycopg.Connection[Any], plans: list[str], analyze: bool = False) -> None:
    """Every statement `conn` runs from now on, nested ones too, appends its plan to `plans`
    (auto_explain as notices; with `analyze`, with what each node did)."""
    conn.add_notice_handler(lambda d: plans.append(str(d.message_primary)))
    conn.execute("LOAD 'auto_explain'")
    conn.execute("SET auto_explain.log_min_duration = 0")
    conn.execute("SET auto_explain.log_nested_statements = on")
    conn.execute("SET auto_explain.log_level = notice")
    if analyze:
        conn.execute("SET auto_explain.log_analyze = on")


async def test_a_claim_in_a_burst_walks_the_due_index_in_order_with_one_plan() -> None:
    """Thousands of due pull jobs (a burst): the claim takes the oldest by walking
    `jobs_due_pull` in order and stopping at its limit, never fetching and sorting every due job
    (an anti-join estimate once made PostgreSQL do that: 1.8 ms a claim at 3,000 due), and its
    plan is the generic one kept by the function, not planned again per call, nor compiled."""
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as store:
        account, _ = await store.ensure_account("acme", T0)
        with pg.connect(url) as conn:
            conn.execute(
                "INSERT INTO jobs (id, account_id, name, handler, delivery_type, delivery, "
                "timeout, max_retries, status, scheduled_for, run_at, first_trigger, created_at, "
                "updated_at) SELECT 'due-' || i, %s, 'job', 'h' || (i %% 2), 'pull', "
                "'{\"type\": \"pull\"}', 30, 3, 'pending', %s - i, %s - i, 'api', %s, %s "
                "FROM generate_series(1, 3000) AS i",
                (account.id, T0, T0, T0, T0),
            )
            conn.execute("ANALYZE jobs")
        for _ in range(7):  # past the point where PostgreSQL would settle on a cached plan
            assert len(await store.claim_ready_jobs(account.id, ["h0"], "w", T0, 1)) == 1
        plans: list[str] = []
        with pg.connect(url) as conn:
            explain_into(conn, plans)
            # However costly a generic plan looks, the claim is never JIT-compiled (22 ms a claim
            # with a million pending jobs, for a statement that runs in 0.1 ms).
            conn.execute("SET jit_above_cost = 0")
            rows = conn.execute(
                "SELECT id FROM chronos_claim_jobs(%s, %s, %s, %s, %s, %s)",
                (["h0"], account.id, 1, T0, "w", T0),
            ).fetchall()
    assert rows == [("due-2986",)]  # the oldest of h0 left: due-3000 … due-2988 went first
    [claim] = [plan for plan in plans if "ready_jobs AS" in plan]
    assert "Index Scan using jobs_due_pull" in claim, claim
    assert "jobs_due " not in claim and "Sort Key: j.run_at" not in claim, claim
    assert "Seq Scan on jobs" not in claim, claim
    assert "JIT:" not in claim, claim
    assert "$2" in claim, claim  # a generic plan: the account is a parameter, not a constant


async def test_claims_and_reports_touch_only_their_rows_whatever_the_statistics_say() -> None:
    """Statistics older than the tables' growth (a new server; autovacuum not yet caught up
    with a burst) once made the claim's update scan all of `jobs` ("Rows Removed by Filter:
    2999") and a report scan all of `executions` twice (its 100-row guess for the reported
    items made a hash join over the whole table look cheap): 0.5 and 0.7 ms a job on 3,000.
    Now the claim updates the rows it locked by address (a TID scan) and a report looks its
    executions up by key, its look-up of the ones it could not finish skipped when there are
    none: no scan of either table runs, in the cached plans the 7th call on keeps."""
    url = await pg.new_schema_url_async()
    async with pg.open_test_store(url) as store:
        account, _ = await store.ensure_account("acme", T0)
        with pg.connect(url) as conn:
            conn.execute("VACUUM ANALYZE jobs")
            conn.execute("VACUUM ANALYZE executions")
            conn.execute(
                "INSERT INTO jobs (id, account_id, name, handler, delivery_type, delivery, "
                "timeout, max_retries, status, scheduled_for, run_at, first_trigger, created_at, "
                "updated_at) SELECT 'due-' || i, %s, 'job', 'h', 'pull', "
                "'{\"type\": \"pull\"}', 30, 3, 'pending', %s - i, %s - i, 'api', %s, %s "
                "FROM generate_series(1, 3000) AS i",
                (account.id, T0, T0, T0, T0),
            )
        rng = random.Random(1)
        for n in range(2990):  # the executions table grows past what its statistics say
            [job] = await store.claim_ready_jobs(account.id, ["h"], "w", T0, 1)
            await store.finish_executions(account.id, [(job.execution.id, DONE)], T0 + 1, rng)
            if n == 300:
                with pg.connect(url) as conn:
                    conn.execute("VACUUM ANALYZE executions")
        plans: list[str] = []
        with pg.connect(url) as conn:
            explain_into(conn, plans, analyze=True)
            report = postgres._load("hotpath.sql")["complete_reported"]
            for _ in range(7):  # past the point where PostgreSQL settles on a cached plan
                [(execution_id,)] = conn.execute(
                    "SELECT last_execution_id FROM chronos_claim_jobs(%s, %s, %s, %s, %s, %s)",
                    (["h"], account.id, 1, T0, "w", T0),
                ).fetchall()
                items = f'[{{"id": "{execution_id}", "result": null}}]'
                params = {"items": items, "account_id": account.id, "now": T0 + 1}
                rows = conn.execute(report, params, prepare=True).fetchall()
                assert [row[-1] for row in rows] == [True]
    claim = [plan for plan in plans if "ready_jobs AS" in plan][-1]
    done = [plan for plan in plans if "Reports of `completed`" in plan][-1]
    assert "Tid Scan on jobs" in claim, claim
    for plan in (claim, done):
        scans = [line for line in plan.splitlines() if "Seq Scan on jobs" in line
                 or "Seq Scan on executions" in line]  # fmt: skip
        assert all("never executed" in line for line in scans), plan

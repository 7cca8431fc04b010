"""Floors for the burst figures of bench/hot_path.py: what the pull path costs without the parts
a user's process adds. Prints figures; asserts nothing. Run it in the same run (same machine,
same PostgreSQL, nothing else busy) as bench/hot_path.py, so the ratios compare like with like.

    .venv/bin/python -m bench.floor [--jobs 5000] [--batch 1 8 32] [--pipelines 1 2]

1. store: the server's own PostgreSQL store, called in-process (no HTTP, no worker process):
   claim up to B due jobs (`claim_ready_jobs`, the statement a claim runs), report them completed
   (`finish_executions`, the statement a report runs), repeat until N jobs are done, with P such
   loops at once (a worker with concurrency B pipelines claims with reports, as P=2 does). It is
   the most the server's statements allow: the HTTP requests, the JSON and the worker process come
   on top of it, on the same two cores.
2. sql: the least any PostgreSQL queue that keeps an execution record per attempt can do: one
   `UPDATE … FOR UPDATE SKIP LOCKED` taking B jobs and one statement finishing them, straight
   from psycopg with no store layer, P loops at once.
"""

from __future__ import annotations

import argparse
import random
import time
from functools import partial

import psycopg
import trio

from bench.pg_bench import recreate, vacuum
from chronos_server.core.models import ExecutionStatus, Outcome
from chronos_server.store.open import open_store

HANDLER = "noop"


def insert_due(url: str, account_id: str, n: int) -> None:
    now = int(time.time() * 1000) - 1000
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO jobs (id, account_id, name, handler, delivery_type, delivery, timeout,
                max_retries, status, scheduled_for, run_at, attempt_count, first_trigger,
                created_at, updated_at)
            SELECT gen_random_uuid()::text, %(account)s, 'bench', %(handler)s, 'pull',
                '{"type":"pull"}', 30, 3, 'pending', %(now)s, %(now)s, 0, 'api',
                %(now)s + g, %(now)s + g
            FROM generate_series(1, %(n)s) AS g
            """,
            {"account": account_id, "handler": HANDLER, "now": now, "n": n},
        )


async def store_floor(url: str, n: int, batch: int, pipelines: int) -> float:
    async with open_store(url) as store:
        account, _ = await store.ensure_account("default", int(time.time() * 1000))
        await trio.to_thread.run_sync(insert_due, url, account.id, n)
        await trio.to_thread.run_sync(vacuum, url)
        done = 0
        done_ok = Outcome(ExecutionStatus.COMPLETED, result=None)

        async def loop() -> None:
            nonlocal done
            while True:
                now = int(time.time() * 1000)
                claimed = await store.claim_ready_jobs(account.id, [HANDLER], "floor", now, batch)
                if not claimed:
                    return
                outcomes = [(c.execution.id, done_ok) for c in claimed]
                await store.finish_executions(
                    account.id, outcomes, int(time.time() * 1000), random.Random(0)
                )
                done += len(claimed)

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(pipelines):
                nursery.start_soon(loop)
        elapsed = time.perf_counter() - start
    assert done == n, (done, n)
    return n / elapsed


CLAIM_SQL = """
WITH picked AS (
    SELECT id FROM jobs
    WHERE status = 'pending' AND handler = %(handler)s AND run_at <= %(now)s
    ORDER BY run_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE jobs j SET status = 'running', attempt_count = j.attempt_count + 1, updated_at = %(now)s
    FROM picked WHERE j.id = picked.id RETURNING j.id, j.account_id
)
INSERT INTO floor_executions (id, job_id, started_at)
SELECT gen_random_uuid()::text, moved.id, %(now)s FROM moved RETURNING id, job_id
"""

FINISH_SQL = """
WITH done AS (
    UPDATE floor_executions e SET finished_at = %(now)s
    WHERE e.id = ANY(%(ids)s) RETURNING e.job_id
)
UPDATE jobs j SET status = 'completed', updated_at = %(now)s FROM done WHERE j.id = done.job_id
"""


async def sql_floor(url: str, n: int, batch: int, pipelines: int) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM executions")
        conn.execute("DELETE FROM jobs")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS floor_executions (id text PRIMARY KEY, job_id text, "
            "started_at bigint, finished_at bigint)"
        )
        conn.execute("TRUNCATE floor_executions")
        row = conn.execute("SELECT id FROM accounts WHERE name = 'default'").fetchone()
        assert row is not None
    insert_due(url, str(row[0]), n)
    vacuum(url)
    counts: list[int] = []

    def loop() -> None:  # a blocking psycopg loop, in a thread of its own
        done = 0
        with psycopg.connect(url, autocommit=True, prepare_threshold=0) as conn:
            while True:
                now = int(time.time() * 1000)
                rows = conn.execute(
                    CLAIM_SQL, {"handler": HANDLER, "now": now, "batch": batch}
                ).fetchall()
                if not rows:
                    break
                conn.execute(FINISH_SQL, {"now": now, "ids": [r[0] for r in rows]})
                done += len(rows)
        counts.append(done)

    limiter = trio.CapacityLimiter(pipelines)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(pipelines):
            nursery.start_soon(partial(trio.to_thread.run_sync, loop, limiter=limiter))
    elapsed = time.perf_counter() - start
    assert sum(counts) == n, (counts, n)
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="chronos_floor")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--pipelines", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    for batch in args.batch:
        for pipelines in args.pipelines:
            url = recreate(args.pg, args.db_name)
            rate = trio.run(store_floor, url, args.jobs, batch, pipelines)
            print(
                f"floor  store  batch={batch:<3} pipelines={pipelines}  {rate:9.1f} jobs/s",
                flush=True,
            )
            rate = trio.run(sql_floor, url, args.jobs, batch, pipelines)
            print(
                f"floor  sql    batch={batch:<3} pipelines={pipelines}  {rate:9.1f} jobs/s",
                flush=True,
            )


if __name__ == "__main__":
    main()

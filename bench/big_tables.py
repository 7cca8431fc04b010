"""Big tables (issue 15): reads that must not slow down with the table, and the pipeline while
retention deletes a million expired rows. Prints figures; asserts nothing.

    .venv/bin/python -m bench.big_tables [--pending 1000000] [--finished 1000000]
        [--requests 50] [--rate 100] [--seconds 60] [--sqlite] [--pg postgresql://...]

1. fill: `--pending` future pending jobs and `--finished` finished ones (completed, failed,
   cancelled; each completed/failed one with its execution), in a few INSERT … SELECT statements
   (PostgreSQL `generate_series`, SQLite a recursive CTE). Of the finished ones `--recent` (a
   fraction) finished within the last hour, the others 40 days ago: past the default retention.
2. reads, against a real `chronos serve` with retention off: `GET /v1/stats`, the first page of
   each list with one filter, an offset page and a cursor page deep in the list; median and max
   of `--requests` requests each, in ms, after a first request shown apart (cold cache).
3. lateness at `--rate` jobs/s and the server's RSS, first on an empty database (the baseline),
   then on the big one with retention off (what the table's size costs), then with retention on
   (`CHRONOS_RETENTION=30d`), which deletes the expired rows meanwhile: the deletion rate (jobs
   and executions per second) is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import trio

from bench.pg_bench import recreate, rss_mb, vacuum
from bench.pull_bench import KEY, lateness, pct, start_server
from chronos_server.api.auth import display_prefix, hash_key
from chronos_server.api.cursor import EXECUTIONS, JOBS, encode_cursor
from chronos_server.store.open import open_store

DAY_MS = 86_400_000
HANDLERS = ("alpha", "beta", "gamma", "delta")
FINISHED = ("completed", "failed", "cancelled")


def now_ms() -> int:
    return int(time.time() * 1000)


# --- filling -----------------------------------------------------------------------------------

PG_JOBS = """
INSERT INTO jobs (id, account_id, schedule_id, name, handler, delivery_type, delivery, timeout,
    max_retries, status, scheduled_for, run_at, attempt_count, first_trigger, created_at,
    updated_at, finished_at, last_execution_id)
SELECT gen_random_uuid()::text, %(account)s,
    CASE WHEN g %% 10 = 0 THEN %(schedule)s END, 'big',
    (ARRAY['alpha','beta','gamma','delta'])[1 + g %% 4], 'pull', '{"type":"pull"}', 30, 3,
    %(status)s, %(run_at)s, %(run_at)s, %(attempts)s, 'api',
    %(created)s - g * 7, %(created)s - g * 7, %(finished)s - g * 3, NULL
FROM generate_series(1, %(n)s) AS g
"""

PG_EXECUTIONS = """
INSERT INTO executions (id, job_id, account_id, attempt, trigger, status, started_at,
    finished_at, duration_ms, worker)
SELECT gen_random_uuid()::text, j.id, j.account_id, 1, 'api', j.status, j.finished_at - 5,
    j.finished_at, 5, 'big'
FROM jobs j WHERE j.status IN ('completed', 'failed')
"""

# SQLite has no generate_series in Python's build: a recursive CTE counts instead.
SQLITE_UUID = (
    "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)),"
    " 2) || '-a' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
)
SQLITE_JOBS = f"""
WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n)
INSERT INTO jobs (id, account_id, schedule_id, name, handler, delivery_type, delivery, timeout,
    max_retries, status, scheduled_for, run_at, attempt_count, first_trigger, created_at,
    updated_at, finished_at)
SELECT {SQLITE_UUID}, :account, CASE WHEN g % 10 = 0 THEN :schedule END, 'big',
    CASE g % 4 WHEN 0 THEN 'alpha' WHEN 1 THEN 'beta' WHEN 2 THEN 'gamma' ELSE 'delta' END,
    'pull', '{{"type":"pull"}}', 30, 3, :status, :run_at, :run_at, :attempts, 'api',
    :created - g * 7, :created - g * 7, :finished - g * 3
FROM s
"""
SQLITE_EXECUTIONS = f"""
INSERT INTO executions (id, job_id, account_id, attempt, trigger, status, started_at,
    finished_at, duration_ms, worker)
SELECT {SQLITE_UUID}, j.id, j.account_id, 1, 'api', j.status, j.finished_at - 5,
    j.finished_at, 5, 'big'
FROM jobs j WHERE j.status IN ('completed', 'failed')
"""


def batches(args: argparse.Namespace, now: int) -> list[dict[str, Any]]:
    """(status, how many, when finished) for each INSERT: pending in the future, then the
    finished ones, mostly expired, `--recent` of them within the last hour."""
    recent = int(args.finished * args.recent)
    old = args.finished - recent
    rows: list[dict[str, Any]] = [
        {"status": "pending", "n": args.pending, "finished": None, "run_at": now + 365 * DAY_MS}
    ]
    for i, status in enumerate(FINISHED):
        for n, at in ((old, now - 40 * DAY_MS), (recent, now - 1_800_000)):
            share = n // 3 + (1 if i < n % 3 else 0)
            if share:
                rows.append({"status": status, "n": share, "finished": at, "run_at": at - 10})
    for row in rows:
        row["attempts"] = 0 if row["status"] in ("pending", "cancelled") else 1
        row["created"] = (row["finished"] or now) - 1000
    return rows


async def setup_account(database_url: str) -> tuple[str, str]:
    """The default account with the bench key, and a schedule to filter by: (account, schedule)."""
    async with open_store(database_url) as store:
        account, _ = await store.ensure_account("default", now_ms())
        await store.add_api_key(account.id, hash_key(KEY), display_prefix(KEY), now_ms())
    schedule = "5c4e3b2a-1d0f-4e9e-8d7c-6b5a49382716"
    insert = (
        "INSERT INTO schedules (id, account_id, name, handler, cron, timezone, delivery, timeout,"
        " max_retries, status, anchor_at, created_at, updated_at, archived_at)"
        " VALUES ({p}, {p}, 'big', 'alpha', '* * * * *', 'UTC', '{\"type\":\"pull\"}', 30, 3,"
        " 'archived', {p}, {p}, {p}, {p})"
    )
    values = (schedule, account.id, now_ms(), now_ms(), now_ms(), now_ms())
    run_sql(database_url, [(insert, values)])
    return account.id, schedule


def run_sql(database_url: str, statements: list[tuple[str, Any]]) -> None:
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            for sql, params in statements:
                conn.execute(sql.replace("{p}", "?"), params)
        return
    with psycopg.connect(database_url, autocommit=True) as conn:
        for sql, params in statements:
            conn.execute(sql.replace("{p}", "%s"), params)


def fill(database_url: str, args: argparse.Namespace, account: str, schedule: str) -> float:
    started = time.perf_counter()
    sqlite = database_url.startswith("sqlite")
    jobs_sql = SQLITE_JOBS if sqlite else PG_JOBS
    statements = [
        (jobs_sql, row | {"account": account, "schedule": schedule})
        for row in batches(args, now_ms())
    ]
    statements.append((SQLITE_EXECUTIONS if sqlite else PG_EXECUTIONS, {}))
    run_sql(database_url, statements)
    if not sqlite:
        vacuum(database_url)
        # The fill's gigabyte of WAL is written out now, not by a checkpoint in the middle of a
        # lateness phase (a server at steady state does not have it pending).
        run_sql(database_url, [("CHECKPOINT", ())])
    else:
        run_sql(database_url, [("ANALYZE", ()), ("PRAGMA wal_checkpoint(TRUNCATE)", ())])
    # The fill's dirty pages go to disk now: left to the kernel's writeback, they throttle the
    # server's writes in the first phase (seen: SQLite p99 21 ms on the big table, 10 ms after).
    os.sync()
    return time.perf_counter() - started


# --- reads -------------------------------------------------------------------------------------


def deep_cursor(database_url: str, table: str, depth: int) -> str | None:
    """The cursor a client would hold after `depth` rows of the list (one slow lookup here)."""
    time_column = "created_at" if table == "jobs" else "started_at"
    sql = (
        f"SELECT {time_column}, id FROM {table} ORDER BY {time_column} DESC, id DESC"
        f" LIMIT 1 OFFSET {depth}"
    )
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            row = conn.execute(sql).fetchone()
    else:
        with psycopg.connect(database_url) as pg:
            row = pg.execute(sql).fetchone()
    if row is None:
        return None
    return encode_cursor(JOBS if table == "jobs" else EXECUTIONS, int(row[0]), str(row[1]))


def read_cases(database_url: str, schedule: str, depth: int) -> list[tuple[str, dict[str, str]]]:
    cases: list[tuple[str, dict[str, str]]] = [
        ("/v1/stats", {}),
        ("/v1/jobs", {}),
        ("/v1/jobs", {"status": "pending"}),
        ("/v1/jobs", {"status": "completed"}),
        ("/v1/jobs", {"status": "failed,cancelled"}),
        ("/v1/jobs", {"handler": "beta"}),
        ("/v1/jobs", {"schedule_id": schedule}),
        ("/v1/jobs", {"since": "2000-01-01T00:00:00Z"}),
        ("/v1/executions", {}),
        ("/v1/executions", {"status": "failed"}),
        ("/v1/schedules", {"status": "archived"}),
        ("/v1/jobs", {"page": str(max(1, depth // 20))}),
    ]
    for table in ("jobs", "executions"):
        cursor = deep_cursor(database_url, table, depth)
        if cursor is not None:
            cases.append((f"/v1/{table}", {"cursor": cursor}))
    cursor = deep_cursor(database_url, "jobs", depth)
    if cursor is not None:
        cases.append(("/v1/jobs", {"cursor": cursor, "status": "pending"}))
    return cases


async def time_reads(base: str, cases: list[tuple[str, dict[str, str]]], n: int) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        for path, params in cases:
            times: list[float] = []
            last: Any = None
            # The first request of each case is shown apart: it reads the case's index pages
            # into shared buffers (the fill left them cold) and prepares its statements; a
            # server at steady state has both done.
            started = time.perf_counter()
            (await client.get(path, params=params)).raise_for_status()
            first = (time.perf_counter() - started) * 1000
            for _ in range(n):
                started = time.perf_counter()
                r = await client.get(path, params=params)
                times.append((time.perf_counter() - started) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"{path} {params}: {r.status_code} {r.text[:200]}")
                last = r.json()
            shown = " ".join(f"{k}={v if len(v) < 24 else v[:8] + '…'}" for k, v in params.items())
            paging = (last.get("meta") or {}).get("paging") or {}
            total = (
                f"total={paging.get('total')}{'~' if paging.get('total_estimated') else ''}"
                if paging
                else ""
            )
            print(
                f"read  {path:15} {shown:38} median {statistics.median(times):7.1f} ms"
                f"  max {max(times):7.1f} ms  (first {first:6.1f} ms)  {total}",
                flush=True,
            )


# --- lateness while retention deletes ------------------------------------------------------------

FINISHED_COUNT = (
    "SELECT coalesce(sum(n), 0) FROM (SELECT status, n FROM job_counts UNION ALL"
    " SELECT status, delta FROM job_count_deltas) AS c"
    " WHERE status IN ('completed', 'failed', 'cancelled')"
)


def finished_rows(database_url: str) -> int:
    """Finished jobs left, from the kept counts (a full count would be the slow thing)."""
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute(FINISHED_COUNT).fetchone()[0])
    with psycopg.connect(database_url) as pg:
        row = pg.execute(FINISHED_COUNT).fetchone()
        return int(row[0]) if row else 0


async def lateness_phase(
    label: str, database_url: str, port: int, args: argparse.Namespace, retention: str
) -> None:
    proc = start_server(database_url, port, KEY, CHRONOS_RETENTION=retention)
    base = f"http://127.0.0.1:{port}"
    try:
        before, started = finished_rows(database_url), time.monotonic()
        rss: list[float] = []

        async def sample_rss(stop: trio.Event) -> None:
            while not stop.is_set():
                rss.append(rss_mb(proc.pid))
                with trio.move_on_after(0.5):
                    await stop.wait()

        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_rss, stop)
            late, missed = await lateness(base, args.rate, args.seconds, args.workers)
            stop.set()
        elapsed = time.monotonic() - started
        after = finished_rows(database_url)
        deleted = before + len(late) - after  # the phase's own jobs finished meanwhile
        print(
            f"late  {label:22} {args.rate:g}/s  p50 {pct(late, 50):6.1f}  p95 {pct(late, 95):6.1f}"
            f"  p99 {pct(late, 99):6.1f}  max {max(late):7.1f} ms  ({len(late)} jobs, {missed}"
            f" missed)  RSS max {max(rss):5.1f} MB",
            flush=True,
        )
        if retention != "off" and label != "empty table":
            print(
                f"retention  deleted {deleted} finished job(s) in {elapsed:.0f} s:"
                f" {deleted / elapsed:,.0f} jobs/s (with their executions), {after} left",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(30)


# --- main ----------------------------------------------------------------------------------------


def database(args: argparse.Namespace, name: str, tmp: Path) -> str:
    if args.sqlite:
        path = tmp / f"{name}.db"
        path.unlink(missing_ok=True)
        return f"sqlite:///{path}"
    return recreate(args.pg, name)


def step(label: str, fn: Callable[[], float]) -> None:
    print(f"{label} ...", flush=True)
    print(f"{label}: {fn():.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead")
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--recent", type=float, default=0.05, help="finished in the last hour")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--depth", type=int, default=0, help="deep page: rows in [pending/2]")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--port", type=int, default=8311)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    depth = args.depth or max(1, args.pending // 2)
    store = "SQLite" if args.sqlite else "PostgreSQL"
    print(
        f"big tables on {store}: {args.pending:,} pending + {args.finished:,} finished jobs"
        f" ({args.recent:.0%} in the last hour), python {sys.version.split()[0]},"
        f" load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.skip_baseline:
            empty = database(args, "chronos_big_empty", tmp)
            trio.run(setup_account, empty)
            trio.run(lateness_phase, "empty table", empty, args.port, args, "30d")
        url = database(args, "chronos_big", tmp)
        account, schedule = trio.run(setup_account, url)
        step("fill", lambda: fill(url, args, account, schedule))
        proc = start_server(url, args.port, CHRONOS_RETENTION="off")
        try:
            cases = read_cases(url, schedule, depth)
            trio.run(time_reads, f"http://127.0.0.1:{args.port}", cases, args.requests)
            print(f"server RSS after the reads: {rss_mb(proc.pid):.1f} MB", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
        trio.run(lateness_phase, "big table", url, args.port, args, "off")
        trio.run(lateness_phase, "big table + retention", url, args.port, args, "30d")
        print(f"finished jobs left: {finished_rows(url):,}", flush=True)


if __name__ == "__main__":
    main()

"""Chronos on PostgreSQL beside procrastinate, same database server, same machine, one run.
Prints figures; asserts nothing.

    .venv/bin/pip install -e '.[bench]'      # procrastinate 3.x
    .venv/bin/python -m bench.pg_bench [--jobs 20000] [--concurrency 1 8 32] [--rates 50 200]
        [--idle 1000 10000] [--pg postgresql://postgres@127.0.0.1:5432]

1. pull burn-down: N jobs made ready up front, then C concurrent claim loops drain them through
   the HTTP API — one job per claim (the spec's protocol) and with the batch extensions — beside
   procrastinate draining N no-op jobs at the same concurrency;
2. lateness: jobs due at a steady rate → run_at to claim answer (Chronos) and defer → task start
   (procrastinate), p50/p95/p99;
3. idle long-polls: K parked claims → server RSS, CPU and database transactions/s while idle.
The Chronos server runs as `python -m chronos_server serve` in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import trio

from bench.pull_bench import (
    batch_worker_loop,
    cpu_seconds,
    lateness,
    pct,
    start_server,
    worker_loop,
)

KEY = "chrns_" + "P" * 40
HERE = Path(__file__).resolve().parent
DB_CHRONOS, DB_PROCRASTINATE = "bench_chronos", "bench_procrastinate"


def recreate(pg: str, name: str) -> str:
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return f"{pg}/{name}"


def bulk_ready(url: str, handler: str, n: int) -> None:
    """Insert N pending jobs due now in one statement; the server's pipeline makes them ready."""
    now = int(time.time() * 1000)
    with psycopg.connect(url, autocommit=True) as conn:
        account = conn.execute("SELECT id FROM accounts WHERE name = 'default'").fetchone()
        assert account is not None
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
            {"account": account[0], "handler": handler, "now": now, "n": n},
        )
    deadline = time.monotonic() + 120
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM jobs WHERE handler = %s AND status = 'ready'", (handler,)
            ).fetchone()
            if row and row[0] >= n:
                return
            time.sleep(0.1)
    raise SystemExit("jobs did not become ready")


async def drain(base: str, handler: str, n: int, concurrency: int, batch: int) -> float:
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=concurrency + 8)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:
        counts: list[int] = []

        async def one() -> None:
            if batch:
                counts.append(await batch_worker_loop(c, handler, batch))
            else:
                counts.append(await worker_loop(c, handler, stop_when_empty=True))

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(one)
        elapsed = time.perf_counter() - started
    assert sum(counts) == n, (sum(counts), n)
    return n / elapsed


def procrastinate(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(HERE / "procrastinate_side.py"), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def vacuum(*urls: str) -> None:
    """Autovacuum is off on these machines' PostgreSQL (`SHOW autovacuum`): without it the dead
    rows of earlier phases slow every later one. Both databases are vacuumed before each phase,
    standing in for the autovacuum a production server runs."""
    for url in urls:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def transactions(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (url.rsplit("/", 1)[1],),
        ).fetchone()
    return int(row[0]) if row else 0


async def park(port: int, handler: str, stop: trio.Event) -> None:
    """One idle worker: a raw HTTP/1.1 keep-alive connection re-posting a 20 s claim."""
    body = json.dumps({"handlers": [handler], "wait_time_seconds": 20}).encode()
    request = (
        f"POST /v1/worker/jobs/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    while not stop.is_set():
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                while not stop.is_set():
                    await stream.send_all(request)
                    data = b""
                    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                        chunk = await stream.receive_some(65536)
                        if not chunk:
                            raise trio.BrokenResourceError("closed by the server")
                        data += chunk
        except (trio.BrokenResourceError, OSError):
            RECONNECTS[0] += 1
            await trio.sleep(0.5)  # a full accept queue refused us: come back a little later


RECONNECTS = [0]


async def idle(port: int, url: str, pid: int, k: int, settle: float, window: float) -> str:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        for i in range(k):
            nursery.start_soon(park, port, f"idle-{uuid.uuid4().hex[:6]}", stop)
            if i % 50 == 49:
                await trio.sleep(0.1)  # ~500 new connections/s: gentle on the listen backlog
        await trio.sleep(settle)
        RECONNECTS[0] = 0
        cpu0, tx0, t0 = cpu_seconds(pid), transactions(url), time.monotonic()
        await trio.sleep(window)
        cpu1, tx1, t1 = cpu_seconds(pid), transactions(url), time.monotonic()
        rss = rss_mb(pid)
        stop.set()
        nursery.cancel_scope.cancel()
    # pg_stat_database counts its own two reads; report transactions per second net of them.
    rate = max(0.0, (tx1 - tx0 - 1) / (t1 - t0))
    cpu = 100 * (cpu1 - cpu0) / (t1 - t0)
    return (
        f"idle       K={k:<6d} server RSS {rss:6.1f} MB  CPU {cpu:5.1f} %"
        f"  database transactions {rate:6.2f}/s  (reconnects while measuring: {RECONNECTS[0]})"
    )


async def chronos_side(args: argparse.Namespace, url: str, port: int, pid: int) -> None:
    base = f"http://127.0.0.1:{port}"
    for c in args.concurrency:
        for batch in (0, args.batch):
            handler = f"burn-{c}-{batch}"
            bulk_ready(url, handler, args.jobs)
            vacuum(url, args.procrastinate_url)
            rate = await drain(base, handler, args.jobs, c, batch)
            mode = f"batch={batch:<3d}" if batch else "single   "
            print(f"burn-down  chronos       concurrency={c:<3d} {mode} {rate:9.1f} jobs/s")
        vacuum(url, args.procrastinate_url)
        theirs = procrastinate(
            "burn",
            "--conninfo",
            args.procrastinate_url,
            "--jobs",
            str(args.jobs),
            "--concurrency",
            str(c),
        )
        print(
            f"burn-down  procrastinate concurrency={c:<3d}           "
            f"{float(theirs['jobs_per_s']):9.1f} jobs/s"  # type: ignore[arg-type]
        )
    for rate in args.rates:
        vacuum(url, args.procrastinate_url)
        late, missed = await lateness(base, rate, args.seconds, workers=8, key=KEY)
        print(
            f"lateness   chronos       {rate:g}/s n={len(late):<5d} run_at→claim  "
            f"p50 {pct(late, 50):6.1f} ms  p95 {pct(late, 95):6.1f} ms  p99 {pct(late, 99):6.1f} ms"
            + (f"  ({missed} jobs could not be created before they were due)" if missed else "")
        )
        theirs = procrastinate(
            "lateness",
            "--conninfo",
            args.procrastinate_url,
            "--rate",
            str(rate),
            "--seconds",
            str(args.seconds),
        )
        lat = [float(x) for x in theirs["latencies_ms"]]  # type: ignore[attr-defined]
        print(
            f"lateness   procrastinate {rate:g}/s n={len(lat):<5d} defer→start  "
            f"p50 {pct(lat, 50):6.1f} ms  p95 {pct(lat, 95):6.1f} ms  p99 {pct(lat, 99):6.1f} ms"
        )
    for k in args.idle:
        vacuum(url, args.procrastinate_url)
        print(await idle(port, url, pid, k, settle=args.settle, window=args.window))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rates", type=float, nargs="*", default=[50.0, 200.0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=18932)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    url = recreate(args.pg, DB_CHRONOS)
    args.procrastinate_url = recreate(args.pg, DB_PROCRASTINATE)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"PostgreSQL at {args.pg}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; jobs per run {args.jobs}"
    )
    proc = start_server(url, args.port, KEY)
    try:
        trio.run(chronos_side, args, url, args.port, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()

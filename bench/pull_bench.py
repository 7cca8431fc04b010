"""Pull-delivery benchmark on SQLite: prints figures, asserts nothing.

1. burn-down: N jobs created up front, then W concurrent claim+report loops drain them → jobs/s,
   one job per claim (the spec's protocol) and then with the batch extensions (`max_jobs`,
   `/v1/worker/executions/results`);
2. lateness: jobs scheduled at a steady rate into the future while workers are parked in claim →
   time from `scheduled_for` (= run_at) to the claim answer, p50/p95/p99.

It starts `chronos serve` as a separate process on a fresh SQLite file (rate limit off), so the
client and the server do not share an event loop. Usage:

    .venv/bin/python -m bench.pull_bench [--jobs 2000] [--workers 1 8] [--batch 50] [--rate 50]
        [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import trio

KEY = "chrns_" + "B" * 40


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def named_cpu_seconds(comm: str) -> float:
    """User + system CPU time used so far by the running processes named `comm` (e.g. every
    `postgres` backend; one that ended meanwhile drops out of the sum)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition(" (")[2].rpartition(")")
        if name == comm:
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, summed over its cores (`/proc/stat`)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def start_server(
    database_url: str, port: int, key: str = KEY, *, workers: int = 1, **env: str
) -> subprocess.Popen[bytes]:
    """`python -m chronos_server serve` in its own process (rate limit off), once ready;
    `workers` > 1 adds `--workers` (then the process is the supervisor of that many)."""
    environ = dict(os.environ, CHRONOS_BOOTSTRAP_API_KEY=key, CHRONOS_RATE_LIMIT="off", **env)
    cmd = [sys.executable, "-m", "chronos_server", "serve", "--port", str(port)]
    cmd += ["--database-url", database_url, "--log-level", "WARNING"]
    if workers != 1:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=environ)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not become ready")


async def create_jobs(
    client: httpx.AsyncClient,
    n: int,
    handler: str,
    parallel: int = 16,
    body: Callable[[int], dict[str, Any]] | None = None,
) -> None:
    """`n` jobs through the API, `parallel` requests at a time; `body(i)` is the i-th job's body
    (a pull job for `handler` by default)."""
    send, recv = trio.open_memory_channel[int](n)
    for i in range(n):
        send.send_nowait(i)
    send.close()

    async def creator() -> None:
        async for i in recv:
            job = body(i) if body else {"name": f"b{i}", "handler": handler}
            (await client.post("/v1/jobs", json=job)).raise_for_status()

    async with trio.open_nursery() as nursery:
        for _ in range(parallel):
            nursery.start_soon(creator)


async def wait_all_ready(client: httpx.AsyncClient, handler: str, n: int) -> None:
    while True:
        r = await client.get("/v1/jobs", params={"status": "ready", "handler": handler, "size": 1})
        if r.json()["meta"]["paging"]["total"] >= n:
            return
        await trio.sleep(0.05)


OnClaim = Callable[[tuple[float, str]], None]


async def worker_loop(
    client: httpx.AsyncClient, handler: str, stop_when_empty: bool, on_claim: OnClaim | None = None
) -> int:
    done = 0
    while True:
        wait = 0 if stop_when_empty else 20
        r = await client.post(
            "/v1/worker/jobs/claim", json={"handlers": [handler], "wait_time_seconds": wait}
        )
        if r.status_code != 200:
            raise RuntimeError(f"claim answered {r.status_code}: {r.text[:300]}")
        data = r.json()["data"]
        if data is None:
            if stop_when_empty:
                return done
            continue
        if on_claim is not None:
            on_claim((time.time(), data["scheduled_for"]))
        rr = await client.post(
            f"/v1/worker/executions/{data['execution_id']}/result", json={"status": "completed"}
        )
        rr.raise_for_status()
        done += 1


async def batch_worker_loop(client: httpx.AsyncClient, handler: str, batch: int) -> int:
    """Claim up to `batch` jobs at once and report them in one request (the extensions)."""
    done = 0
    while True:
        body = {"handlers": [handler], "wait_time_seconds": 0, "max_jobs": batch}
        jobs = (await client.post("/v1/worker/jobs/claim", json=body)).json()["data"]
        if not jobs:
            return done
        results = [{"execution_id": j["execution_id"], "status": "completed"} for j in jobs]
        r = await client.post("/v1/worker/executions/results", json={"results": results})
        r.raise_for_status()
        done += sum(1 for item in r.json()["data"] if item["success"])


async def burn_down(base: str, jobs: int, workers: int, batch: int = 0) -> float:
    handler = f"burn{workers}x{batch}"
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=workers + 16)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:
        await create_jobs(c, jobs, handler)
        await wait_all_ready(c, handler, jobs)
        started = time.perf_counter()
        counts: list[int] = []

        async def one() -> None:
            if batch:
                counts.append(await batch_worker_loop(c, handler, batch))
            else:
                counts.append(await worker_loop(c, handler, stop_when_empty=True))

        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(one)
        elapsed = time.perf_counter() - started
    assert sum(counts) == jobs, (sum(counts), jobs)
    return jobs / elapsed


async def lateness(
    base: str, rate: float, seconds: float, workers: int, key: str = KEY
) -> tuple[list[float], int]:
    """(lateness in ms per claimed job, jobs that could not even be created before their time).

    The handler name is new on each call: the last job's report is cut off when the phase ends,
    so its retry (after its 30 s lease) must not be claimed, 30 s late, by a later phase."""
    handler = f"late{int(rate)}-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {key}"}
    claims: list[tuple[float, str]] = []
    total = int(rate * seconds)
    missed: list[int] = []
    all_claimed = trio.Event()

    def check_done() -> None:
        if len(claims) + len(missed) >= total:
            all_claimed.set()

    def record(item: tuple[float, str]) -> None:
        claims.append(item)
        check_done()

    async with (
        httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as c,
        trio.open_nursery() as nursery,
    ):
        for _ in range(workers):
            nursery.start_soon(worker_loop, c, handler, False, record)
        lead = 5.0  # each job is created 5 s before it is due: creation latency never counts
        start = time.time() + 0.5
        creators = 4  # several creators, so one slow create does not hold up the next

        async def create(first: int) -> None:
            for i in range(first, total, creators):
                due = start + i / rate
                await trio.sleep(max(0.0, due - lead - time.time()))
                at = datetime.fromtimestamp(due, tz=UTC).isoformat()
                body = {"name": f"l{i}", "handler": handler, "scheduled_for": at}
                r = await c.post("/v1/jobs", json=body)
                if r.status_code == 422:  # the server fell so far behind that `at` has passed
                    missed.append(i)
                    check_done()
                elif r.status_code != 201:
                    raise RuntimeError(f"create answered {r.status_code}: {r.text[:300]}")

        async with trio.open_nursery() as creating:
            for first in range(creators):
                creating.start_soon(create, first)
        with trio.move_on_after(lead + 10):
            await all_claimed.wait()
        nursery.cancel_scope.cancel()
    late = []
    for answered, scheduled in claims:
        due_at = datetime.fromisoformat(scheduled.replace("Z", "+00:00")).timestamp()
        late.append((answered - due_at) * 1000)
    return late, len(missed)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main_async(args: argparse.Namespace, base: str) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"store: SQLite (WAL), server: 1 process; jobs per burn-down run: {args.jobs}")
    for w in args.workers:
        rate = await burn_down(base, args.jobs, w)
        print(f"burn-down  workers={w:<3d} claim+result: {rate:8.1f} jobs/s")
    for w in args.workers:
        rate = await burn_down(base, args.jobs, w, args.batch)
        print(f"burn-down  workers={w:<3d} batch={args.batch} claim+results: {rate:8.1f} jobs/s")
    late, _ = await lateness(base, args.rate, args.seconds, workers=2)
    print(
        f"lateness   rate={args.rate:g}/s n={len(late)}  run_at→claim answer: "
        f"p50 {pct(late, 50):.1f} ms  p95 {pct(late, 95):.1f} ms  p99 {pct(late, 99):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--batch", type=int, default=50, help="max_jobs for the batch runs")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=18931)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(f"sqlite:///{Path(tmp) / 'bench.db'}", args.port)
        try:
            trio.run(main_async, args, f"http://127.0.0.1:{args.port}")
        finally:
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()

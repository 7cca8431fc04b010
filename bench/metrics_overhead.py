"""What `--metrics-port` costs on the hot path: the same workload with metrics off and on.
Prints figures; asserts nothing. Needs a quiet machine for figures worth comparing.

    .venv/bin/python -m bench.metrics_overhead [--store sqlite|postgres] [--jobs 2000]
        [--concurrency 8] [--rounds 3]

1. Per event: the cost of each `Metrics` method, off and on (a tight loop, in µs per call).
2. End to end: a server in this process (`runtime.serve`, SQLite file or a fresh PostgreSQL
   database), `--concurrency` clients each creating a pull job, claiming it and reporting it
   completed, until `--jobs` are done; jobs/s and CPU µs per job (process CPU: client and
   server together), alternating off/on for `--rounds` rounds (the best of each kept).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import psycopg
import trio

from chronos_server.core.models import ExecutionStatus
from chronos_server.pipeline.services import LoopSettings
from chronos_server.runtime import ServerHandle, serve
from chronos_server.settings import Settings
from chronos_server.telemetry.metrics import Metrics

KEY = "chrns_" + "M" * 40


def per_event(n: int = 200_000) -> None:
    for enabled in (False, True):
        m = Metrics(enabled=enabled)
        cases: dict[str, Callable[[], None]] = {
            "job_created": partial(m.job_created, "api"),
            "execution_finished": partial(
                m.execution_finished, ExecutionStatus.COMPLETED, "pull", 12
            ),
            "http_request": partial(m.http_request, "POST", "/v1/jobs", 201, 0.0004),
            "store_call": partial(m.store_call, "claim_ready_jobs", 0.0002),
        }
        for name, fn in cases.items():
            if name == "store_call" and not enabled:
                continue  # only wrapped in when metrics are on
            started = time.perf_counter()
            for _ in range(n):
                fn()
            us = (time.perf_counter() - started) / n * 1e6
            print(f"  {name:<20} metrics {'on ' if enabled else 'off'}: {us:6.2f} µs/call")


async def client_loop(client: httpx.AsyncClient, jobs: list[int], handler: str) -> None:
    while jobs:
        jobs.pop()
        r = await client.post("/v1/jobs", json={"name": "m", "handler": handler})
        assert r.status_code == 201, r.text
        while True:
            body = {"handlers": [handler], "wait_time_seconds": 5}
            claimed = (await client.post("/v1/worker/jobs/claim", json=body)).json()["data"]
            if claimed is not None:
                break
        execution = claimed["execution_id"]
        r = await client.post(
            f"/v1/worker/executions/{execution}/result", json={"status": "completed"}
        )
        assert r.status_code == 200, r.text


async def one_run(settings: Settings, jobs: int, concurrency: int) -> tuple[float, float]:
    async with trio.open_nursery() as nursery:

        async def run(*, task_status: trio.TaskStatus[ServerHandle]) -> None:
            await serve(settings, loop_settings=LoopSettings(), task_status=task_status)

        handle: ServerHandle = await nursery.start(run)
        headers = {"Authorization": f"Bearer {KEY}"}
        limits = httpx.Limits(max_connections=concurrency * 2)
        async with httpx.AsyncClient(
            base_url=handle.url, headers=headers, timeout=30, limits=limits
        ) as client:
            todo = list(range(jobs))
            cpu, wall = time.process_time(), time.perf_counter()
            async with trio.open_nursery() as clients:
                for i in range(concurrency):
                    clients.start_soon(client_loop, client, todo, f"h{i}")
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        handle.stop()
    return jobs / wall, cpu / jobs * 1e6


def database_url(store: str, tmp: Path, pg: str, round_no: int, metrics: bool) -> str:
    if store == "sqlite":
        return f"sqlite:///{tmp / f'r{round_no}-{int(metrics)}.db'}"
    name = f"bench_metrics_{round_no}_{int(metrics)}"
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return f"{pg}/{name}"


async def end_to_end(args: argparse.Namespace) -> None:
    best: dict[bool, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for metrics in (False, True):
                settings = Settings(
                    host="127.0.0.1",
                    port=0,
                    database_url=database_url(args.store, Path(tmp), args.pg, round_no, metrics),
                    bootstrap_api_key=KEY,
                    rate_limit=None,
                    metrics_port=0 if metrics else None,
                )
                rate, cpu_us = await one_run(settings, args.jobs, args.concurrency)
                print(
                    f"  round {round_no + 1} metrics {'on ' if metrics else 'off'}: "
                    f"{rate:8.0f} jobs/s, {cpu_us:7.0f} µs CPU per job"
                )
                prev = best.get(metrics)
                if prev is None or rate > prev[0]:
                    best[metrics] = (rate, cpu_us)
    (off_rate, off_cpu), (on_rate, on_cpu) = best[False], best[True]
    print(
        f"best: off {off_rate:.0f} jobs/s ({off_cpu:.0f} µs CPU/job), on {on_rate:.0f} jobs/s "
        f"({on_cpu:.0f} µs CPU/job): {100 * (on_cpu - off_cpu) / off_cpu:+.1f} % CPU per job"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("per event:")
    per_event()
    print(f"end to end ({args.store}, {args.jobs} jobs, {args.concurrency} clients):")
    trio.run(end_to_end, args)


if __name__ == "__main__":
    main()

"""The procrastinate half of `bench/pg_bench.py`, run in its own process (procrastinate is
asyncio; Chronos' side is Trio). Prints one JSON object on stdout. Not imported by anything.

    python bench/procrastinate_side.py burn --conninfo URL --jobs N --concurrency C
    python bench/procrastinate_side.py lateness --conninfo URL --rate R --seconds S
"""
# mypy: ignore-errors

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

import procrastinate

STARTS: list[float] = []
ALL_STARTED = asyncio.Event()
EXPECTED = [0]


def make_app(conninfo: str) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    @app.task(name="stamp")
    async def stamp(deferred_at: float) -> None:
        STARTS.append((time.time() - deferred_at) * 1000)
        if len(STARTS) >= EXPECTED[0]:
            ALL_STARTED.set()

    return app


async def prepare(app: procrastinate.App) -> None:
    async with app.connector.pool.connection() as conn:  # a fresh schema every run
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    await app.schema_manager.apply_schema_async()


async def burn(conninfo: str, jobs: int, concurrency: int) -> dict[str, float]:
    app = make_app(conninfo)
    async with app.open_async():
        await prepare(app)
        noop = app.tasks["noop"]
        for start in range(0, jobs, 1000):
            await noop.batch_defer_async(*[{} for _ in range(min(1000, jobs - start))])
        started = time.perf_counter()
        await app.run_worker_async(
            concurrency=concurrency, wait=False, install_signal_handlers=False
        )
        elapsed = time.perf_counter() - started
    return {"jobs": jobs, "concurrency": concurrency, "jobs_per_s": jobs / elapsed}


async def lateness(conninfo: str, rate: float, seconds: float) -> dict[str, object]:
    app = make_app(conninfo)
    async with app.open_async():
        await prepare(app)
        stamp = app.tasks["stamp"]
        worker = asyncio.create_task(
            app.run_worker_async(concurrency=8, install_signal_handlers=False)
        )
        await asyncio.sleep(1.0)
        total = EXPECTED[0] = int(rate * seconds)
        begin = time.time()
        for i in range(total):
            await asyncio.sleep(max(0.0, begin + i / rate - time.time()))
            await stamp.defer_async(deferred_at=time.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ALL_STARTED.wait(), timeout=10)
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    return {"rate": rate, "latencies_ms": STARTS}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["burn", "lateness"])
    parser.add_argument("--conninfo", required=True)
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    if args.mode == "burn":
        result = asyncio.run(burn(args.conninfo, args.jobs, args.concurrency))
    else:
        result = asyncio.run(lateness(args.conninfo, args.rate, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

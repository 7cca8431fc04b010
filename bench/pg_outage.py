"""How a Chronos server on PostgreSQL answers while its database is down, and how it comes back.
Prints figures; asserts nothing.

    .venv/bin/python -m bench.pg_outage [--clients 8] [--down 6] [--pg postgresql://postgres@127.0.0.1:5432]

A fresh database, a server in its own process (`python -m chronos_server serve`), then `--clients`
loops calling `GET /v1/jobs` and `GET /readyz` back to back. The database is taken down the way
tests/e2e/test_pg_outage.py does it (new connections refused, every backend terminated) for
`--down` seconds, then allowed again. Printed: the latency of the answers while down (the first
503s detect the outage; the rest should come from the circuit breaker), the slowest request of
each phase, and how long after the database came back the first 200 arrived.
"""

from __future__ import annotations

import argparse
import secrets
import time
from dataclasses import dataclass, field

import httpx
import psycopg
import trio

from bench.pull_bench import start_server

KEY = "chrns_" + "O" * 40


@dataclass
class Calls:
    """(start, seconds, status) of every request, by path."""

    rows: list[tuple[float, float, int, str]] = field(default_factory=list)

    def between(self, t0: float, t1: float, status: int | None = None) -> list[float]:
        return [d for s, d, st, _ in self.rows if t0 <= s < t1 and (status is None or st == status)]


async def client_loop(base: str, calls: Calls, stop: trio.Event) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        while not stop.is_set():
            for path in ("/v1/jobs", "/readyz"):
                start = time.monotonic()
                try:
                    status = (await client.get(path)).status_code
                except httpx.HTTPError:
                    status = 0
                calls.rows.append((start, time.monotonic() - start, status, path))
            await trio.sleep(0.05)


def set_connections(pg: str, name: str, allow: bool) -> None:
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(allow).lower()}")
        if not allow:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: none"
    ms = sorted(v * 1000 for v in values)

    def pick(p: float) -> float:
        return ms[min(len(ms) - 1, int(p / 100 * len(ms)))]

    return (
        f"{label}: n={len(ms)}  p50 {pick(50):.1f} ms  p95 {pick(95):.1f} ms  max {ms[-1]:.1f} ms"
    )


async def main_async(args: argparse.Namespace, base: str, name: str) -> None:
    calls, stop = Calls(), trio.Event()
    async with trio.open_nursery() as nursery:
        for _ in range(args.clients):
            nursery.start_soon(client_loop, base, calls, stop)
        await trio.sleep(1)
        down = time.monotonic()
        await trio.to_thread.run_sync(set_connections, args.pg, name, False)
        await trio.sleep(args.down)
        up = time.monotonic()
        await trio.to_thread.run_sync(set_connections, args.pg, name, True)
        await trio.sleep(args.after)
        stop.set()
    end = time.monotonic()
    print(summary("before the outage, all answers     ", calls.between(0, down)))
    print(summary("during the outage, 503 answers     ", calls.between(down, up, 503)))
    late = calls.between(down + 1, up, 503)
    print(summary("  the same, from 1 s into the outage", late))
    print(summary("after the outage, all answers      ", calls.between(up, end)))
    first_ok = min((s + d for s, d, st, _ in calls.rows if s >= up and st == 200), default=None)
    if first_ok is not None:
        print(f"first 200 after the database came back: +{(first_ok - up) * 1000:.0f} ms")
    slowest = max(calls.rows, key=lambda r: r[1])
    print(
        f"slowest request: {slowest[1] * 1000:.0f} ms ({slowest[3]} -> {slowest[2]}, "
        f"started {slowest[0] - down:+.2f} s from the outage)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--down", type=float, default=6.0, help="seconds the database is down")
    parser.add_argument("--after", type=float, default=6.0, help="seconds measured after")
    parser.add_argument("--port", type=int, default=18941)
    args = parser.parse_args()
    name = f"bench_outage_{secrets.token_hex(4)}"
    with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        proc = start_server(f"{args.pg}/{name}", args.port, KEY)
        try:
            trio.run(main_async, args, f"http://127.0.0.1:{args.port}", name)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    finally:
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()

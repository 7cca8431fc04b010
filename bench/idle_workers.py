"""Idle workers against one server process on PostgreSQL: what N workers cost while nothing
happens, over the worker channel and over the long-poll. Prints figures; asserts nothing.

    .venv/bin/python -m bench.idle_workers [--workers 10000] [--clients 4]
        [--protocols stream poll] [--settle 30] [--window 30] [--port P] [--db-name NAME]

For each protocol: a fresh database and a fresh `chronos serve` (one process), then `--clients`
client processes (this module with `--client`) that together hold `--workers` idle workers, each
for its own handler name (so no two share a wake-up), opened ~500 per second:
- `stream`: a WebSocket (`GET /v1/worker/stream`, trio-websocket) that says `hello` with one
  credit and then only pings every `heartbeat_seconds` of its welcome (15 s if none), as the SDK
  does when it has nothing to say;
- `poll`: a raw HTTP/1.1 keep-alive connection re-posting a 20 s claim as soon as it is answered
  (`pg_bench.py`'s parked worker).
The clients are deliberately lighter than the SDK (no handler machinery): what is measured is
the server. After `--settle` seconds, over `--window` seconds: the server process's CPU (% of one
core, user + system, `/proc`), its RSS at the end, and the database's transactions per second
(`pg_stat_database` xact_commit + xact_rollback delta, net of the two reads of the bench
itself); also how many workers had to reconnect while measuring (should be 0).
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
from datetime import UTC, datetime

import trio
from trio_websocket import open_websocket_url

from bench.hot_path import stop
from bench.pg_bench import recreate, rss_mb, transactions
from bench.pull_bench import cpu_seconds, start_server

KEY = "chrns_" + "I" * 40
OPEN_PER_SECOND = 500
PING_SECONDS = 15.0  # a server whose welcome says no heartbeat_seconds


def raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the client processes ---------------------------------------------------------------------


class Counts:
    def __init__(self) -> None:
        self.open = 0
        self.reconnects = 0


async def stream_worker(port: int, handler: str, counts: Counts, opened: trio.Event) -> None:
    url = f"ws://127.0.0.1:{port}/v1/worker/stream"
    headers = [(b"authorization", f"Bearer {KEY}".encode())]
    first = True
    while True:
        try:
            async with open_websocket_url(url, extra_headers=headers) as ws:
                hello = {"type": "hello", "handlers": [handler], "credits": 1}
                await ws.send_message(json.dumps(hello))
                welcome = json.loads(await ws.get_message())
                ping_every = float(welcome.get("heartbeat_seconds", PING_SECONDS))
                counts.open += 1
                if first:
                    first = False
                    opened.set()
                try:
                    while True:
                        await ws.send_message('{"type":"ping"}')
                        with trio.move_on_after(ping_every):
                            while True:
                                await ws.get_message()  # pong
                finally:
                    counts.open -= 1
        except Exception:  # refused, reset, closed: count it and come back
            counts.reconnects += 1
            await trio.sleep(0.5)


async def poll_worker(port: int, handler: str, counts: Counts, opened: trio.Event) -> None:
    body = json.dumps({"handlers": [handler], "wait_time_seconds": 20}).encode()
    request = (
        f"POST /v1/worker/jobs/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    first = True
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                counts.open += 1
                try:
                    while True:
                        await stream.send_all(request)
                        if first:  # parked once the request is in
                            first = False
                            opened.set()
                        data = b""
                        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                            chunk = await stream.receive_some(65536)
                            if not chunk:
                                raise trio.BrokenResourceError("closed by the server")
                            data += chunk
                finally:
                    counts.open -= 1
        except (trio.BrokenResourceError, OSError):
            counts.reconnects += 1
            await trio.sleep(0.5)


async def client(args: argparse.Namespace) -> None:
    """Hold `--count` idle workers; print `ready` once all are open, then on each line read from
    stdin print `reconnects N` (and reset the count)."""
    worker = stream_worker if args.protocol == "stream" else poll_worker
    counts = Counts()
    async with trio.open_nursery() as nursery:
        opened: list[trio.Event] = []
        for i in range(args.count):
            event = trio.Event()
            opened.append(event)
            nursery.start_soon(worker, args.port, f"idle-{args.index}-{i}", counts, event)
            if i % 50 == 49:
                await trio.sleep(50 / OPEN_PER_SECOND)
        for event in opened:
            await event.wait()
        print("ready", flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        async for _ in stdin:
            print(f"reconnects {counts.reconnects} open {counts.open}", flush=True)
            counts.reconnects = 0
        nursery.cancel_scope.cancel()


# -- the driver -------------------------------------------------------------------------------


def start_clients(args: argparse.Namespace, protocol: str) -> list[subprocess.Popen[bytes]]:
    per, extra = divmod(args.workers, args.clients)
    procs = []
    for index in range(args.clients):
        count = per + (1 if index < extra else 0)
        cmd = [sys.executable, "-m", "bench.idle_workers", "--client", "--protocol", protocol]
        cmd += ["--count", str(count), "--index", str(index), "--port", str(args.port)]
        procs.append(
            subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        )
    return procs


def ask(procs: list[subprocess.Popen[bytes]]) -> tuple[int, int]:
    """(reconnects since the last question, workers open) over every client."""
    reconnects = open_ = 0
    for proc in procs:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"?\n")
        words = proc.stdout.readline().split()
        reconnects += int(words[1])
        open_ += int(words[3])
    return reconnects, open_


def measure(args: argparse.Namespace, protocol: str) -> str:
    url = recreate(args.pg, args.db_name)
    server = start_server(url, args.port, KEY, CHRONOS_MAX_CONNECTIONS=str(args.workers + 1000))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs = start_clients(args, protocol)
        opened_at = time.monotonic()
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != b"ready":
                raise SystemExit(f"a client did not get its workers open: {line!r}")
        opening = time.monotonic() - opened_at
        time.sleep(args.settle)
        ask(procs)
        cpu0, tx0, t0 = cpu_seconds(server.pid), transactions(url), time.monotonic()
        time.sleep(args.window)
        cpu1, tx1, t1 = cpu_seconds(server.pid), transactions(url), time.monotonic()
        rss = rss_mb(server.pid)
        reconnects, open_ = ask(procs)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        stop(server)
    rate = max(0.0, (tx1 - tx0 - 1) / (t1 - t0))  # net of the bench's own read
    cpu = 100 * (cpu1 - cpu0) / (t1 - t0)
    return (
        f"idle  {protocol:<6s} workers={args.workers:<6d} server CPU {cpu:5.1f} %"
        f"  RSS {rss:6.1f} MB"
        f"  database transactions {rate:6.2f}/s  (open {open_}, reconnects while measuring"
        f" {reconnects}; opened in {opening:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--protocols", nargs="*", choices=["stream", "poll"], default=["stream", "poll"]
    )
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--db-name", default="bench_idle_chronos")
    parser.add_argument("--port", type=int, default=18966)
    # a client process (started by the driver)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--protocol", choices=["stream", "poll"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_open_files()
    if args.client:
        trio.run(client, args)
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; PostgreSQL; {args.workers} idle workers over"
        f" {args.clients} client processes; settle {args.settle:g} s, window {args.window:g} s"
    )
    for protocol in args.protocols:
        print(measure(args, protocol), flush=True)


if __name__ == "__main__":
    main()

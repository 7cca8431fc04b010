"""Push fan-out benchmark on SQLite: prints figures, asserts nothing.

N push jobs (default 1,000) are created with the same `scheduled_for` a few seconds ahead; a local
receiver answers every request with 200 after a fixed latency (default 2 s). The run measures,
from the due instant:

- when the last attempt ended (the latest execution `finished_at`: its response was read) →
  jobs/s, and that rate as a share of the ideal `concurrency / latency` (with concurrency ≥ N
  the ideal is N / latency); and when the last completion was written (the latest job
  `updated_at`: outcomes are group-committed, so this comes one transaction later), with the
  same share computed from it;
- the receiver's in-flight peak (requests it held at once) and when the first and last request
  arrived;
- the CPU time the server process used from just before the due instant until every job had
  finished (Linux `/proc`, as the other benches; includes the bench's few completion polls),
  per job: what bounds a burst on a small machine, next to the bare client's.

`chronos serve` runs as a separate process on a fresh SQLite file (`--store postgres`: a fresh
PostgreSQL database, `bench_push` on `--pg`) with
`CHRONOS_ALLOW_HTTP_TARGETS=1 CHRONOS_ALLOW_PRIVATE_TARGETS=1 CHRONOS_RATE_LIMIT=off
CHRONOS_PUSH_CONCURRENCY=<c>`, one server per concurrency value. The receiver is a raw
`trio.serve_tcp` + h11 server in this process (one task per connection, keep-alive), which holds
thousands of sleeping requests without effort. Usage:

    .venv/bin/python -m bench.push_bench [--jobs 1000] [--latency 2] [--concurrency 1000 256]
        [--lead 4] [--repeat 1] [--floor] [--profile DIR] [--store sqlite|postgres]

`--floor` first runs a bare trio + h11 client (its own process, no scheduler, no database) with
the same number of requests against the same receiver: the most this machine allows.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import h11
import httpx
import trio

from bench.hot_path import Profile
from bench.pg_bench import recreate
from bench.pull_bench import cpu_seconds, create_jobs, start_server

KEY = "chrns_" + "P" * 40
STORES = {"sqlite": "SQLite (WAL)", "postgres": "PostgreSQL (a fresh database per run)"}
FDS_WANTED = 8192  # two sockets per request (server and receiver side) plus the database


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < FDS_WANTED:
        target = FDS_WANTED if hard == resource.RLIM_INFINITY else min(FDS_WANTED, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))  # the server inherits it
        soft = target
    return soft


# --- the receiver ----------------------------------------------------------------------------


@dataclass
class Receiver:
    latency: float
    in_flight: int = 0
    peak: int = 0
    arrivals: list[float] = field(default_factory=list)
    connections: int = 0

    def reset(self) -> None:
        self.in_flight = self.peak = self.connections = 0
        self.arrivals = []

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = await self._next_event(conn, stream)
                if not isinstance(event, h11.Request):
                    return
                while not isinstance(await self._next_event(conn, stream), h11.EndOfMessage):
                    pass
                self.arrivals.append(time.time())
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
                try:
                    await trio.sleep(self.latency)
                finally:
                    self.in_flight -= 1
                body = b'{"ok":true}'
                headers = [("content-type", "application/json"), ("content-length", "11")]
                data = conn.send(h11.Response(status_code=200, headers=headers)) or b""
                data += conn.send(h11.Data(data=body)) or b""
                data += conn.send(h11.EndOfMessage()) or b""
                await stream.send_all(data)  # one write: the receiver must not be the bottleneck
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            await stream.aclose()

    @staticmethod
    async def _next_event(conn: h11.Connection, stream: trio.SocketStream) -> object:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await stream.receive_some(65536))  # b"" = EOF, h11 handles it


# --- the floor: a bare client, no scheduler --------------------------------------------------


async def bare_request(port: int, body: bytes) -> None:
    """One request the cheapest way Trio and h11 allow: connect, send, read the response."""
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    conn = h11.Connection(h11.CLIENT)
    headers = [("host", "127.0.0.1"), ("content-length", str(len(body)))]
    data = conn.send(h11.Request(method="POST", target="/hook", headers=headers)) or b""
    data += (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
    await stream.send_all(data)
    while not isinstance(await Receiver._next_event(conn, stream), h11.EndOfMessage):
        pass
    await stream.aclose()


async def bare_client(jobs: int, port: int, concurrency: int) -> tuple[float, float]:
    """(seconds, CPU seconds) for `jobs` bare requests, at most `concurrency` at once, from the
    first connect to the last answer."""
    body = b'{"job_id":"' + b"x" * 36 + b'","payload":null}'
    slots = trio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            await bare_request(port, body)

    started, cpu = time.monotonic(), time.process_time()
    async with trio.open_nursery() as nursery:
        for _ in range(jobs):
            nursery.start_soon(one)
    return time.monotonic() - started, time.process_time() - cpu


async def floor_run(args: argparse.Namespace, concurrency: int) -> tuple[float, float]:
    """The bare client in its own process (as the server is), against the same receiver."""
    cmd = [sys.executable, "-m", "bench.push_bench", "--bare-client", "--jobs", str(args.jobs)]
    cmd += ["--receiver-port", str(args.receiver_port), "--concurrency", str(concurrency)]
    done = await trio.run_process(cmd, capture_stdout=True)
    seconds, cpu = done.stdout.decode().split()
    return float(seconds), float(cpu)


# --- the server and the API -----------------------------------------------------------------


def iso_ms(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def push_job(url: str, due: float) -> Callable[[int], dict[str, Any]]:
    delivery = {"type": "push", "http": {"url": url, "method": "POST"}}
    return lambda i: {"name": f"p{i}", "delivery": delivery, "scheduled_for": iso_ms(due)}


async def count(c: httpx.AsyncClient, status: str) -> int:
    r = await c.get("/v1/jobs", params={"status": status, "size": 1})
    total: int = r.json()["meta"]["paging"]["total"]
    return total


async def wait_finished(c: httpx.AsyncClient, n: int) -> None:
    """Poll (2 cheap count queries every half second) until every job is completed or failed.
    The figures come from the rows' timestamps, so polling sooner would not change them, only
    take CPU from the server in the middle of the burst it is measuring."""
    while True:
        if await count(c, "completed") + await count(c, "failed") >= n:
            return
        await trio.sleep(0.5)


async def listed(c: httpx.AsyncClient, path: str, n: int) -> list[dict[str, Any]]:
    """The first `n` items of a list endpoint, 100 a page."""
    items: list[dict[str, Any]] = []
    for page in range(1, math.ceil(n / 100) + 1):
        items += (await c.get(path, params={"page": page, "size": 100})).json()["data"]
    return items


# --- one run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    concurrency: int
    first_start: float  # seconds after the due instant, server clock (execution started_at)
    last_start: float
    first_done: float
    last_done: float
    last_written: float
    cpu: float  # server CPU seconds over the burst
    completed: int
    peak: int
    first_arrival: float
    last_arrival: float
    connections: int


async def run_once(args: argparse.Namespace, concurrency: int, receiver: Receiver) -> Result:
    receiver.reset()
    with tempfile.TemporaryDirectory() as tmp:
        if args.store == "postgres":
            database_url = await trio.to_thread.run_sync(recreate, args.pg, "bench_push")
        else:
            database_url = f"sqlite:///{Path(tmp) / 'push.db'}"
        proc = await trio.to_thread.run_sync(
            partial(
                start_server,
                database_url,
                args.port,
                KEY,
                CHRONOS_ALLOW_HTTP_TARGETS="1",
                CHRONOS_ALLOW_PRIVATE_TARGETS="1",
                CHRONOS_PUSH_CONCURRENCY=str(concurrency),
            )
        )
        try:
            base = f"http://127.0.0.1:{args.port}"
            headers = {"Authorization": f"Bearer {KEY}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as c:
                due = math.ceil(time.time() + args.lead)  # a whole second: like a cron slot
                created = time.time()
                url = f"http://127.0.0.1:{args.receiver_port}/hook"
                try:
                    await create_jobs(c, args.jobs, "", body=push_job(url, due))
                except* httpx.HTTPStatusError:
                    if time.time() < due:
                        raise
                    # The API refuses a `scheduled_for` that is no longer in the future.
                    took = time.time() - created
                    raise RuntimeError(
                        f"creating {args.jobs} jobs took {took:.1f} s, past --lead {args.lead:g}"
                    ) from None
                await trio.sleep(max(0.0, due - 0.05 - time.time()))
                cpu_before = cpu_seconds(proc.pid)
                # In a thread: py-spy takes half a second to attach, and the receiver runs here.
                profile = await trio.to_thread.run_sync(
                    Profile, args.profile, proc.pid, f"push-c{concurrency}"
                )
                # Nothing finishes before due + latency; the first answers are read then.
                await trio.sleep(max(0.0, due + args.latency + 0.5 - time.time()))
                await wait_finished(c, args.jobs)
                cpu_after = cpu_seconds(proc.pid)
                await trio.to_thread.run_sync(profile.finish)
                executions = await listed(c, "/v1/executions", args.jobs)
                started = [epoch(e["started_at"]) for e in executions]
                done = [epoch(e["finished_at"]) for e in executions]
                # A job's last change is its completion: when that was written.
                written = [epoch(j["updated_at"]) for j in await listed(c, "/v1/jobs", args.jobs)]
                completed = await count(c, "completed")
        finally:
            proc.terminate()
            await trio.to_thread.run_sync(proc.wait, 20)
    return Result(
        concurrency=concurrency,
        first_start=min(started) - due,
        last_start=max(started) - due,
        first_done=min(done) - due,
        last_done=max(done) - due,
        last_written=max(written) - due,
        cpu=cpu_after - cpu_before,
        completed=completed,
        peak=receiver.peak,
        first_arrival=min(receiver.arrivals) - due,
        last_arrival=max(receiver.arrivals) - due,
        connections=receiver.connections,
    )


def report(r: Result, jobs: int, latency: float) -> None:
    rate = jobs / r.last_done
    ideal = min(r.concurrency, jobs) / latency
    best = jobs / (math.ceil(jobs / r.concurrency) * latency)  # whole waves of `latency`
    print(
        f"concurrency={r.concurrency:<5d} {r.completed}/{jobs} completed, last at "
        f"+{r.last_done:.3f} s → {rate:6.1f} jobs/s = {rate / ideal:5.1%} of "
        f"concurrency/latency ({ideal:.0f}/s; whole waves allow {best / ideal:.1%})"
    )
    written = jobs / r.last_written
    print(
        f"    last completion written at +{r.last_written:.3f} s → {written:6.1f} jobs/s = "
        f"{written / ideal:5.1%} of concurrency/latency"
    )

    def ms(seconds: float) -> str:
        return f"+{seconds * 1000:.0f}"

    print(
        f"    server: executions started {ms(r.first_start)}..{ms(r.last_start)} ms, "
        f"finished {ms(r.first_done)}..{ms(r.last_done)} ms, written by {ms(r.last_written)} ms"
    )
    print(
        f"    receiver: in-flight peak {r.peak}, {r.connections} connections, "
        f"requests arrived {ms(r.first_arrival)}..{ms(r.last_arrival)} ms"
    )
    print(f"    server CPU over the burst: {r.cpu:.2f} s = {r.cpu / jobs * 1e6:.0f} µs per job")


async def main_async(args: argparse.Namespace) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"store: {STORES[args.store]}, server: 1 process; {args.jobs} push jobs due at one "
        "instant, "
        f"receiver answers 200 after {args.latency:g} s; open-files limit {raise_fd_limit()}"
    )
    receiver = Receiver(args.latency)
    async with trio.open_nursery() as nursery:
        serve = partial(trio.serve_tcp, receiver.handle, args.receiver_port, host="127.0.0.1")
        await nursery.start(serve)
        for concurrency in args.concurrency:
            ended: list[float] = []
            written: list[float] = []
            floors: list[float] = []
            ideal = min(concurrency, args.jobs) / args.latency
            for _ in range(args.repeat):
                if args.floor:  # beside each Chronos run, so both see the same machine
                    seconds, cpu = await floor_run(args, concurrency)
                    floors.append(args.jobs / seconds / ideal)
                    print(
                        f"floor: a bare trio + h11 client (no scheduler, own process, a new "
                        f"connection per request), {args.jobs} requests, {concurrency} at once: "
                        f"last answer after {seconds:.3f} s → {floors[-1]:.1%} of "
                        f"concurrency/latency; CPU {cpu:.2f} s = "
                        f"{cpu / args.jobs * 1e6:.0f} µs per request"
                    )
                result = await run_once(args, concurrency, receiver)
                report(result, args.jobs, args.latency)
                ended.append(args.jobs / result.last_done / ideal)
                written.append(args.jobs / result.last_written / ideal)
                if args.floor:
                    print(f"    Chronos / bare client: {ended[-1] / floors[-1]:.1%}")
            if args.repeat > 1:
                for what, runs in (("last attempt ended", ended), ("written", written)):
                    shares = sorted(runs)  # a copy: `ended` stays paired with `floors` below
                    print(
                        f"concurrency={concurrency}: {args.repeat} runs, {what}: share of "
                        f"concurrency/latency min {shares[0]:.1%}, "
                        f"median {statistics.median(shares):.1%}, max {shares[-1]:.1%}"
                    )
                if args.floor:
                    ratios = sorted(e / f for e, f in zip(ended, floors, strict=True))
                    print(
                        f"concurrency={concurrency}: Chronos / bare client, run by run: min "
                        f"{ratios[0]:.1%}, median {statistics.median(ratios):.1%}, "
                        f"max {ratios[-1]:.1%}"
                    )
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--store", choices=sorted(STORES), default="sqlite")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--latency", type=float, default=2.0, help="receiver delay, seconds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1000, 256])
    parser.add_argument("--lead", type=float, default=4.0, help="seconds until the jobs are due")
    parser.add_argument("--repeat", type=int, default=1, help="runs per concurrency value")
    parser.add_argument(
        "--floor", action="store_true", help="first measure a bare client against the receiver"
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the server over each burst (bench/hot_path.py)"
    )
    parser.add_argument("--bare-client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=18941)
    parser.add_argument("--receiver-port", type=int, default=18942)
    args = parser.parse_args()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    raise_fd_limit()
    if args.bare_client:
        print(*trio.run(bare_client, args.jobs, args.receiver_port, args.concurrency[0]))
        return
    trio.run(main_async, args)


if __name__ == "__main__":
    main()

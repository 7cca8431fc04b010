"""The hot path as a user runs it, beside procrastinate on the same PostgreSQL, in one run.
Prints figures; asserts nothing.

    .venv/bin/pip install -e '.[bench]'      # procrastinate 3.x
    .venv/bin/python -m bench.hot_path [--store postgres|sqlite] [--jobs 5000]
        [--concurrency 1 8 32] [--rates 100 200] [--seconds 10] [--create 5000]
        [--phases burst lateness create] [--profile DIR] [--profile-threads] [--profile-worker DIR]
        [--server-workers N] [--port P] [--db-name NAME] [--protocols stream poll]
        [--other-limits N] [--warmup 500] [--repeat N]

Chronos: `chronos serve` and the real `chronos-worker` command (bench/noop_worker.py), each in
its own process; every job is created through the HTTP API.
1. burst: N jobs created ahead, all due at one instant T; the worker (concurrency C) drains them;
   figure: N / (last execution's finished_at - T). procrastinate: N no-op jobs deferred, then its
   own worker at the same concurrency; N / (worker start → queue empty).
2. lateness: jobs created ahead, due at a steady rate R for S seconds, worker concurrency 8;
   figure: handler start - scheduled_for (the handler stamps it), p50/p95/p99. procrastinate:
   a job deferred at its due instant, task start - defer time.
3. create: N jobs by `POST /v1/jobs` from 16 concurrent clients, and by `POST /v1/jobs/batch`
   (1,000 per request) when the server has it; jobs/s.
`--server-workers N` starts `chronos serve --workers N` (PostgreSQL): N server processes under a
supervisor; the server CPU shown is then their sum, followed by each one's share.
`--profile DIR` records the server with py-spy during each Chronos phase and prints where its
CPU went (self time of the top functions; with `--profile-threads` every thread's time, which
on SQLite includes its statements, run without the GIL); `--profile-worker DIR` does the same
for the worker process during each burst (`--gil --nonblocking`: on-CPU samples, the worker
barely slowed).
`--db-name` and `--port` keep two runs on one machine apart (a run recreates its database).
`--protocols` (default: both) runs the burst and lateness phases once per worker protocol
(`chronos-worker --protocol`): `stream` the worker channel (a WebSocket; the SDK's default),
`poll` the long-poll, whose concurrency-1 burst is the spec's one-job protocol (one claim and
one report request per job) and with concurrency > 1 the batch extensions.
`--repeat N` runs each burst and lateness figure N times (the protocols taking turns going
first, procrastinate's too) and prints each figure's median (for lateness, the median of the
runs' p50, p95 and p99): two protocols doing the same statements differ by less
than this machine's run-to-run noise (±15 %), which one burst each cannot tell apart.
`--warmup N` (default 500) first runs an unmeasured burst of N jobs per protocol, so neither
protocol's figure carries the fresh server's warm-up.
`--other-limits N` first gives N other handlers limits and due jobs that wait for them
(`limit_others`): compare a run with and without it for what limits cost a handler without any.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import psycopg
import trio

from bench.pg_bench import procrastinate, recreate, vacuum
from bench.pull_bench import (
    cpu_seconds,
    machine_busy_seconds,
    named_cpu_seconds,
    pct,
    start_server,
)
from chronos_worker.lean_http import LeanClient

KEY = "chrns_" + "H" * 40
CREATE_CLIENTS = 16


def iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def now_ms() -> float:
    return time.time() * 1000


class Chronos:
    """The server process, its database and the worker processes started against it."""

    def __init__(self, args: argparse.Namespace, database_url: str) -> None:
        self.args = args
        self.database_url = database_url
        self.port = args.port
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = start_server(
            database_url, self.port, KEY, workers=args.server_workers, **args.server_env
        )
        if args.server_workers > 1:
            wait_listening(self.proc.pid, self.port, args.server_workers)
        self.pg = database_url if database_url.startswith("postgresql") else None
        self._conn: psycopg.Connection[tuple[object, ...]] | sqlite3.Connection | None = None

    def server_pids(self) -> list[int]:
        """The server process, or with `--server-workers` the N processes under it."""
        return children(self.proc.pid) if self.args.server_workers > 1 else [self.proc.pid]

    def cpu(self) -> list[float]:
        return [cpu_seconds(pid) for pid in self.server_pids()]

    def store_calls(self) -> Counter[str]:
        """Store calls so far per operation, from the server's metrics (with
        `--server-env CHRONOS_METRICS_PORT=N`; empty otherwise)."""
        port = self.args.server_env.get("CHRONOS_METRICS_PORT")
        calls: Counter[str] = Counter()
        if not port:
            return calls
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith("chronos_store_call_duration_seconds_count{"):
                labels, _, value = line.rpartition(" ")
                operation = labels.split('operation="', 1)[1].split('"', 1)[0]
                calls[operation] += int(float(value))
        return calls

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        stop(self.proc)

    def worker(
        self, concurrency: int, protocol: str, stamps: Path | None = None
    ) -> subprocess.Popen[bytes]:
        env = dict(os.environ, BENCH_STAMPS=str(stamps or os.devnull))
        cmd = [str(Path(sys.executable).parent / "chronos-worker"), "--server", self.base]
        cmd += ["--api-key", KEY, "--concurrency", str(concurrency), "--log-level", "WARNING"]
        cmd += ["--protocol", protocol]
        cmd += ["bench.noop_worker:chronos"]
        return subprocess.Popen(cmd, env=env, cwd=Path(__file__).resolve().parent.parent)

    async def create(self, bodies: list[dict[str, object]], clients: int = CREATE_CLIENTS) -> float:
        """POST every body to /v1/jobs from `clients` concurrent keep-alive connections; seconds
        taken. The load generator is the SDK's lean HTTP/1.1 client (chronos_worker/lean_http.py),
        not httpx: httpx costs ~1 ms of CPU per request in this process, which on two cores made
        the bench, not the server, the bound (5,000 creates: httpx 5.1 s of CPU, server 2.9 s)."""
        headers = {
            "Authorization": f"Bearer {KEY}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        client = LeanClient(
            scheme="http", host="127.0.0.1", port=self.port, prefix="", headers=headers
        )
        todo = iter([orjson.dumps(body) for body in bodies])

        async def one() -> None:
            for body in todo:
                answer = await client.request("POST", "/v1/jobs", body)
                assert answer.status == 201, answer.body

        try:
            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(clients):
                    nursery.start_soon(one)
            return time.perf_counter() - started
        finally:
            await client.aclose()

    async def create_batch(self, bodies: list[dict[str, object]], per_request: int) -> float | None:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=self.base, headers=headers, timeout=60) as client:
            started = time.perf_counter()
            for start in range(0, len(bodies), per_request):
                resp = await client.post(
                    "/v1/jobs/batch", json={"jobs": bodies[start : start + per_request]}
                )
                if resp.status_code in (404, 405):
                    return None
                assert resp.status_code in (200, 201), resp.text
            return time.perf_counter() - started

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        """One query on a connection kept for the run: the bench polls while the server works,
        and a new PostgreSQL connection per poll (a backend forked, authenticated, its caches
        loaded) took CPU from the two cores the server and the worker share (5 a second cost
        the concurrency-1 burst ~20 %; procrastinate's side has no poller at all)."""
        if self._conn is None:
            if self.pg:
                self._conn = psycopg.connect(self.pg, autocommit=True)
            else:
                path = self.database_url.removeprefix("sqlite:///")
                self._conn = sqlite3.connect(path, isolation_level=None)
        if isinstance(self._conn, psycopg.Connection):
            return list(self._conn.execute(sql, params).fetchall())
        return list(self._conn.execute(sql.replace("%s", "?"), params).fetchall())

    def completed(self, name: str) -> int:
        row = self.query("SELECT count(*) FROM jobs WHERE name = %s AND status = 'completed'", name)
        return int(str(row[0][0]))

    def last_finish(self, name: str) -> float:
        row = self.query(
            "SELECT max(e.finished_at) FROM executions e JOIN jobs j ON j.id = e.job_id "
            "WHERE j.name = %s",
            name,
        )
        return float(str(row[0][0]))

    def vacuum(self) -> None:
        if self.pg:
            vacuum(self.pg, self.args.procrastinate_url)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux `/proc`)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and int((entry / "stat").read_text().rsplit(")")[1].split()[1]) == pid
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return sorted(found)


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds a listening TCP socket on `port` (Linux `/proc`)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            inodes.add(os.readlink(fd))
        except OSError:
            continue
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if (
                fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
                and f"socket:[{fields[9]}]" in inodes
            ):
                return True
    return False


def wait_listening(pid: int, port: int, n: int) -> None:
    """Until the `n` server processes under the supervisor `pid` all listen on `port`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kids = children(pid)
        if len(kids) == n and all(listens(k, port) for k in kids):
            return
        time.sleep(0.1)
    raise SystemExit(f"the {n} server processes did not all start listening")


class Profile:
    """py-spy on the server process for one phase; prints the top self-time functions."""

    # `--profile-threads`: every thread's samples, not only the GIL holder's. SQLite runs its
    # statements without the GIL, so only this shows the time spent inside them.
    threads = False

    def __init__(
        self, directory: str | None, pid: int, name: str, *, nonblocking: bool = False
    ) -> None:
        self.out = Path(directory) / f"{name}.txt" if directory else None
        self.proc: subprocess.Popen[bytes] | None = None
        if self.out:
            cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid)]
            cmd += ["--subprocesses", "--nonblocking"]  # without slowing the target
            cmd += [] if Profile.threads else ["--gil"]  # the Python CPU only
            cmd += ["-r", "250", "-f", "raw", "-o", str(self.out)]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)

    def finish(self, top: int = 14) -> None:
        if not self.proc or not self.out:
            return
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        own: collections.Counter[str] = collections.Counter()
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            n = int(count)
            total += n
            own[_short(frames[-1])] += n
        print(f"    profile {self.out.name}: {total} samples; self time of the top functions:")
        for name, n in own.most_common(top):
            print(f"      {100 * n / total:5.1f} %  {name}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" → "function (module.py)"
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.split(':')[0]).name})" if where else name


async def wait_completed(ch: Chronos, name: str, n: int, seconds: float) -> None:
    with trio.fail_after(seconds):
        while ch.completed(name) < n:  # noqa: ASYNC110 (another process's database)
            await trio.sleep(0.2)


async def burst(ch: Chronos, jobs: int, concurrency: int, protocol: str) -> tuple[float, str]:
    name = f"burst-{concurrency}-{protocol}-{int(now_ms())}"
    lead_s = max(5.0, jobs / 150)
    due = now_ms() + lead_s * 1000
    body: dict[str, object] = {"name": name, "handler": "noop", "scheduled_for": iso(due)}
    worker = ch.worker(concurrency, protocol)
    try:
        took = await ch.create([body] * jobs)
        late_note = "" if now_ms() < due else "  (CREATING RAN PAST THE DUE INSTANT)"
        profile = Profile(ch.args.profile, ch.proc.pid, f"burst-{protocol}-c{concurrency}")
        wprofile = Profile(
            ch.args.profile_worker,
            worker.pid,
            f"worker-burst-{protocol}-c{concurrency}",
            nonblocking=True,
        )
        await trio.sleep(max(0.0, (due - now_ms()) / 1000 - 0.05))  # CPU from the due instant
        cpu0, wcpu0, calls0 = ch.cpu(), cpu_seconds(worker.pid), ch.store_calls()
        db0, (busy0, all0) = named_cpu_seconds("postgres"), machine_busy_seconds()
        await wait_completed(ch, name, jobs, 600)
        cpu = [after - before for after, before in zip(ch.cpu(), cpu0, strict=True)]
        wcpu = cpu_seconds(worker.pid) - wcpu0
        db = named_cpu_seconds("postgres") - db0
        busy1, all1 = machine_busy_seconds()
        busy = (busy1 - busy0) / max(all1 - all0, 1e-9)
        calls = ch.store_calls()
        calls.subtract(calls0)
        profile.finish()
        wprofile.finish()
    finally:
        stop(worker)
    seconds = (ch.last_finish(name) - due) / 1000
    calls_note = ", ".join(f"{op} {n}" for op, n in calls.most_common() if n > 0)
    return jobs / seconds, (
        f"{jobs / seconds:9.1f} jobs/s  ({jobs} in {seconds:.2f} s; server CPU {cpu_text(cpu)};"
        f" worker CPU {wcpu:.2f} s; PostgreSQL CPU {db:.2f} s; machine busy {100 * busy:.0f} %;"
        f" created in {took:.1f} s){late_note}"
        + (f"\n           store calls: {calls_note}" if calls_note else "")
    )


def cpu_text(cpu: list[float]) -> str:
    """Total CPU seconds, and each process's share when there are several."""
    shares = " + ".join(f"{c:.2f}" for c in cpu)
    return f"{sum(cpu):.2f} s" + (f" = {shares}" if len(cpu) > 1 else "")


async def lateness(
    ch: Chronos, rate: float, seconds: float, protocol: str
) -> tuple[list[float], str]:
    name = f"late-{rate:g}-{protocol}-{int(now_ms())}"
    n = int(rate * seconds)
    start = now_ms() + max(5000.0, n / 0.15)
    bodies: list[dict[str, object]] = [
        {"name": name, "handler": "stamp", "scheduled_for": iso(start + i * 1000 / rate)}
        for i in range(n)
    ]
    with tempfile.NamedTemporaryFile("r", suffix=".stamps") as stamps:
        worker = ch.worker(8, protocol, Path(stamps.name))
        try:
            await ch.create(bodies)
            note = "" if now_ms() < start else "  (CREATING RAN PAST THE FIRST DUE INSTANT)"
            profile = Profile(ch.args.profile, ch.proc.pid, f"lateness-{protocol}-{rate:g}")
            await wait_completed(ch, name, n, seconds + 120)
            profile.finish()
        finally:
            stop(worker)
        late = [float(x) for x in stamps.read().split()]
    return late, note


async def create_phase(ch: Chronos, n: int) -> list[str]:
    body: dict[str, object] = {
        "name": "create",
        "handler": "nobody",
        "delay": {"value": 1, "unit": "day"},
    }
    lines = []
    profile = Profile(ch.args.profile, ch.proc.pid, "create-single")
    cpu0 = ch.cpu()
    client0 = time.process_time()
    took = await ch.create([body] * n)
    client = time.process_time() - client0
    cpu = [after - before for after, before in zip(ch.cpu(), cpu0, strict=True)]
    profile.finish()
    lines.append(
        f"create     chronos  POST /v1/jobs, {CREATE_CLIENTS} clients  {n / took:9.1f} jobs/s"
        f"  (server CPU {cpu_text(cpu)}; the bench's own HTTP client used {client:.2f} s)"
    )
    profile = Profile(ch.args.profile, ch.proc.pid, "create-batch")
    batch = await ch.create_batch([body] * n, 1000)
    profile.finish()
    if batch is None:
        lines.append("create     chronos  POST /v1/jobs/batch: not available on this server")
    else:
        lines.append(
            f"create     chronos  POST /v1/jobs/batch, 1,000 per request  {n / batch:9.1f} jobs/s"
        )
    return lines


def fmt(late: list[float]) -> str:
    return f"p50 {pct(late, 50):6.1f} ms  p95 {pct(late, 95):6.1f} ms  p99 {pct(late, 99):6.1f} ms"


OTHER_WAITING = 20  # jobs created per other handler; no worker runs them: most wait for limits


async def limit_others(ch: Chronos, n: int) -> None:
    """`--other-limits N`: N other handlers get limits (`max_running` 5, 50/s) and 20 due jobs
    each that nobody runs, so every admission pass also has limited jobs to look at, while the
    phases measure the unlimited handlers as before."""
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=ch.base, headers=headers, timeout=60) as client:
        for i in range(n):
            handler = f"other-{i}"
            resp = await client.put(
                f"/v1/handlers/{handler}/limits", json={"max_running": 5, "max_per_second": 50}
            )
            assert resp.status_code == 200, resp.text
            jobs = [{"name": "other", "handler": handler} for _ in range(OTHER_WAITING)]
            resp = await client.post("/v1/jobs/batch", json={"jobs": jobs})
            assert resp.status_code == 200, resp.text


async def run(args: argparse.Namespace, ch: Chronos) -> None:
    if args.other_limits:
        await limit_others(ch, args.other_limits)
    if "burst" in args.phases:
        # A fresh server's first burst paid for its warm-up (seen: whichever protocol ran first
        # lost ~15 % to the other): one small burst per protocol first, printed apart.
        for protocol in args.protocols if args.warmup else []:
            rate, _ = await burst(ch, args.warmup, max(args.concurrency), protocol)
            print(f"warm-up    chronos/{protocol:<6s} {args.warmup} jobs: {rate:9.1f} jobs/s")
        for c in args.concurrency:
            rates: dict[str, list[float]] = collections.defaultdict(list)
            for run_no in range(args.repeat):
                # `--repeat`: the protocols take turns going first.
                order = args.protocols if run_no % 2 == 0 else args.protocols[::-1]
                for protocol in order:
                    ch.vacuum()
                    rate, figure = await burst(ch, args.jobs, c, protocol)
                    rates[protocol].append(rate)
                    print(f"burst      chronos/{protocol:<6s} concurrency={c:<3d} {figure}")
                if args.peer:
                    ch.vacuum()
                    theirs = procrastinate(
                        "burn", "--conninfo", args.procrastinate_url,
                        "--jobs", str(args.jobs), "--concurrency", str(c),
                    )  # fmt: skip
                    rate = float(theirs["jobs_per_s"])  # type: ignore[arg-type]
                    rates["procrastinate"].append(rate)
                    print(f"burst      procrastinate concurrency={c:<3d} {rate:9.1f} jobs/s")
            if args.repeat > 1:
                for who, got in rates.items():
                    label = who if who == "procrastinate" else f"chronos/{who:<6s}"
                    each = ", ".join(f"{r:.1f}" for r in got)
                    print(
                        f"median     {label} concurrency={c:<3d} "
                        f"{statistics.median(got):9.1f} jobs/s  (of {len(got)} runs: {each})"
                    )
    if "lateness" in args.phases:
        for rate in args.rates:
            runs: dict[str, list[list[float]]] = collections.defaultdict(list)
            for run_no in range(args.repeat):
                order = args.protocols if run_no % 2 == 0 else args.protocols[::-1]
                for protocol in order:
                    ch.vacuum()
                    late, note = await lateness(ch, rate, args.seconds, protocol)
                    runs[f"chronos/{protocol:<6s}"].append(late)
                    print(
                        f"lateness   chronos/{protocol:<6s} {rate:g}/s n={len(late):<5d} "
                        f"due→handler  {fmt(late)}{note}"
                    )
                if args.peer:
                    theirs = procrastinate(
                        "lateness", "--conninfo", args.procrastinate_url,
                        "--rate", str(rate), "--seconds", str(args.seconds),
                    )  # fmt: skip
                    lat = [float(x) for x in theirs["latencies_ms"]]  # type: ignore[attr-defined]
                    runs["procrastinate"].append(lat)
                    print(
                        f"lateness   procrastinate {rate:g}/s n={len(lat):<5d} defer→start  "
                        f"{fmt(lat)}"
                    )
            if args.repeat > 1:
                for who, lates in runs.items():
                    medians = "  ".join(
                        f"p{q} {statistics.median(pct(late, q) for late in lates):6.1f} ms"
                        for q in (50, 95, 99)
                    )
                    p99s = ", ".join(f"{pct(late, 99):.1f}" for late in lates)
                    print(
                        f"median     {who:<14s} {rate:g}/s {medians}"
                        f"  (each a median of {len(lates)} runs' figures; p99s {p99s})"
                    )
    if "create" in args.phases:
        ch.vacuum()
        for line in await create_phase(ch, args.create):
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--rates", type=float, nargs="*", default=[100.0, 200.0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--repeat", type=int, default=1, help="bursts per figure (then their median too)"
    )
    parser.add_argument(
        "--warmup", type=int, default=500, help="jobs of a warm-up burst per protocol (0: none)"
    )
    parser.add_argument("--create", type=int, default=5000)
    parser.add_argument("--phases", nargs="*", default=["burst", "lateness", "create"])
    parser.add_argument(
        "--protocols", nargs="*", choices=["stream", "poll"], default=["stream", "poll"]
    )
    parser.add_argument("--no-peer", dest="peer", action="store_false")
    parser.add_argument("--profile", default=None)
    parser.add_argument("--profile-worker", default=None)
    parser.add_argument(
        "--profile-threads",
        action="store_true",
        help="profile every thread, not only the GIL holder (SQLite's statements run without it)",
    )
    parser.add_argument("--port", type=int, default=18944)
    parser.add_argument("--db-name", default="bench_hot_chronos", help="PostgreSQL database")
    parser.add_argument("--server-env", nargs="*", default=[], help="NAME=VALUE for the server")
    parser.add_argument(
        "--server-workers", type=int, default=1, help="server processes (`serve --workers`)"
    )
    parser.add_argument(
        "--other-limits",
        type=int,
        default=0,
        help="N other handlers with limits and jobs waiting for them (their cost to the others)",
    )
    args = parser.parse_args()
    Profile.threads = args.profile_threads
    args.server_env = dict(item.split("=", 1) for item in args.server_env)
    for directory in (args.profile, args.profile_worker):
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
    if args.store == "postgres":
        url = recreate(args.pg, args.db_name)
    else:
        url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
        args.peer = False
    if args.peer:
        args.procrastinate_url = recreate(args.pg, "bench_hot_procrastinate")
    else:
        args.procrastinate_url = url if args.store == "postgres" else ""
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; store {args.store}; burst jobs {args.jobs};"
        f" server processes {args.server_workers}; other handlers with limits"
        f" {args.other_limits}"
    )
    ch = Chronos(args, url)
    try:
        trio.run(run, args, ch)
    finally:
        ch.close()


if __name__ == "__main__":
    main()

"""Chaos, on both stores: SIGKILL the real server several times while a few hundred jobs and a
1-second schedule run, restart it on the same database and port each time, let everything
drain, then check what crash safety promises (README "The pipeline", spec §7.2):

* nothing lost: every one-off job whose creation was acknowledged (201, or 409 for its
  idempotency key on a retry) exists exactly once and is `completed`, and its handler ran
  (a line in the worker's runs file) or its push request arrived (the receiver's log);
* nothing stuck: no job left open, no execution left `running`;
* at-least-once, never "done twice": a job may run more than once (a lease lost in a crash is
  timed out and retried) but has exactly one `completed` execution, its executions carry the
  attempts 1..n, and every execution that is not `completed` is a `timeout`;
* the schedule spawned no slot twice (gaps while the server was down are allowed: G-27
  catches up the latest missed slot only) and every job it spawned is terminal.

Real processes and the real clock: `python -m chronos_server serve` (tests/e2e/test_crash.py),
the real `chronos-worker` running tests/e2e/chaos_worker.py, a push receiver in this process.
Jobs time out after 2 s and the server's lease grace is 5 s, so a lease lost in a crash is
retried some 8 s later; the sweeper runs every second. The kill times come from a seeded
random generator (`CHRONOS_CHAOS_SEED` picks another seed); one line of figures is printed.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.conftest import API_KEY, SIGNING_SECRET
from tests.e2e.test_crash import free_port, start
from tests.receiver import Receiver, start_receiver

SEED = int(os.environ.get("CHRONOS_CHAOS_SEED", "20261"))
KILLS = 5
UP_FRONT = 200  # one-off pull jobs created before the first kill, half due now
PUSH = 30  # one-off push jobs to the receiver, spread over the first seconds
PUSH_ANSWER = (200, 0.5)  # the receiver's answer and its delay: kills find requests in flight
TRICKLE_PAUSE = 0.04  # one more pull job every so often while the kills go on
JOB_LIMITS = {"timeout": 2, "max_retries": 10}  # short leases; retries never run out here
JOB = {"handler": "chaos", **JOB_LIMITS}
CREATORS = 8  # concurrent POSTs while creating the up-front jobs
OPEN = ("pending", "admitting", "queued", "ready", "running", "retrying")
DRAIN_SECONDS = 60  # normally ~10 s: the last lost lease expires 7 s after the last kill
SERVER_ENV = {  # push to the receiver on 127.0.0.1 over http, signed with the test's secret
    "CHRONOS_ALLOW_HTTP_TARGETS": "1",
    "CHRONOS_ALLOW_PRIVATE_TARGETS": "1",
    "CHRONOS_BOOTSTRAP_SIGNING_SECRET": SIGNING_SECRET,
}
Json = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]  # the worker imports tests.e2e.chaos_worker from here


@dataclass
class Server:
    """The `chronos serve` process under test, killed and restarted on one database and port."""

    database_url: str
    port: int
    proc: trio.Process | None = None
    kills: int = 0
    restarts: list[float] = field(default_factory=list)  # seconds from SIGKILL to ready

    async def start(self) -> None:
        self.proc = await start(self.database_url, self.port, env=SERVER_ENV)

    async def kill_and_restart(self) -> None:
        assert self.proc is not None
        killed = time.monotonic()
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self.kills += 1
        await self.start()
        self.restarts.append(time.monotonic() - killed)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            with trio.move_on_after(10):
                await self.proc.wait()
            self.proc.kill()
            await self.proc.wait()


@dataclass
class Workload:
    """What the test asked for: the idempotency keys of one-off jobs, by delivery."""

    pull: set[str] = field(default_factory=set)
    push: set[str] = field(default_factory=set)
    schedule_id: str = ""


async def create_job(client: httpx.AsyncClient, body: Json) -> None:
    """POST until acknowledged: a 409 for the idempotency key means an earlier try (whose answer
    a kill swallowed) created it."""
    while True:
        try:
            r = await client.post("/v1/jobs", json=body)
        except httpx.TransportError:
            await trio.sleep(0.05)
            continue
        if r.status_code == 409 and r.json()["code"] == "idempotency_key_conflict":
            return
        assert r.status_code == 201, r.text
        return


async def create_up_front(
    client: httpx.AsyncClient, receiver_url: str, rng: random.Random, work: Workload
) -> None:
    """The schedule, then UP_FRONT pull jobs and PUSH push jobs, CREATORS requests at a time."""
    r = await client.post(
        "/v1/schedules", json={"name": "tick", "interval": {"value": 1, "unit": "second"}, **JOB}
    )
    assert r.status_code == 201, r.text
    work.schedule_id = r.json()["data"]["id"]
    bodies = []
    for i in range(UP_FRONT):
        delay = {"delay": {"value": rng.randint(1, 10), "unit": "second"}} if i % 2 else {}
        bodies.append({"name": f"pull-{i}", **JOB, **delay})
    delivery = {"type": "push", "http": {"url": receiver_url + "/hook", "method": "POST"}}
    for i in range(PUSH):
        delay = {"delay": {"value": rng.randint(1, 8), "unit": "second"}} if i % 4 else {}
        bodies.append({"name": f"push-{i}", "delivery": delivery, **JOB_LIMITS, **delay})
    async with trio.open_nursery() as nursery:
        for k in range(CREATORS):
            nursery.start_soon(create_jobs, client, bodies[k::CREATORS], work)


async def create_jobs(client: httpx.AsyncClient, bodies: list[Json], work: Workload) -> None:
    for body in bodies:
        await create_job(client, {**body, "idempotency_key": body["name"]})
        (work.push if "delivery" in body else work.pull).add(body["name"])


async def trickle(client: httpx.AsyncClient, work: Workload, stop: trio.Event) -> None:
    """One more pull job every TRICKLE_PAUSE seconds, through the kills, until `stop`; each
    creation is retried until acknowledged, so the keys recorded are exactly the jobs made."""
    while not stop.is_set():
        key = f"trickle-{len(work.pull)}"
        await create_job(client, {"name": key, "idempotency_key": key, **JOB})
        work.pull.add(key)
        await trio.sleep(TRICKLE_PAUSE)


async def kill_repeatedly(server: Server, rng: random.Random) -> None:
    for _ in range(KILLS):
        await trio.sleep(rng.uniform(0.3, 1.5))
        await server.kill_and_restart()


async def open_worker(base_url: str, runs: Path) -> trio.Process:
    """The real `chronos-worker` (the console script beside this Python) on chaos_worker.py."""
    script = Path(sys.executable).with_name("chronos-worker")
    cmd = [str(script), "--server", base_url, "--api-key", API_KEY, "--concurrency", "8"]
    cmd += ["--poll-wait", "1", "--log-level", "ERROR", "tests.e2e.chaos_worker:chronos"]
    return await trio.lowlevel.open_process(
        cmd, cwd=ROOT, env=dict(os.environ, CHAOS_RUNS_FILE=str(runs))
    )


async def stop_process(proc: trio.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        with trio.move_on_after(10):
            await proc.wait()
        proc.kill()
    await proc.wait()


async def count_open(client: httpx.AsyncClient) -> int:
    """Jobs in any open state, in ONE query: counted state by state, a job moving on between
    two queries (`retrying` → `admitting` just after `admitting` was counted) escapes them all."""
    r = await client.get("/v1/jobs", params={"status": ",".join(OPEN), "size": 1})
    total: int = r.json()["meta"]["paging"]["total"]
    return total


async def wait_drained(client: httpx.AsyncClient) -> bool:
    """Poll until no job is open; False if some still are at the deadline."""
    with trio.move_on_after(DRAIN_SECONDS):
        while True:
            if not await count_open(client):
                return True
            await trio.sleep(0.2)
    return False


async def fetch_all(client: httpx.AsyncClient, path: str) -> list[Json]:
    """Every item of a list endpoint, page by page (the lists do not change any more)."""
    items: list[Json] = []
    page = 1
    while True:
        body = (await client.get(path, params={"page": page, "size": 100})).json()
        items += body["data"]
        if page >= body["meta"]["paging"]["pages"]:
            break
        page += 1
    assert len({item["id"] for item in items}) == len(items) == body["meta"]["paging"]["total"]
    return items


def check_jobs(jobs: list[Json], by_job: dict[str, list[Json]], work: Workload) -> list[str]:
    """Nothing lost, nothing stuck, exactly one completion per job (see the module docstring)."""
    problems = []
    one_off = [j for j in jobs if j["schedule_id"] is None]
    keys = Counter(j["idempotency_key"] for j in one_off)
    problems += [f"one-off job {k} exists {n} times" for k, n in keys.items() if n > 1]
    problems += [
        f"job {k} was acknowledged but is lost" for k in (work.pull | work.push) - set(keys)
    ]
    problems += [f"job {k} was never asked for" for k in set(keys) - work.pull - work.push]
    orphans = set(by_job) - {j["id"] for j in jobs}
    problems += [f"executions {by_job[i]} belong to no listed job" for i in orphans]
    for job in jobs:
        allowed = ("completed",) if job["schedule_id"] is None else ("completed", "cancelled")
        if job["status"] not in allowed:
            history = [(e["attempt"], e["status"], e["started_at"]) for e in by_job[job["id"]]]
            problems.append(f"job ended {job['status']}: {job}, executions {history}")
        problems += check_executions(job, by_job.get(job["id"], []))
    return problems


def check_executions(job: Json, executions: list[Json]) -> list[str]:
    where = f"job {job['name']} {job['id']}"
    problems = []
    attempts = sorted(e["attempt"] for e in executions)
    if attempts != list(range(1, job["attempt_count"] + 1)):
        problems.append(f"{where}: attempt_count {job['attempt_count']}, attempts {attempts}")
    completed = [e["id"] for e in executions if e["status"] == "completed"]
    expected = [job["last_execution_id"]] if job["status"] == "completed" else []
    if completed != expected:
        problems.append(f"{where} ({job['status']}): completed executions {completed}")
    others = Counter(e["status"] for e in executions if e["status"] not in ("completed", "timeout"))
    if others:
        problems.append(f"{where}: executions {dict(others)}")
    return problems


def check_runs(
    jobs: list[Json], executions: list[Json], runs: list[list[str]], deliveries: list[Json]
) -> list[str]:
    """Every run the worker or the receiver saw belongs to a recorded execution (and none twice);
    every completed execution was really run (pull) or delivered (push)."""
    by_id = {e["id"]: e for e in executions}
    problems = []
    seen: Counter[str] = Counter()
    for job_id, execution_id, attempt in runs:
        seen[execution_id] += 1
        e = by_id.get(execution_id)
        if e is None or (e["job_id"], str(e["attempt"])) != (job_id, attempt):
            problems.append(f"worker ran execution {execution_id} (job {job_id}): {e}")
    for delivery in deliveries:
        seen[delivery["execution_id"]] += 1
        e = by_id.get(delivery["execution_id"])
        if e is None or e["job_id"] != delivery["job_id"] or not delivery["signed"]:
            problems.append(f"receiver got {delivery}, execution {e}")
    problems += [f"execution {i} ran {n} times" for i, n in seen.items() if n > 1]
    for job in jobs:
        if job["status"] == "completed" and job["last_execution_id"] not in seen:
            problems.append(f"job {job['name']} completed by {job['last_execution_id']}, never run")
    return problems


def ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1000)


def check_schedule(schedule: Json, jobs: list[Json]) -> list[str]:
    """Each slot spawned once, on the 1-second grid; missed slots may be skipped (G-27)."""
    spawned = [j for j in jobs if j["schedule_id"] == schedule["id"]]
    slots = Counter(ms(j["scheduled_for"]) for j in spawned)
    problems = [f"slot {slot} spawned {n} times" for slot, n in slots.items() if n > 1]
    first = min(slots, default=0)
    problems += [f"slot {slot} is off the grid" for slot in slots if (slot - first) % 1000]
    if schedule["run_count"] != len(spawned):
        problems.append(f"run_count {schedule['run_count']}, {len(spawned)} jobs spawned")
    if len(slots) < 3:
        problems.append(f"only {len(slots)} slots spawned: the check proves nothing")
    return problems


def read_runs(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def delivered(receiver: Receiver) -> list[Json]:
    return [
        {
            "execution_id": d.headers.get("x-chronos-delivery-id"),
            "job_id": d.json.get("job_id"),
            "signed": d.chronos_ok,
        }
        for d in receiver.deliveries
    ]


def client_for(server: Server) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.port}", headers=headers, timeout=10
    )


async def run_chaos(server: Server, receiver: Receiver, work: Workload) -> None:
    """Create the workload, then kill the server KILLS times while more jobs trickle in."""
    rng = random.Random(SEED)
    async with client_for(server) as client:
        await create_up_front(client, receiver.url, rng, work)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle, client, work, stop)
            await kill_repeatedly(server, rng)
            stop.set()


async def collect(server: Server, schedule_id: str) -> tuple[list[Json], list[Json], Json]:
    """Every job, every execution and the schedule, through the API."""
    async with client_for(server) as client:
        jobs = await fetch_all(client, "/v1/jobs")
        executions = await fetch_all(client, "/v1/executions")
        schedule: Json = (await client.get(f"/v1/schedules/{schedule_id}")).json()["data"]
    return jobs, executions, schedule


async def test_sigkill_repeatedly_loses_nothing_and_spawns_each_slot_once(
    database_url: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    server = Server(database_url, free_port())
    runs = tmp_path / "runs.txt"
    runs.touch()
    work = Workload()
    worker: trio.Process | None = None
    await server.start()
    try:
        async with trio.open_nursery() as nursery:
            receiver = await start_receiver(
                nursery, Receiver(SIGNING_SECRET, after_script=PUSH_ANSWER)
            )
            worker = await open_worker(f"http://127.0.0.1:{server.port}", runs)
            await run_chaos(server, receiver, work)
            # A fresh client: none of its connections went to a killed server.
            async with client_for(server) as client:
                archived = await client.post(f"/v1/schedules/{work.schedule_id}/archive")
                assert archived.status_code == 200, archived.text
                drain_began = time.monotonic()
                drained_ok = await wait_drained(client)
                drained = time.monotonic() - drain_began
            await stop_process(worker)
            nursery.cancel_scope.cancel()  # the receiver
        jobs, executions, schedule = await collect(server, work.schedule_id)
    finally:
        if worker is not None:
            await stop_process(worker)
        await server.stop()

    by_job: dict[str, list[Json]] = defaultdict(list)
    for e in executions:
        by_job[e["job_id"]].append(e)
    pull_runs, deliveries = read_runs(runs), delivered(receiver)
    spawned = sum(1 for j in jobs if j["schedule_id"] is not None)
    print(
        f"chaos {database_url.split(':')[0]}: seed {SEED}, {server.kills} kills, {len(jobs)} jobs "
        f"({len(work.pull)} pull, {len(work.push)} push, {spawned} spawned), "
        f"{len(executions)} executions ({len(executions) - len(by_job)} reruns, "
        f"{sum(e['status'] == 'timeout' for e in executions)} timeouts), {len(pull_runs)} "
        f"handler runs, {len(deliveries)} push deliveries; restarts took "
        f"{min(server.restarts):.1f}-{max(server.restarts):.1f} s, drained in {drained:.1f} s, "
        f"{time.monotonic() - began:.1f} s in all"
    )
    still_open = Counter(j["status"] for j in jobs if j["status"] in OPEN)
    assert drained_ok, f"still open after {DRAIN_SECONDS} s: {dict(still_open)}"
    assert worker.returncode == 0, "the worker did not survive the kills"
    problems = check_jobs(jobs, by_job, work) + check_runs(jobs, executions, pull_runs, deliveries)
    problems += check_schedule(schedule, jobs)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])

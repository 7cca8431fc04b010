"""`chronos serve --workers 2`: a supervisor and two server processes sharing one port.

Real processes on PostgreSQL. Which process holds which connection is read from Linux `/proc`
(the processes' socket descriptors matched to `/proc/net/tcp`), so no test depends on the
kernel's choice of process for one given connection: a test opens enough connections that
both processes hold some (24 connections over two sockets all landing on one: odds 2^-23), then
talks to each process through a connection it knows that process holds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import httpx
import pytest
import trio

from tests import pg
from tests.conftest import API_KEY
from tests.e2e.test_crash import free_port, start

WORKERS = ["--workers", "2"]
LISTEN, ESTABLISHED = "0A", "01"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def log(tmp_path: Path) -> Iterator[TextIO]:
    """A file for the processes' output; stdout and stderr land in it in the order written."""
    with open(tmp_path / "log", "w") as file:
        yield file


def text(log: TextIO) -> str:
    return Path(log.name).read_text()


def children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except OSError:  # exited meanwhile
                continue
            if int(ppid) == pid and state != "Z":
                found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def tcp_sockets(pid: int, port: int) -> list[tuple[str, int]]:
    """(state, remote port) of each TCP socket process `pid` holds on local port `port`."""
    inodes = set()
    for fd in (Path("/proc") / str(pid) / "fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if inode in inodes and int(local.rsplit(":", 1)[1], 16) == port:
                found.append((state, int(remote.rsplit(":", 1)[1], 16)))
    return found


async def wait_both_listening(proc: trio.Process, port: int) -> list[int]:
    """The two server processes under the supervisor `proc`, once each listens on `port`."""

    def listening() -> bool:
        kids = children(proc.pid)
        return len(kids) == 2 and all((LISTEN, 0) in tcp_sockets(k, port) for k in kids)

    await pg.eventually(listening, 20)
    return children(proc.pid)


@asynccontextmanager
async def one_client_per_process(
    port: int, processes: list[int], connections: int = 24
) -> AsyncIterator[dict[int, httpx.AsyncClient]]:
    """A client whose one keep-alive connection is held by each process in `processes`."""
    limits = httpx.Limits(max_connections=1)
    base = f"http://127.0.0.1:{port}"
    clients = [
        httpx.AsyncClient(base_url=base, headers=HEADERS, limits=limits, timeout=30)
        for _ in range(connections)
    ]
    try:
        owners: dict[int, httpx.AsyncClient] = {}
        for client in clients:
            r = await client.get("/healthz")
            local_port = r.extensions["network_stream"].get_extra_info("client_addr")[1]
            for pid in processes:
                if (ESTABLISHED, local_port) in tcp_sockets(pid, port):
                    owners[pid] = client
        assert sorted(owners) == sorted(processes), "each process accepted a connection"
        yield owners
    finally:
        for client in clients:
            await client.aclose()


async def exited(proc: trio.Process) -> int:
    with trio.fail_after(20):
        return await proc.wait()


@asynccontextmanager
async def supervisor(
    port: int, database_url: str | None = None, *, args: list[str] | None = None, **options: Any
) -> AsyncIterator[trio.Process]:
    """`chronos serve --workers 2` (a fresh schema unless `database_url`), once ready; killed
    at the end if still running (its processes then stop on their own)."""
    db = database_url or await pg.new_schema_url_async()
    proc = await start(db, port, args=[*WORKERS, *(args or [])], **options)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.usefixtures("postgres_url")
async def test_two_processes_share_the_port_and_the_jobs() -> None:
    port = free_port()
    async with supervisor(port) as proc:
        first, second = await wait_both_listening(proc, port)
        async with one_client_per_process(port, [first, second]) as via:
            claimed: list[dict[str, str]] = []

            async def claim() -> None:  # parked on the second process, woken from the first
                body = {"handlers": ["w"], "wait_time_seconds": 10}
                while not claimed:
                    r = await via[second].post("/v1/worker/jobs/claim", json=body)
                    assert r.status_code == 200, r.text
                    if r.json()["data"]:
                        claimed.append(r.json()["data"])

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(claim)
                    created = await via[first].post("/v1/jobs", json={"name": "x", "handler": "w"})
                    assert created.status_code == 201, created.text
            job_id = created.json()["data"]["id"]
            assert claimed[0]["job_id"] == job_id
            report = f"/v1/worker/executions/{claimed[0]['execution_id']}/result"
            r = await via[first].post(report, json={"status": "completed"})
            assert r.status_code == 200, r.text
            job = await via[second].get(f"/v1/jobs/{job_id}")
            assert job.json()["data"]["status"] == "completed"


@pytest.mark.usefixtures("postgres_url")
async def test_one_sigterm_to_the_supervisor_stops_both_gracefully(log: TextIO) -> None:
    port = free_port()
    async with supervisor(port, args=["--log-level", "INFO"], stderr=log) as proc:
        kids = await wait_both_listening(proc, port)
        proc.send_signal(signal.SIGTERM)
        assert await exited(proc) == 0
    assert not any(alive(k) for k in kids)
    output = text(log)
    assert "stopping 2 server processes" in output
    assert output.count("stopping: no new claims") == 2  # each stopped gracefully, itself
    assert "second signal" not in output


@pytest.mark.usefixtures("postgres_url")
async def test_a_second_signal_stops_at_once(log: TextIO) -> None:
    port = free_port()
    db = await pg.new_schema_url_async()
    async with supervisor(port, db, stderr=log) as proc:
        kids = await wait_both_listening(proc, port)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=HEADERS, timeout=30
        ) as client:
            body = {"name": "held", "handler": "h", "timeout": 3600}
            assert (await client.post("/v1/jobs", json=body)).status_code == 201
            with trio.fail_after(20):
                data = None
                while not data:
                    claim = {"handlers": ["h"], "wait_time_seconds": 5}
                    data = (await client.post("/v1/worker/jobs/claim", json=claim)).json()["data"]
            proc.send_signal(signal.SIGTERM)
            # The process that handed out the lease waits for its report (up to the 10 s
            # grace); the other one, with nothing in flight, is gone at once.
            await pg.eventually(lambda: len(children(proc.pid)) == 1, 20)
            assert (await client.get("/readyz")).status_code == 503  # the one left is stopping
        proc.send_signal(signal.SIGTERM)
        assert await exited(proc) == 0
    assert not any(alive(k) for k in kids)
    assert "second signal: stopping at once" in text(log)
    with pg.connect(db) as conn:
        rows = conn.execute("SELECT status FROM executions").fetchall()
    assert rows == [("running",)]  # never reported: the process did not wait for it


@pytest.mark.usefixtures("postgres_url")
async def test_a_process_that_dies_stops_the_others(log: TextIO) -> None:
    port = free_port()
    async with supervisor(port, stderr=log) as proc:
        victim, other = await wait_both_listening(proc, port)
        os.kill(victim, signal.SIGKILL)
        assert await exited(proc) == 1
    assert not alive(other)
    expected = f"(pid {victim}) exited unexpectedly (killed by SIGKILL); stopping the others"
    assert expected in text(log)


@pytest.mark.usefixtures("postgres_url")
async def test_the_processes_stop_when_the_supervisor_is_killed(log: TextIO) -> None:
    port = free_port()
    async with supervisor(port, stderr=log) as proc:
        kids = await wait_both_listening(proc, port)
        proc.kill()
        await proc.wait()
    await pg.eventually(lambda: not any(alive(k) for k in kids), 20)
    assert text(log).count("the supervising process is gone") == 2


@pytest.mark.usefixtures("postgres_url")
async def test_a_first_start_creates_and_prints_one_api_key(log: TextIO) -> None:
    port, db = free_port(), await pg.new_schema_url_async()
    env = {"CHRONOS_BOOTSTRAP_API_KEY": ""}
    args = ["--log-level", "INFO"]
    async with supervisor(port, db, env=env, args=args, stdout=log, stderr=log) as proc:
        await wait_both_listening(proc, port)
        proc.terminate()
        assert await exited(proc) == 0
    output = text(log)
    assert output.count("API key (shown once)") == 1
    # Created before either server process started (each logs its open-files limit first),
    # so two of them racing on the empty database cannot each create one.
    assert output.index("API key (shown once)") < output.index("open-files limit")
    with pg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM api_keys").fetchall() == [(1,)]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_sqlite_refuses_several_processes(tmp_path: Path, how: str) -> None:
    cmd = [sys.executable, "-m", "chronos_server", "serve", "--port", "0"]
    cmd += ["--database-url", f"sqlite:///{tmp_path / 'chronos.db'}"]
    env = dict(os.environ)
    if how == "flag":
        cmd += WORKERS
    else:
        env["CHRONOS_WORKERS"] = "2"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == (
        "chronos: 2 server processes (--workers / CHRONOS_WORKERS) need PostgreSQL:"
        " SQLite is served by one process; use --workers 1\n"
    )
    assert not (tmp_path / "chronos.db").exists()

"""SIGKILL of the server mid-run, restart on the same database: every job still completes.

Real processes, real clock: the server runs as `python -m chronos_server serve`; four worker loops
keep claiming and reporting through the kill (they retry on connection errors like the SDK does).
Jobs claimed when the server died are retried after their lease (1 s timeout + 5 s grace) expires.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

import httpx
import trio

from tests.conftest import API_KEY

JOBS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def start(
    database_url: str,
    port: int,
    *,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
    **options: Any,
) -> trio.Process:
    """`chronos serve` in its own process, once it answers `/readyz`; `env` adds variables,
    `args` command-line arguments, `options` go to `trio.lowlevel.open_process`."""
    env = dict(os.environ, CHRONOS_BOOTSTRAP_API_KEY=API_KEY, CHRONOS_RATE_LIMIT="off") | (
        env or {}
    )
    cmd = [sys.executable, "-m", "chronos_server", "serve", "--port", str(port)]
    cmd += ["--database-url", database_url, "--log-level", "WARNING", *args]
    proc = await trio.lowlevel.open_process(cmd, env=env, **options)
    try:
        async with httpx.AsyncClient() as client:
            with trio.fail_after(20):
                while True:
                    try:
                        r = await client.get(f"http://127.0.0.1:{port}/readyz")
                        if r.status_code == 200:
                            return proc
                    except httpx.TransportError:
                        pass
                    assert proc.returncode is None, "server exited during start-up"
                    await trio.sleep(0.05)
    except BaseException:
        proc.kill()  # never leave a server that did not come up running behind the test
        raise


async def worker(client: httpx.AsyncClient, done: list[str], third: trio.Event) -> None:
    while True:
        try:
            r = await client.post(
                "/v1/worker/jobs/claim", json={"handlers": ["crash"], "wait_time_seconds": 1}
            )
            data = r.json()["data"] if r.status_code == 200 else None
            if data is None:
                continue
            report = await client.post(
                f"/v1/worker/executions/{data['execution_id']}/result",
                json={"status": "completed"},
            )
            if report.status_code == 200:
                done.append(data["job_id"])
                if len(done) >= JOBS // 3:
                    third.set()
        except httpx.TransportError:
            await trio.sleep(0.05)


async def test_sigkill_mid_run_then_restart_completes_every_job(database_url: str) -> None:
    db, port = database_url, free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    proc = await start(db, port)
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
            for i in range(JOBS):
                body = {"name": f"c{i}", "handler": "crash", "timeout": 1, "max_retries": 10}
                assert (await client.post("/v1/jobs", json=body)).status_code == 201
            done: list[str] = []
            third = trio.Event()
            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(worker, client, done, third)
                with trio.fail_after(20):
                    await third.wait()
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                proc = await start(db, port)
                with trio.fail_after(60):
                    while True:
                        r = await client.get("/v1/jobs", params={"status": "completed", "size": 1})
                        if r.json()["meta"]["paging"]["total"] == JOBS:
                            break
                        await trio.sleep(0.2)
                nursery.cancel_scope.cancel()
            jobs = (await client.get("/v1/jobs", params={"size": 100})).json()
            assert jobs["meta"]["paging"]["total"] == JOBS
            assert {j["status"] for j in jobs["data"]} == {"completed"}
            running = await client.get("/v1/executions", params={"status": "running"})
            assert running.json()["meta"]["paging"]["total"] == 0
            # A report the server committed just before SIGKILL may never have been answered,
            # so the workers may have seen fewer than JOBS successes, never more.
            assert set(done) <= {j["id"] for j in jobs["data"]}
    finally:
        proc.terminate()
        with trio.fail_after(20):
            await proc.wait()

"""SIGTERM while handlers run (issue 10, defect 2): the real server process keeps taking result
reports through its grace period, so every handler that finishes meanwhile is recorded
`completed` and no job runs twice; the server exits 0 as soon as the last report is in.

Before, the listener closed at SIGTERM: the SDK's reports were refused, the executions timed out
after the restart and their jobs ran again."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import trio

from chronos_worker import Chronos, ChronosContext
from tests.api.helpers import ms
from tests.conftest import API_KEY
from tests.e2e.test_crash import free_port, start

JOBS = 8


async def test_sigterm_lets_running_handlers_report(database_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = await start(database_url, port)
    runs: list[str] = []
    all_running = trio.Event()
    chronos = Chronos(api_key=API_KEY, base_url=base, concurrency=JOBS, poll_wait_time_seconds=2)

    @chronos.worker.handle("slow")
    async def slow(ctx: ChronosContext) -> None:
        runs.append(ctx.job_id)
        if len(runs) == JOBS:
            all_running.set()
        await trio.sleep(1.5)

    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
        ids = []
        for i in range(JOBS):
            body = {"name": f"s{i}", "handler": "slow", "timeout": 30}
            ids.append((await client.post("/v1/jobs", json=body)).json()["data"]["id"])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            with trio.fail_after(20):
                await all_running.wait()
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(15):  # handlers end 1.5 s in; the grace is 10 s
                assert await proc.wait() == 0
            exited_at = time.time()
            proc = await start(database_url, port)
            try:
                with trio.fail_after(20):
                    jobs = [await job(client, i) for i in ids]
                    assert {j["status"] for j in jobs} == {"completed"}
                executions = (await client.get("/v1/executions", params={"size": 100})).json()
                assert len(executions["data"]) == JOBS
                # Recorded by the stopping server, not by the next one.
                assert all(ms(e["finished_at"]) < exited_at * 1000 for e in executions["data"])
            finally:
                await chronos.worker.stop()
                proc.kill()
                await proc.wait()
    assert sorted(runs) == sorted(ids)  # each ran once


async def job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()["data"]
    return found

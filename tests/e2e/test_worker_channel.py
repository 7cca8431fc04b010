"""The worker SDK over the worker channel (`GET /v1/worker/stream`) against the real server, on
both stores: jobs flow and `concurrency` is never exceeded, the fallback to the long-poll
against a server whose channel is switched off, a server restarted (SIGKILL) mid-run with
nothing lost, and a worker stopped with jobs in flight (`drain`): each recorded completed, none
run twice, none left claimed."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import trio

from chronos_server.pipeline.services import LoopSettings
from chronos_worker import Chronos, ChronosContext
from tests.conftest import API_KEY, RunningServer, make_settings, open_running_server
from tests.e2e.test_crash import free_port, start
from tests.pg import eventually
from tests.worker.fakes import RecordingLogger

GUARD = 30  # seconds: a stall guard, not a measurement


async def create(client: httpx.AsyncClient, n: int, handler: str, **extra: Any) -> list[str]:
    body = {"name": "j", "handler": handler, **extra}
    r = await client.post("/v1/jobs/batch", json={"jobs": [body] * n})
    assert r.status_code == 200, r.text
    return [item["data"]["id"] for item in r.json()["data"]]


async def statuses(client: httpx.AsyncClient) -> Counter[str]:
    r = await client.get("/v1/jobs", params={"size": 100})
    return Counter(job["status"] for job in r.json()["data"])


async def executions(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get("/v1/executions", params={"size": 100})
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def test_jobs_flow_over_the_channel_within_the_concurrency(server: RunningServer) -> None:
    log = RecordingLogger()
    chronos = Chronos(api_key=API_KEY, base_url=server.url, concurrency=4, logger=log)
    running, peak, seen = 0, 0, Counter[str]()

    @chronos.worker.handle("h")
    async def handle(ctx: ChronosContext) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        seen[ctx.job_id] += 1
        await trio.sleep(0.01)
        running -= 1
        return int(ctx.payload["i"])

    body = {"name": "j", "handler": "h"}
    bodies = [body | {"payload": {"i": i}} for i in range(40)]
    r = await server.client.post("/v1/jobs/batch", json={"jobs": bodies})
    ids = [item["data"]["id"] for item in r.json()["data"]]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chronos.worker.start)

        async def listed() -> bool:
            channels = (await server.client.get("/v1/workers")).json()["data"]["channels"]
            return len(channels) == 1

        await eventually(listed, GUARD)

        async def all_done() -> bool:
            return (await statuses(server.client))["completed"] == 40

        await eventually(all_done, GUARD)
        await chronos.worker.stop()
    assert 1 < peak <= 4
    assert sorted(seen) == sorted(ids) and set(seen.values()) == {1}
    results = {e["job_id"]: e["result"] for e in await executions(server.client)}
    assert len(results) == 40 and set(results.values()) == set(range(40))
    assert "Worker channel open" in log.messages("info")
    assert not log.messages("error")


async def test_falls_back_to_the_long_poll_when_the_channel_is_off(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=database_url, worker_stream=False)
    async with open_running_server(settings, LoopSettings(lease_grace_ms=0)) as server:
        log = RecordingLogger()
        chronos = Chronos(
            api_key=API_KEY,
            base_url=server.url,
            concurrency=2,
            logger=log,
            poll_wait_time_seconds=1,
        )
        done: list[str] = []

        @chronos.worker.handle("h")
        async def handle(ctx: ChronosContext) -> None:
            done.append(ctx.job_id)

        ids = await create(server.client, 5, "h")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            await eventually(lambda: len(done) == 5, GUARD)

            async def recorded() -> bool:
                return (await statuses(server.client))["completed"] == 5

            await eventually(recorded, GUARD)
            await chronos.worker.stop()
        assert sorted(done) == sorted(ids)
        fallbacks = [m for m in log.messages("info") if "offers no worker channel" in m]
        assert len(fallbacks) == 1


async def test_a_server_killed_and_restarted_mid_run_loses_nothing(database_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = await start(database_url, port)
    jobs = 24
    runs: Counter[str] = Counter()
    third = trio.Event()
    chronos = Chronos(api_key=API_KEY, base_url=base, concurrency=4, retry_delay_ms=100)

    @chronos.worker.handle("r")
    async def handle(ctx: ChronosContext) -> None:
        runs[ctx.job_id] += 1
        if sum(runs.values()) >= jobs // 3:
            third.set()
        await trio.sleep(0.05)

    headers = {"Authorization": f"Bearer {API_KEY}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
            ids = await create(client, jobs, "r", timeout=1, max_retries=10)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(chronos.worker.start)
                with trio.fail_after(GUARD):
                    await third.wait()
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                proc = await start(database_url, port)

                async def all_done() -> bool:
                    return (await statuses(client))["completed"] == jobs

                await eventually(all_done, 60)
                with trio.fail_after(GUARD):
                    await chronos.worker.stop()
            assert set(runs) == set(ids)
            running = await client.get("/v1/executions", params={"status": "running"})
            assert running.json()["meta"]["paging"]["total"] == 0
    finally:
        proc.kill()
        await proc.wait()


async def test_a_stopped_worker_drains_its_jobs_in_flight(server: RunningServer) -> None:
    chronos = Chronos(api_key=API_KEY, base_url=server.url, concurrency=4)
    runs: Counter[str] = Counter()
    all_running = trio.Event()

    @chronos.worker.handle("slow")
    async def slow(ctx: ChronosContext) -> None:
        runs[ctx.job_id] += 1
        if len(runs) == 4:
            all_running.set()
        await trio.sleep(0.3)

    ids = await create(server.client, 10, "slow", timeout=30)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chronos.worker.start)
        with trio.fail_after(GUARD):
            await all_running.wait()
            await chronos.worker.stop()  # returns once the four are reported and drained
    assert len(runs) == 4 and set(runs.values()) == {1}
    counts = await statuses(server.client)
    # The four in flight are completed; the rest were never sent: still ready, untouched.
    assert counts == Counter({"completed": 4, "ready": 6})
    finished = await executions(server.client)
    assert {e["job_id"] for e in finished} == set(runs) <= set(ids)
    assert {e["status"] for e in finished} == {"completed"}

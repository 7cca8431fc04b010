"""Per-handler limits end to end: real `chronos serve` processes, real workers over HTTP.

- `max_running` 2 with 50 due jobs: sampled while they drain, never a third `ready` or `running`
  (one server on SQLite; two replicas on PostgreSQL, workers and the limit split between them);
- `max_per_second`: the starts the server recorded keep the rate within 10 %.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests import pg
from tests.conftest import API_KEY
from tests.e2e.test_crash import free_port, start

HANDLER = "limited"
LIMITS = f"/v1/handlers/{HANDLER}/limits"


@asynccontextmanager
async def servers(url: str, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    ports = [free_port() for _ in range(count)]
    procs: list[trio.Process] = []
    async with trio.open_nursery() as starting:  # together: migrations under the advisory lock

        async def launch(port: int) -> None:
            procs.append(await start(url, port))

        for port in ports:
            starting.start_soon(launch, port)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    clients = [
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", headers=headers, timeout=30)
        for p in ports
    ]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            for proc in procs:
                await proc.wait()


async def work(client: httpx.AsyncClient, hold_seconds: float) -> None:
    """A worker: claim, hold the job a moment (so slots stay taken), report completed."""
    body = {"handlers": [HANDLER], "wait_time_seconds": 1}
    while True:
        r = await client.post("/v1/worker/jobs/claim", json=body)
        assert r.status_code == 200, r.text
        job = r.json()["data"]
        if job is None:
            continue
        await trio.sleep(hold_seconds)
        done = await client.post(
            f"/v1/worker/executions/{job['execution_id']}/result", json={"status": "completed"}
        )
        assert done.status_code == 200, done.text


async def create_due(client: httpx.AsyncClient, count: int) -> None:
    jobs = [{"name": f"j{i}", "handler": HANDLER} for i in range(count)]
    r = await client.post("/v1/jobs/batch", json={"jobs": jobs})
    assert r.status_code == 200 and all(item["success"] for item in r.json()["data"]), r.text


async def handler_row(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/v1/stats", params={"window_minutes": 5})
    assert r.status_code == 200, r.text
    [row] = [h for h in r.json()["data"]["handlers"] if h["handler"] == HANDLER]
    return dict(row)


async def database(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if store == "sqlite":
        return f"sqlite:///{tmp_path / 'c.db'}"
    request.getfixturevalue("postgres_url")  # skip (or fail under CI) with the reason
    return await pg.new_schema_url_async()


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_max_running_two_never_shows_a_third_job_ready_or_running(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """On PostgreSQL two replicas admit, each with its own workers: the limit holds across them.
    The limit is set through one replica and jobs are created through the other."""
    count = 1 if store == "sqlite" else 2
    async with servers(await database(store, tmp_path, request), count) as clients:
        r = await clients[0].put(LIMITS, json={"max_running": 2})
        assert r.status_code == 200, r.text
        peak, samples = 0, 0
        async with trio.open_nursery() as workers:
            for i in range(3 * count):
                workers.start_soon(work, clients[i % count], 0.02)
            await create_due(clients[-1], 50)
            with trio.fail_after(60):
                while True:
                    row = await handler_row(clients[samples % count])
                    in_flight = row["counts"]["ready"] + row["counts"]["running"]
                    assert in_flight <= 2, row
                    peak, samples = max(peak, in_flight), samples + 1
                    if row["counts"]["completed"] == 50:
                        break
            workers.cancel_scope.cancel()
        assert peak == 2  # the limit was reached (the test could have seen a third)
        assert samples >= 10
        assert row["counts"]["queued"] == 0 and row["limited"] == 0


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_max_per_second_holds_the_start_rate_within_ten_percent(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rate, jobs = 20.0, 60  # three seconds of starts
    async with servers(await database(store, tmp_path, request), 1) as [client]:
        r = await client.put(LIMITS, json={"max_per_second": rate})
        assert r.status_code == 200, r.text
        async with trio.open_nursery() as workers:
            for _ in range(4):
                workers.start_soon(work, client, 0.0)
            await create_due(client, jobs)

            async def all_done() -> bool:
                return bool((await handler_row(client))["counts"]["completed"] == jobs)

            await pg.eventually(all_done, 60)
            workers.cancel_scope.cancel()
        r = await client.get("/v1/executions", params={"size": 100})
        starts = sorted(
            datetime.fromisoformat(e["started_at"]).timestamp() for e in r.json()["data"]
        )
    assert len(starts) == jobs
    burst = 2  # the full bucket at the start: a tenth of a second's worth
    seen = (jobs - burst) / (starts[-1] - starts[0])
    assert seen <= rate * 1.1, f"{seen:.1f} starts/s"

"""The real worker SDK against the real server: success, failure → retry → failed, history."""

from __future__ import annotations

from typing import Any

import trio

from chronos_worker import Chronos, ChronosContext
from tests.conftest import API_KEY, RunningServer


async def wait_status(server: RunningServer, job_id: str, status: str) -> dict[str, Any]:
    with trio.fail_after(15):
        while True:
            job: dict[str, Any] = (await server.client.get(f"/v1/jobs/{job_id}")).json()["data"]
            if job["status"] == status:
                return job
            await trio.sleep(0.02)


async def test_worker_completes_and_retries_until_failed(server: RunningServer) -> None:
    chronos = Chronos(api_key=API_KEY, base_url=server.url, poll_wait_time_seconds=1)
    seen: list[tuple[str, int]] = []

    @chronos.worker.handle("add")
    async def add(ctx: ChronosContext) -> dict[str, int]:
        seen.append(("add", ctx.attempt))
        assert ctx.payload is not None
        return {"sum": int(ctx.payload["a"]) + int(ctx.payload["b"])}

    @chronos.worker.handle("boom")
    def boom(ctx: ChronosContext) -> None:  # sync: runs in a thread
        seen.append(("boom", ctx.attempt))
        raise RuntimeError(f"attempt {ctx.attempt} failed")

    c = server.client
    ok = await c.post("/v1/jobs", json={"name": "a", "handler": "add", "payload": {"a": 2, "b": 3}})
    bad = await c.post("/v1/jobs", json={"name": "b", "handler": "boom", "max_retries": 1})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chronos.worker.start)
        done = await wait_status(server, ok.json()["data"]["id"], "completed")
        failed = await wait_status(server, bad.json()["data"]["id"], "failed")
        await chronos.worker.stop()

    assert done["attempt_count"] == 1 and failed["attempt_count"] == 2
    history = (await c.get("/v1/executions", params={"job_id": failed["id"]})).json()["data"]
    assert [(e["attempt"], e["trigger"], e["status"]) for e in reversed(history)] == [
        (1, "api", "failed"),
        (2, "system_retry", "failed"),
    ]
    assert history[0]["error"]["name"] == "RuntimeError"
    assert history[0]["error"]["message"] == "attempt 2 failed"
    result = (await c.get("/v1/executions", params={"job_id": done["id"]})).json()["data"]
    assert result[0]["result"] == {"sum": 5}
    assert sorted(seen) == [("add", 1), ("boom", 1), ("boom", 2)]

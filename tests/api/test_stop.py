"""The graceful stop (issue 10, defect 2), in process: claims refused at once, reports and
`/readyz` still answered while a lease handed out by this process is open, idle keep-alive
connections closed at once, and the server gone as soon as nothing is in flight.

`trio.fail_after` bounds waits far below the 30 s grace: a stop that waited the grace out (as
Hypercorn did for any idle keep-alive connection) fails the test."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from tests.api.helpers import PULL_JOB, fails, ok
from tests.conftest import API_KEY, make_settings, start_server

AUTH = {"Authorization": f"Bearer {API_KEY}"}
GRACE = 30.0


async def test_idle_keep_alive_clients_do_not_hold_the_stop(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, shutdown_grace_seconds=GRACE)
    async with trio.open_nursery() as nursery:
        handle = await start_server(nursery, settings)
        clients = [httpx.AsyncClient(base_url=handle.url, headers=AUTH) for _ in range(5)]
        for client in clients:
            ok(await client.get("/v1/jobs"))  # each now holds an idle keep-alive connection
        assert handle.http.connections == 5
        handle.stop()
        with trio.fail_after(3):
            await handle.stopped.wait()
        for client in clients:
            await client.aclose()


async def test_reports_are_taken_until_the_last_lease_settles(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, shutdown_grace_seconds=GRACE)
    async with trio.open_nursery() as nursery:
        handle = await start_server(nursery, settings)
        async with httpx.AsyncClient(base_url=handle.url, headers=AUTH, timeout=10) as client:
            ok(await client.post("/v1/jobs", json=PULL_JOB), 201)
            claim = {"handlers": ["h"], "wait_time_seconds": 5}
            claimed = ok(await client.post("/v1/worker/jobs/claim", json=claim))
        handle.stop()
        # A new connection: the stop closed the idle one, and a request racing that close
        # would fail on the client side (clients retry those; the SDK does).
        async with httpx.AsyncClient(base_url=handle.url, headers=AUTH, timeout=10) as client:
            with trio.fail_after(5):
                ready = await client.get("/readyz")
                assert fails(ready, 503, "service_unavailable")["message"] == "stopping"
                refused = await client.post("/v1/worker/jobs/claim", json=claim)
                fails(refused, 503, "service_unavailable")
                assert refused.headers["Retry-After"] == "1"
                assert not handle.stopped.is_set()  # the claimed job is still out
                report = await client.post(
                    f"/v1/worker/executions/{claimed['execution_id']}/result",
                    json={"status": "completed"},
                )
                assert ok(report)["status"] == "completed"
                assert report.headers["Connection"] == "close"
                await handle.stopped.wait()

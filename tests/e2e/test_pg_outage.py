"""PostgreSQL only: the server survives its database going away and coming back.

While the database refuses connections (and has lost every one it had), `/readyz` says 503, API
requests answer 503 `service_unavailable` in the envelope (after the first, from the circuit
breaker), and the server keeps running; once the database is back, the breaker closes and a claim
parked all along gets the job created afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from chronos_server.pipeline.services import LoopSettings
from chronos_server.store import postgres
from tests import pg
from tests.conftest import make_settings, open_running_server

pytestmark = pytest.mark.usefixtures("postgres_url")  # skip/fail with a reason


def unavailable(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 503, resp.text
    body: dict[str, Any] = resp.json()
    assert body["success"] is False and body["code"] == "service_unavailable"
    assert isinstance(body["message"], str) and body["message"]
    assert body["errors"] == []
    return body


async def test_database_outage_is_503_then_everything_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "POOL_TIMEOUT_SECONDS", 0.5)
    url = await pg.new_schema_url_async()
    settings = make_settings(tmp_path, database_url=url)
    loops = LoopSettings(error_backoff_seconds=0.2)
    async with open_running_server(settings, loops) as server, trio.open_nursery() as nursery:
        c = server.client
        assert (await c.get("/readyz")).status_code == 200
        claims: list[httpx.Response] = []

        async def park() -> None:
            body = {"handlers": ["after"], "wait_time_seconds": 20}
            claims.append(await c.post("/v1/worker/jobs/claim", json=body))

        nursery.start_soon(park)
        board = server.handle.services.pipeline.board
        await pg.eventually(lambda: board.parked == 1)
        with pg.database_down(url):
            unavailable(await c.get("/readyz"))
            unavailable(await c.post("/v1/jobs", json={"name": "x", "handler": "after"}))
            unavailable(await c.get("/v1/jobs"))
            await trio.sleep(1)  # the loops meet the outage too, and back off
            # The first failure tripped the breaker, whose probe runs in the server's nursery;
            # the requests after it were answered by the breaker, without waiting for the pool.
            store = server.handle.services.pipeline.store
            assert isinstance(store, postgres.PostgresStore)
            assert store.breaker.machine.trips == 1 and store.breaker.rejected >= 2

        async def ready() -> bool:
            return (await c.get("/readyz")).status_code == 200

        await pg.eventually(ready, 30)
        assert store.breaker.machine.closed  # the probe closed it

        created = await c.post("/v1/jobs", json={"name": "after", "handler": "after"})
        assert created.status_code == 201, created.text
        await pg.eventually(lambda: bool(claims), 15)
        claimed = claims[0].json()["data"]
        assert claimed is not None and claimed["job_id"] == created.json()["data"]["id"]
        report = await c.post(
            f"/v1/worker/executions/{claimed['execution_id']}/result", json={"status": "completed"}
        )
        assert report.status_code == 200, report.text

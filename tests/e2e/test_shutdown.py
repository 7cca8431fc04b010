"""SIGTERM: parked long-polls answer "no job" at once, new claims get nothing, exit code 0."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import trio

from tests.conftest import API_KEY
from tests.e2e.test_crash import free_port, start


async def test_sigterm_answers_parked_claims_and_exits_zero(tmp_path: Path) -> None:
    port = free_port()
    proc = await start(f"sqlite:///{tmp_path / 'stop.db'}", port)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
    ) as client:

        async def park() -> None:
            body = {"handlers": ["nobody"], "wait_time_seconds": 20}
            answers.append(await client.post("/v1/worker/jobs/claim", json=body))

        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(park)
                await trio.sleep(0.5)  # real server in another process: let the claims park
                proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert all(r.json()["data"] is None for r in answers)

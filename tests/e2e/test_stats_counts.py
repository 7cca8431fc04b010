"""`GET /v1/stats` reads kept counts (migration 0009), not the jobs: after a mixed workload
through real server processes, one of them SIGKILLed mid-run, its numbers equal a full count
of the table, on both stores."""

from __future__ import annotations

import signal
import sqlite3
from collections import Counter

import httpx
import trio

from tests.conftest import API_KEY
from tests.e2e.test_crash import free_port, start
from tests.pg import connect

OPEN = ("pending", "admitting", "queued", "ready", "running", "retrying")
FINISHED = ("completed", "failed", "cancelled")


async def churn(client: httpx.AsyncClient, rounds: int, stop: trio.Event) -> None:
    """Creates, claims, completes, fails and cancels jobs of two handlers until `stop` (errors
    from a dead server are part of the workload)."""
    for i in range(rounds):
        if stop.is_set():
            return
        try:
            handler = "a" if i % 2 else "b"
            body = {"name": f"j{i}", "handler": handler, "timeout": 1, "max_retries": 1}
            await client.post("/v1/jobs", json=body)
            later = body | {"run_at": "2099-01-01T00:00:00Z"}
            created = await client.post("/v1/jobs", json=later)
            if i % 3 == 0 and created.status_code == 201:
                await client.post(f"/v1/jobs/{created.json()['data']['id']}/cancel")
            await client.post("/v1/jobs/batch", json={"jobs": [body, body]})
            claim = await client.post(
                "/v1/worker/jobs/claim", json={"handlers": ["a", "b"], "wait_time_seconds": 0}
            )
            data = claim.json().get("data") if claim.status_code == 200 else None
            if data and i % 4:
                outcome = (
                    {"status": "completed"}
                    if i % 4 != 1
                    else {"status": "failed", "error": {"message": "x"}, "retryable": i % 8 == 1}
                )
                await client.post(
                    f"/v1/worker/executions/{data['execution_id']}/result", json=outcome
                )
        except httpx.TransportError:
            await trio.sleep(0.05)


def full_count(database_url: str) -> Counter[tuple[str | None, str]]:
    sql = "SELECT handler, status, count(*) FROM jobs GROUP BY handler, status"
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute(sql).fetchall()
    else:
        with connect(database_url) as pg:
            rows = pg.execute(sql).fetchall()
    found: Counter[tuple[str | None, str]] = Counter()
    for handler, status, n in rows:
        found[(handler, "pending" if status == "held" else status)] += n
    return found


async def test_stats_equal_a_full_count_after_a_workload_with_a_sigkill(
    database_url: str,
) -> None:
    port = free_port()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    proc = await start(database_url, port)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10
        ) as client:
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(churn, client, 40, stop)
                await trio.sleep(1.0)
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                proc = await start(database_url, port)
            stop = trio.Event()
            await churn(client, 20, stop)
            with trio.fail_after(20):  # the loops settle: nothing moves between the two reads
                while True:
                    before = full_count(database_url)
                    stats = (await client.get("/v1/stats", params={"window_minutes": 1440})).json()
                    if full_count(database_url) == before:
                        break
            shown: Counter[tuple[str | None, str]] = Counter()
            for row in stats["data"]["handlers"]:
                for status, n in row["counts"].items():
                    if n:
                        shown[(row["handler"], status)] = n
            assert +before == shown
            assert sum(n for (_, s), n in before.items() if s in FINISHED) > 0
            assert sum(n for (_, s), n in before.items() if s in OPEN) > 0
    finally:
        proc.terminate()
        with trio.fail_after(20):
            await proc.wait()

"""PostgreSQL only: three `chronos serve` processes on one database, none of them special.

Workers are spread over the three servers (half claim one job at a time, half in batches), jobs
are created through all three, and a 1-second interval schedule runs meanwhile. Afterwards, read
straight from the database: every job completed with exactly one execution (leases are long, so
none expired: a second execution could only come from a double claim), no worker was handed a
job twice, work created on one server was claimed through another, and the schedule spawned
each of its slots once.
"""

from __future__ import annotations

import itertools
import signal
from collections import Counter
from typing import Any

import httpx
import pytest
import trio

from tests import pg
from tests.conftest import API_KEY
from tests.e2e.test_crash import free_port, start

pytestmark = pytest.mark.usefixtures("postgres_url")  # skip/fail with a reason

SERVERS = 3
WORKERS_PER_SERVER = 4
CREATORS_PER_SERVER = 4
JOBS = 3000
HANDLERS = ["work", "tick"]

Claim = tuple[str, str, int]  # job id, execution id, index of the server that handed it out


async def work(client: httpx.AsyncClient, server: int, batch: bool, claims: list[Claim]) -> None:
    body: dict[str, Any] = {"handlers": HANDLERS, "wait_time_seconds": 1}
    if batch:
        body["max_jobs"] = 5
    while True:
        r = await client.post("/v1/worker/jobs/claim", json=body)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        items = (data if batch else [data]) if data else []
        claims.extend((i["job_id"], i["execution_id"], server) for i in items)
        if batch and items:
            results = [{"execution_id": i["execution_id"], "status": "completed"} for i in items]
            report = await client.post("/v1/worker/executions/results", json={"results": results})
            assert all(item["success"] for item in report.json()["data"]), report.text
        for item in items if not batch else []:
            report = await client.post(
                f"/v1/worker/executions/{item['execution_id']}/result", json={"status": "completed"}
            )
            assert report.status_code == 200, report.text


async def create(
    client: httpx.AsyncClient, server: int, count: int, created: dict[str, int]
) -> None:
    for _ in range(count):
        r = await client.post("/v1/jobs", json={"name": "w", "handler": "work"})
        assert r.status_code == 201, r.text
        created[r.json()["data"]["id"]] = server


def scalar(url: str, sql: str) -> int:
    with pg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(str(row[0]))


async def wait_for(url: str, sql: str, seconds: float) -> None:
    """Until `sql` (a count) is zero."""

    async def zero() -> bool:
        return await trio.to_thread.run_sync(scalar, url, sql) == 0

    await pg.eventually(zero, seconds)


async def test_three_replicas_share_the_work_without_double_claims() -> None:
    url = await pg.new_schema_url_async()
    ports = [free_port() for _ in range(SERVERS)]
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
    claims: list[Claim] = []
    created: dict[str, int] = {}
    try:
        every_second = {
            "name": "tick",
            "handler": "tick",
            "interval": {"value": 1, "unit": "second"},
        }
        schedule = (await clients[0].post("/v1/schedules", json=every_second)).json()["data"]
        async with trio.open_nursery() as workers:
            for i in range(SERVERS * WORKERS_PER_SERVER):
                workers.start_soon(work, clients[i % SERVERS], i % SERVERS, i % 2 == 1, claims)
            async with trio.open_nursery() as creators:
                for i in range(SERVERS * CREATORS_PER_SERVER):
                    count = JOBS // (SERVERS * CREATORS_PER_SERVER)
                    creators.start_soon(create, clients[i % SERVERS], i % SERVERS, count, created)
            await wait_for(url, "SELECT count(*) FROM jobs WHERE status <> 'completed'", 60)
            archived = await clients[1].post(f"/v1/schedules/{schedule['id']}/archive")
            assert archived.status_code == 200, archived.text
            unfinished = "SELECT count(*) FROM jobs WHERE finished_at IS NULL"
            await wait_for(url, unfinished, 20)
            workers.cancel_scope.cancel()
    finally:
        for client in clients:
            await client.aclose()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            for proc in procs:
                await proc.wait()

    assert len(created) == JOBS
    handed_out = Counter(job_id for job_id, _, _ in claims)
    assert handed_out.most_common(1)[0][1] == 1, "a job was handed to two workers"
    assert set(created) <= set(handed_out)
    assert sum(1 for job_id, _, server in claims if job_id in created and created[job_id] != server)
    assert {server for _, _, server in claims} == set(range(SERVERS))
    assert_database(url, schedule["id"])


def assert_database(url: str, schedule_id: str) -> None:
    with pg.connect(url) as conn:
        statuses = {
            str(r[0]): r[1] for r in conn.execute("SELECT status, count(*) FROM jobs GROUP BY 1")
        }
        per_job = conn.execute(
            "SELECT j.id, count(e.id) FROM jobs j LEFT JOIN executions e ON e.job_id = j.id "
            "WHERE j.status = 'completed' GROUP BY j.id HAVING count(e.id) <> 1"
        ).fetchall()
        executions = {
            str(r[0]): r[1]
            for r in conn.execute("SELECT status, count(*) FROM executions GROUP BY 1")
        }
        slots = [
            int(str(r[0]))
            for r in conn.execute(
                "SELECT scheduled_for FROM jobs WHERE schedule_id = %s ORDER BY 1", (schedule_id,)
            )
        ]
        run_count = conn.execute(
            "SELECT run_count FROM schedules WHERE id = %s", (schedule_id,)
        ).fetchone()
    assert set(statuses) <= {"completed", "cancelled"}, statuses
    assert per_job == [], "a completed job with other than one execution"
    assert set(executions) == {"completed"}, executions
    assert len(slots) >= 3 and len(set(slots)) == len(slots)
    assert all((b - a) % 1000 == 0 and b > a for a, b in itertools.pairwise(slots))
    assert run_count is not None and run_count[0] == len(slots)

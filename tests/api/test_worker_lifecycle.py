"""Claims and reports against time and connections: lease expiry (§10.3, G-08), a client that
disconnects mid-claim (§10.2), graceful stop answering parked claims, and execution listing.
"""

from __future__ import annotations

import uuid

import httpx
import trio

from tests.api.helpers import (
    claim,
    claim_ready,
    create_job,
    fails,
    get_job,
    invalid,
    ms,
    ok,
    paged,
    report,
    spec_paging,
    wait_job_status,
    wait_parked,
)
from tests.conftest import API_KEY, RunningServer


async def test_expired_lease_times_out_and_late_report_is_409(server: RunningServer) -> None:
    c = server.client
    job = await create_job(c, timeout=1)
    claimed = await claim_ready(c, job["id"])
    execution_id = claimed["execution_id"]
    with trio.fail_after(10):  # lease 1 s, grace 0, sweep every 1 s
        while True:
            execution = ok(await c.get(f"/v1/executions/{execution_id}"))
            if execution["status"] != "running":
                break
            await trio.sleep(0.01)
    job_now = await get_job(c, job["id"])
    assert execution["status"] == "timeout"
    assert execution["error"]["message"] and execution["finished_at"] is not None
    assert ms(execution["finished_at"]) >= ms(execution["lease_expires_at"])
    assert job_now["status"] == "retrying" and job_now["attempt_count"] == 1
    assert ms(job_now["run_at"]) - ms(execution["finished_at"]) >= 1000

    for body in ({"status": "completed"}, {"status": "failed", "error": {"message": "late"}}):
        resp = await report(c, execution_id, **body)
        assert fails(resp, 409, "lease_expired")["errors"] == []
    # G-08: nothing changes; the retry proceeds as attempt 2 with trigger system_retry.
    assert ok(await c.get(f"/v1/executions/{execution_id}"))["status"] == "timeout"
    retried = await claim_ready(c, job["id"])
    assert retried["attempt"] == 2
    second = ok(await c.get(f"/v1/executions/{retried['execution_id']}"))
    assert second["trigger"] == "system_retry"


async def test_disconnect_mid_claim_leaves_no_job_claimed(server: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as worker:
        with trio.CancelScope() as scope:

            async def abandon_when_parked() -> None:
                await wait_parked(server, 1)
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(abandon_when_parked)
                await claim(worker, ["h"], wait=20)
                raise AssertionError("the claim should have been cancelled while parked")
        assert scope.cancelled_caught
    # The server notices the closed connection and drops the parked waiter well before 20 s.
    await wait_parked(server, 0)

    c = server.client
    job = await create_job(c)
    await wait_job_status(c, job["id"], "ready")
    claimed = await claim(c, ["h"])
    assert claimed is not None and claimed["job_id"] == job["id"] and claimed["attempt"] == 1
    executions, paging = paged(await c.get("/v1/executions", params={"job_id": job["id"]}))
    assert paging["total"] == 1 and executions[0]["id"] == claimed["execution_id"]


async def test_graceful_stop_answers_parked_claim_with_no_job(server: RunningServer) -> None:
    got: list[httpx.Response] = []

    async def parked() -> None:
        got.append(
            await server.client.post(
                "/v1/worker/jobs/claim", json={"handlers": ["h"], "wait_time_seconds": 20}
            )
        )

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(parked)
            await wait_parked(server, 1)
            server.handle.stop()
    assert ok(got[0]) is None


async def test_executions_list_filters_and_paging(server: RunningServer) -> None:
    c = server.client
    first = await create_job(c)
    other = await create_job(c)
    one = await claim_ready(c, first["id"])
    ok(await report(c, one["execution_id"], status="failed", error={"message": "x"}))
    await trio.sleep(0.003)
    two = await claim_ready(c, other["id"])

    data, paging = paged(await c.get("/v1/executions"))
    assert [e["id"] for e in data] == [two["execution_id"], one["execution_id"]]
    assert spec_paging(paging) == {"page": 1, "pages": 1, "size": 20, "total": 2}
    data, _ = paged(await c.get("/v1/executions", params={"status": "failed"}))
    assert [e["id"] for e in data] == [one["execution_id"]]
    data, _ = paged(await c.get("/v1/executions", params={"job_id": other["id"]}))
    assert [e["id"] for e in data] == [two["execution_id"]]
    data, paging = paged(await c.get("/v1/executions", params={"size": 1, "page": 2}))
    assert [e["id"] for e in data] == [one["execution_id"]]
    assert spec_paging(paging) == {"page": 2, "pages": 2, "size": 1, "total": 2}
    invalid(await c.get("/v1/executions", params={"status": "retrying"}), "status")
    invalid(await c.get("/v1/executions", params={"job_id": "x"}), "job_id")
    fails(await c.get(f"/v1/executions/{uuid.uuid4()}"), 404, "execution_not_found")
    invalid(await c.get("/v1/executions/x"), "id")

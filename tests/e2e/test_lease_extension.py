"""Lease extension (extension): `POST /v1/worker/executions/:id/heartbeat` and the worker
channel's `heartbeat`, on both stores: the lease moves forward (never back), capped; refused
like a result report (404 for an unknown or another account's execution, 409
`execution_already_finished` / `lease_expired`)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from chronos_server.api.auth import display_prefix, hash_key
from chronos_server.loops.sweeper import sweeper_once
from chronos_worker import Chronos, ChronosContext
from tests.api.helpers import ms, ok
from tests.conftest import API_KEY, RunningServer
from tests.worker.fakes import RecordingLogger

GUARD = 10


async def claim(server: RunningServer, timeout: int = 2) -> dict[str, Any]:
    body = {"name": "j", "handler": "lease", "timeout": timeout, "max_retries": 0}
    ok(await server.client.post("/v1/jobs", json=body), 201)
    with trio.fail_after(GUARD):
        while True:
            r = await server.client.post(
                "/v1/worker/jobs/claim", json={"handlers": ["lease"], "wait_time_seconds": 1}
            )
            if r.status_code == 200 and r.json()["data"] is not None:
                data: dict[str, Any] = r.json()["data"]
                return data


def beat_path(execution_id: str) -> str:
    return f"/v1/worker/executions/{execution_id}/heartbeat"


def refused(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == code


async def test_a_heartbeat_extends_the_lease_and_never_shortens_it(server: RunningServer) -> None:
    job = await claim(server, timeout=2)
    first = ms(job["lease_expires_at"])
    before = time.time() * 1000
    long = ok(await server.client.post(beat_path(job["execution_id"]), json={"extend_seconds": 60}))
    assert long["status"] == "running"
    assert ms(long["lease_expires_at"]) >= before + 60_000 - 2 > first
    # No body: the job's timeout (2 s) from now, which is earlier: the 60 s lease stands.
    again = ok(await server.client.post(beat_path(job["execution_id"])))
    assert again["lease_expires_at"] == long["lease_expires_at"]
    too_long = await server.client.post(
        beat_path(job["execution_id"]), json={"extend_seconds": 3601}
    )
    refused(too_long, 422, "validation_error")
    assert too_long.json()["errors"][0]["field"] == "extend_seconds"


async def test_a_heartbeat_is_refused_like_a_result_report(server: RunningServer) -> None:
    refused(await server.client.post(beat_path(str(uuid.uuid4()))), 404, "execution_not_found")
    refused(await server.client.post(beat_path("nope")), 422, "validation_error")
    done = await claim(server)
    path = f"/v1/worker/executions/{done['execution_id']}/result"
    ok(await server.client.post(path, json={"status": "completed"}))
    refused(
        await server.client.post(beat_path(done["execution_id"])),
        409,
        "execution_already_finished",
    )
    late = await claim(server, timeout=1)
    p = server.handle.services.pipeline
    await trio.sleep(1.1)  # the 1 s lease runs out (the fixture's lease grace is 0)
    await sweeper_once(p)
    refused(await server.client.post(beat_path(late["execution_id"])), 409, "lease_expired")


async def test_another_accounts_execution_is_not_found(server: RunningServer) -> None:
    job = await claim(server)
    store = server.handle.services.pipeline.store
    other_key = "chrns_" + "O" * 40
    account, _ = await store.ensure_account("other", 0)
    await store.add_api_key(account.id, hash_key(other_key), display_prefix(other_key), 0)
    headers = {"Authorization": f"Bearer {other_key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as other:
        refused(await other.post(beat_path(job["execution_id"])), 404, "execution_not_found")
    ok(await server.client.post(beat_path(job["execution_id"])))  # the owner's still works


async def test_heartbeats_ride_on_the_worker_channel(server: RunningServer) -> None:
    job = await claim(server, timeout=2)
    url = server.url.replace("http://", "ws://") + "/v1/worker/stream"
    headers = [(b"authorization", f"Bearer {API_KEY}".encode())]
    async with open_websocket_url(url, extra_headers=headers) as ws:
        await ws.send_message(json.dumps({"type": "hello", "handlers": ["x"], "credits": 0}))
        assert json.loads(await ws.get_message())["type"] == "welcome"
        unknown = str(uuid.uuid4())
        beat = {
            "type": "heartbeat",
            "execution_ids": [job["execution_id"], unknown],
            "extend_seconds": 30,
        }
        await ws.send_message(json.dumps(beat))
        with trio.fail_after(GUARD):
            acks = json.loads(await ws.get_message())
    assert acks["type"] == "heartbeat_acks"
    [mine, other] = acks["results"]
    assert mine["execution_id"] == job["execution_id"] and mine["success"] is True
    assert ms(mine["lease_expires_at"]) > ms(job["lease_expires_at"]) + 20_000
    assert (other["success"], other["code"]) == (False, "execution_not_found")


async def wait_job(server: RunningServer, job_id: str, status: str) -> dict[str, Any]:
    with trio.fail_after(GUARD):
        while True:
            job: dict[str, Any] = ok(await server.client.get(f"/v1/jobs/{job_id}"))
            if job["status"] == status:
                return job
            await trio.sleep(0.05)


@pytest.mark.parametrize("protocol", ["poll", "stream"])
async def test_the_sdk_keeps_a_handler_running_three_times_its_timeout(
    server: RunningServer, protocol: str
) -> None:
    chronos = Chronos(api_key=API_KEY, base_url=server.url, protocol=protocol)
    runs: list[int] = []

    @chronos.worker.handle("long")
    async def long(ctx: ChronosContext) -> str:
        runs.append(ctx.attempt)
        await trio.sleep(3 * ctx.timeout)  # 3 s; the sweeper would time it out after 1 s
        return "done"

    body = {"name": "j", "handler": "long", "timeout": 1, "max_retries": 3}
    created = ok(await server.client.post("/v1/jobs", json=body), 201)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chronos.worker.start)
        job = await wait_job(server, created["id"], "completed")
        await chronos.worker.stop()
    assert runs == [1] and job["attempt_count"] == 1
    [execution] = ok(await server.client.get("/v1/executions", params={"job_id": job["id"]}))
    assert (execution["status"], execution["result"]) == ("completed", "done")


@pytest.mark.parametrize("protocol", ["poll", "stream"])
async def test_a_lease_lost_under_a_running_handler_cancels_it(
    server: RunningServer, protocol: str
) -> None:
    log = RecordingLogger()
    chronos = Chronos(api_key=API_KEY, base_url=server.url, protocol=protocol, logger=log)
    started: list[str] = []
    running, cancelled = trio.Event(), trio.Event()

    @chronos.worker.handle("long")
    async def long(ctx: ChronosContext) -> None:
        started.append(ctx.execution_id)
        running.set()
        try:
            await trio.sleep(30)
        except trio.Cancelled:
            cancelled.set()
            raise

    body = {"name": "j", "handler": "long", "timeout": 1, "max_retries": 0}
    created = ok(await server.client.post("/v1/jobs", json=body), 201)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chronos.worker.start)
        with trio.fail_after(GUARD):
            await running.wait()
        # Someone else finishes the attempt: the next heartbeat is refused.
        path = f"/v1/worker/executions/{started[0]}/result"
        ok(await server.client.post(path, json={"status": "failed", "error": {"message": "x"}}))
        with trio.fail_after(GUARD):
            await cancelled.wait()
        await chronos.worker.stop()
    job = ok(await server.client.get(f"/v1/jobs/{created['id']}"))
    assert job["status"] == "failed"  # what the other party reported, nothing after it
    assert any("execution_already_finished" in m for m in log.messages("error"))

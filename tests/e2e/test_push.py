"""Push delivery end to end: the real server signs and sends to a real receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.conftest import API_KEY, SIGNING_SECRET, RunningServer, make_settings, start_server
from tests.receiver import Receiver, start_receiver


@pytest.fixture
async def push_server(tmp_path: Path, database_url: str) -> AsyncIterator[RunningServer]:
    settings = make_settings(
        tmp_path, database_url=database_url, allow_http_targets=True, allow_private_targets=True
    )
    async with trio.open_nursery() as nursery:
        handle = await start_server(nursery, settings)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=handle.url, headers=headers, timeout=30) as client:
            yield RunningServer(handle, client, settings)
        handle.stop()


async def wait_job(server: RunningServer, job_id: str, *states: str) -> dict[str, Any]:
    with trio.fail_after(20):
        while True:
            job: dict[str, Any] = (await server.client.get(f"/v1/jobs/{job_id}")).json()["data"]
            if job["status"] in states:
                return job
            await trio.sleep(0.02)


def push_job(url: str, **extra: Any) -> dict[str, Any]:
    delivery = {"type": "push", "http": {"url": url, "method": "POST", "headers": {"X-App": "1"}}}
    return {"name": "push", "handler": "report", "delivery": delivery, "payload": {"n": 1}, **extra}


async def test_two_500s_then_200_completes_with_three_signed_attempts(
    push_server: RunningServer,
) -> None:
    async with trio.open_nursery() as nursery:
        receiver = await start_receiver(
            nursery, Receiver(SIGNING_SECRET, script=[(500, 0), (500, 0), (200, 0)])
        )
        created = await push_server.client.post("/v1/jobs", json=push_job(receiver.url + "/hook"))
        assert created.status_code == 201, created.text
        job = await wait_job(push_server, created.json()["data"]["id"], "completed", "failed")
        nursery.cancel_scope.cancel()

    assert job["status"] == "completed" and job["attempt_count"] == 3
    history = (await push_server.client.get("/v1/executions", params={"job_id": job["id"]})).json()
    attempts = [
        (e["attempt"], e["trigger"], e["status"], e["http_status"])
        for e in reversed(history["data"])
    ]
    assert attempts == [
        (1, "api", "failed", 500),
        (2, "system_retry", "failed", 500),
        (3, "system_retry", "completed", 200),
    ]
    assert len(receiver.deliveries) == 3
    for delivery, execution in zip(receiver.deliveries, reversed(history["data"]), strict=True):
        assert delivery.chronos_ok and delivery.standard_ok
        assert delivery.headers["x-chronos-delivery-id"] == execution["id"]
        assert delivery.headers["user-agent"] == "chronos.sh/1.0"
        assert delivery.headers["x-app"] == "1"
        body = delivery.json
        assert list(body) == [
            "job_id",
            "handler",
            "execution_id",
            "scheduled_for",
            "attempt",
            "payload",
        ]
        assert body["job_id"] == job["id"] and body["execution_id"] == execution["id"]
        assert body["attempt"] == execution["attempt"] and body["payload"] == {"n": 1}
    assert history["data"][0]["response_body"] == '{"status": 200}'


async def test_4xx_fails_at_once_and_timeout_is_retried(push_server: RunningServer) -> None:
    async with trio.open_nursery() as nursery:
        receiver = await start_receiver(
            nursery, Receiver(SIGNING_SECRET, script=[(404, 0), (200, 3.0), (200, 0)])
        )
        c = push_server.client
        gone = await c.post("/v1/jobs", json=push_job(receiver.url))
        failed = await wait_job(push_server, gone.json()["data"]["id"], "failed")
        assert failed["attempt_count"] == 1
        slow = await c.post("/v1/jobs", json=push_job(receiver.url, timeout=1))
        done = await wait_job(push_server, slow.json()["data"]["id"], "completed", "failed")
        nursery.cancel_scope.cancel()
    assert done["status"] == "completed"
    history = (await c.get("/v1/executions", params={"job_id": done["id"]})).json()["data"]
    assert [e["status"] for e in reversed(history)] == ["timeout", "completed"]
    assert history[-1]["error"]["name"] == "Timeout"

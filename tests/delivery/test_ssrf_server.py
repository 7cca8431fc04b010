"""The SSRF guard through the real server: a name passes the create-time check, the send-time
check (with a fake resolver) refuses its private address, and the job fails at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from chronos_server.runtime import ServerHandle, serve
from tests.conftest import API_KEY, make_settings
from tests.delivery.fakes import FakeResolver


@dataclass
class Server:
    client: httpx.AsyncClient
    resolver: FakeResolver


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    resolver = FakeResolver(
        {"internal.example": ["10.0.0.1"], "xn--bcher-kva.example": ["fd00::7"]}
    )
    settings = make_settings(tmp_path, allow_http_targets=True, allow_private_targets=False)

    async def run(*, task_status: trio.TaskStatus[ServerHandle]) -> None:
        await serve(settings, resolver=resolver, task_status=task_status)

    async with trio.open_nursery() as nursery:
        handle: ServerHandle = await nursery.start(run)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=handle.url, headers=headers, timeout=30) as client:
            yield Server(client, resolver)
        handle.stop()


def push_job(url: str) -> dict[str, Any]:
    return {"name": "hook", "delivery": {"type": "push", "http": {"url": url, "method": "POST"}}}


async def wait_final(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    with trio.fail_after(20):
        while True:
            job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()["data"]
            if job["status"] in ("completed", "failed"):
                return job
            await trio.sleep(0.02)


@pytest.mark.parametrize(
    ("url", "address"),
    [("http://internal.example/hook", "10.0.0.1"), ("http://bücher.example/hook", "fd00::7")],
)
async def test_name_resolving_to_a_private_address_fails_at_once(
    server: Server, url: str, address: str
) -> None:
    created = await server.client.post("/v1/jobs", json=push_job(url))
    assert created.status_code == 201, created.text  # a name: the create-time check passes
    job = await wait_final(server.client, created.json()["data"]["id"])
    assert job["status"] == "failed" and job["attempt_count"] == 1  # terminal: no retry
    history = (await server.client.get("/v1/executions", params={"job_id": job["id"]})).json()
    [execution] = history["data"]
    assert execution["status"] == "failed" and execution["http_status"] is None
    assert execution["error"]["name"] == "BlockedDestination"
    assert address in execution["error"]["message"]
    assert len(server.resolver.calls) == 1


async def test_private_literal_is_refused_at_create_time(server: Server) -> None:
    refused = await server.client.post("/v1/jobs", json=push_job("http://10.0.0.1/hook"))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "delivery.http.url"
    assert server.resolver.calls == []

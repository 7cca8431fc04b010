"""Replay, `last_error` and the idempotency conflict's `job_id` over HTTP, on both stores
(extensions; README "Replaying jobs")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.api.helpers import claim, create_job, fails, invalid, ok, report, wait_job_status
from tests.conftest import API_KEY, SIGNING_SECRET, RunningServer, make_settings, start_server
from tests.e2e.test_push import push_job, wait_job
from tests.receiver import Receiver, start_receiver


async def _failed_pull_job(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """A pull job whose one attempt reported a non-retryable failure."""
    job = await create_job(client, payload={"n": 1}, timeout=45, max_retries=2, **fields)
    with trio.fail_after(10):
        while (claimed := await claim(client, [job["handler"]], wait=1)) is None:
            pass
    assert claimed["job_id"] == job["id"]
    error = {"message": "boom: no such row", "name": "KeyError"}
    ok(await report(client, claimed["execution_id"], status="failed", error=error, retryable=False))
    return await wait_job_status(client, job["id"], "failed")


async def test_failed_pull_job_says_why_and_replays(server: RunningServer) -> None:
    failed = await _failed_pull_job(server.client, handler="mail")
    assert failed["last_error"] == "KeyError: boom: no such row"
    assert failed["replay_of"] is None
    listed = ok(await server.client.get("/v1/jobs", params={"status": "failed"}))
    assert [(j["id"], j["last_error"]) for j in listed] == [(failed["id"], failed["last_error"])]

    replayed = ok(await server.client.post(f"/v1/jobs/{failed['id']}/replay"), 201)
    assert replayed["replay_of"] == failed["id"] and replayed["id"] != failed["id"]
    assert replayed["status"] in ("pending", "ready") and replayed["last_error"] is None
    copied = ("name", "handler", "payload", "delivery", "timeout", "max_retries")
    assert {k: replayed[k] for k in copied} == {k: failed[k] for k in copied}
    # The replay runs: a worker gets it with the same payload.
    with trio.fail_after(10):
        while (claimed := await claim(server.client, ["mail"], wait=1)) is None:
            pass
    assert claimed["job_id"] == replayed["id"] and claimed["payload"] == {"n": 1}
    # `{}` is a body too; another field is refused.
    again = ok(await server.client.post(f"/v1/jobs/{failed['id']}/replay", json={}), 201)
    assert again["replay_of"] == failed["id"]
    bad = await server.client.post(f"/v1/jobs/{failed['id']}/replay", json={"x": 1})
    invalid(bad, "x")


async def test_replay_is_refused_for_unfinished_missing_or_malformed(
    server: RunningServer,
) -> None:
    pending = await create_job(server.client, delay={"value": 1, "unit": "hour"})
    body = fails(await server.client.post(f"/v1/jobs/{pending['id']}/replay"), 409, "invalid_state")
    assert "pending" in body["message"]
    missing = "00000000-0000-4000-8000-000000000000"
    fails(await server.client.post(f"/v1/jobs/{missing}/replay"), 404, "job_not_found")
    invalid(await server.client.post("/v1/jobs/not-a-uuid/replay"), "id")
    cancelled = ok(await server.client.post(f"/v1/jobs/{pending['id']}/cancel"))
    replayed = ok(await server.client.post(f"/v1/jobs/{cancelled['id']}/replay"), 201)
    assert replayed["replay_of"] == pending["id"]


async def test_bulk_replay_filters_and_limit(server: RunningServer) -> None:
    first = await _failed_pull_job(server.client, handler="a")
    second = await _failed_pull_job(server.client, handler="a")
    other = await _failed_pull_job(server.client, handler="b")
    url = "/v1/jobs/replay"

    one = ok(await server.client.post(url, json={"status": "failed", "handler": "a", "limit": 1}))
    assert one["count"] == 1 and len(one["job_ids"]) == 1
    new = ok(await server.client.get(f"/v1/jobs/{one['job_ids'][0]}"))
    assert new["replay_of"] == first["id"]  # the earliest finished first
    # The same request again: the next one (never the same job twice).
    two = ok(await server.client.post(url, json={"status": ["failed"], "handler": "a"}))
    assert two["count"] == 1
    assert (
        ok(await server.client.get(f"/v1/jobs/{two['job_ids'][0]}"))["replay_of"] == (second["id"])
    )
    # A window that ends before anything finished matches nothing.
    early = {"status": "failed", "until": "2001-01-01T00:00:00Z"}
    assert ok(await server.client.post(url, json=early)) == {"count": 0, "job_ids": []}
    rest = ok(
        await server.client.post(url, json={"status": "failed", "since": first["created_at"]})
    )
    assert rest["count"] == 1
    assert ok(await server.client.get(f"/v1/jobs/{rest['job_ids'][0]}"))["replay_of"] == other["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "status"),
        ({"status": "running"}, "status"),
        ({"status": []}, "status"),
        ({"status": "failed", "limit": 0}, "limit"),
        ({"status": "failed", "limit": 1001}, "limit"),
        ({"status": "failed", "since": "yesterday"}, "since"),
        ({"status": "failed", "schedule_id": "nope"}, "schedule_id"),
        ({"status": "failed", "extra": 1}, "extra"),
    ],
)
async def test_bulk_replay_refuses_bad_bodies(
    server: RunningServer, body: dict[str, Any], field: str
) -> None:
    invalid(await server.client.post("/v1/jobs/replay", json=body), field)


async def test_idempotency_conflict_names_the_job_in_errors(server: RunningServer) -> None:
    held = await create_job(server.client, idempotency_key="order-7")
    body = fails(
        await server.client.post(
            "/v1/jobs", json={"name": "n", "handler": "h", "idempotency_key": "order-7"}
        ),
        409,
        "idempotency_key_conflict",
    )
    assert body["errors"] == [
        {
            "field": "idempotency_key",
            "message": f"already used by job {held['id']}",
            "job_id": held["id"],
        }
    ]
    batch = ok(
        await server.client.post(
            "/v1/jobs/batch",
            json={"jobs": [{"name": "n", "handler": "h", "idempotency_key": "order-7"}]},
        )
    )
    assert batch[0]["errors"][0]["job_id"] == held["id"]


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


async def test_failed_push_keeps_its_http_status_as_last_error(
    push_server: RunningServer,
) -> None:
    async with trio.open_nursery() as nursery:
        receiver = await start_receiver(nursery, Receiver(SIGNING_SECRET, script=[(404, 0)]))
        created = await push_server.client.post("/v1/jobs", json=push_job(receiver.url + "/hook"))
        job = await wait_job(push_server, ok(created, 201)["id"], "completed", "failed")
        nursery.cancel_scope.cancel()
    assert job["status"] == "failed"
    assert job["last_error"] == 'HTTP 404: {"status": 404}'

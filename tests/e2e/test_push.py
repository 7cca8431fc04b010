"""Push delivery end to end: the real server signs and sends to a real receiver on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from chronos_server.api.auth import hash_key
from chronos_server.core.models import ExecutionStatus, JobStatus
from chronos_server.store.open import open_store
from chronos_worker import verify_signature
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


async def test_graceful_stop_finishes_the_push_in_flight_and_starts_no_other(
    tmp_path: Path, database_url: str
) -> None:
    """On stop, a request already sent gets the grace period to be answered, and its outcome is
    written; a push job falling due meanwhile is not sent (it waits for the next start)."""
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        allow_http_targets=True,
        allow_private_targets=True,
        shutdown_grace_seconds=5.0,
    )
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with trio.fail_after(20):
        async with trio.open_nursery() as receivers:
            receiver = await start_receiver(receivers, Receiver(SIGNING_SECRET, [(200, 1.5)]))
            url = receiver.url + "/hook"
            received = receiver.received
            async with trio.open_nursery() as nursery:
                handle = await start_server(nursery, settings)
                async with httpx.AsyncClient(base_url=handle.url, headers=headers) as client:
                    sent = await client.post("/v1/jobs", json=push_job(url))
                    await received.wait()  # the request is in flight: the receiver holds it
                    later = push_job(url, delay={"value": 1, "unit": "second"})
                    waiting = await client.post("/v1/jobs", json=later)
                    assert sent.status_code == waiting.status_code == 201
                handle.stop()
            assert handle.stopped.is_set()
            receivers.cancel_scope.cancel()

    assert len(receiver.deliveries) == 1
    async with open_store(database_url) as store:
        account = await store.account_for_key(hash_key(API_KEY))
        assert account is not None
        done = await store.get_job(account.id, sent.json()["data"]["id"])
        assert done is not None and done.status is JobStatus.COMPLETED
        history = await store.list_executions(
            account.id, job_id=done.id, statuses=None, offset=0, limit=10
        )
        assert [(e.attempt, e.status, e.http_status) for e in history.items] == [
            (1, ExecutionStatus.COMPLETED, 200)
        ]
        not_sent = await store.get_job(account.id, waiting.json()["data"]["id"])
        assert not_sent is not None
        assert not_sent.status in (JobStatus.PENDING, JobStatus.QUEUED)
        assert not_sent.attempt_count == 0


async def test_a_push_job_scheduled_ahead_arrives_at_its_instant_not_before(
    push_server: RunningServer,
) -> None:
    """Admission starts a push job ahead of its `scheduled_for` (request built and connection
    opened ahead); the request leaves at that instant, never before it, and its execution's
    `started_at` is that instant."""
    async with trio.open_nursery() as nursery:
        receiver = await start_receiver(nursery, Receiver(SIGNING_SECRET))
        due = (int(time.time() * 1000) + 1_500) / 1000
        body = push_job(receiver.url + "/hook", scheduled_for=iso_ms(due))
        created = await push_server.client.post("/v1/jobs", json=body)
        assert created.status_code == 201, created.text
        job = await wait_job(push_server, created.json()["data"]["id"], "completed", "failed")
        nursery.cancel_scope.cancel()

    assert job["status"] == "completed"
    [delivery] = receiver.deliveries
    assert delivery.chronos_ok and delivery.arrived >= due
    assert int(delivery.headers["x-chronos-timestamp"]) == int(due)
    executions = await push_server.client.get("/v1/executions", params={"job_id": job["id"]})
    [execution] = executions.json()["data"]
    assert execution["started_at"] == iso_ms(due)


def iso_ms(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


async def test_secret_rotation_with_an_overlap_keeps_old_and_new_receivers_working(
    push_server: RunningServer,
) -> None:
    """`chronos secrets rotate --overlap`: while it lasts, a receiver still holding the old secret
    accepts deliveries (Standard Webhooks library, or the SDK's `verify_signature`) and one
    already given the new secret accepts them with its unchanged single-signature code; after
    it (here: a rotation at once, since the test runs on real time), only the new one does."""
    new_secret = "whsec_" + "bmV3LXNlY3JldC1uZXctc2VjcmV0LW5ldy1zZWNyZXQtMTI="
    pipeline = push_server.handle.services.pipeline
    account, _ = await pipeline.store.ensure_account("default", pipeline.clock.now_ms())

    async def deliver(old: Receiver, new: Receiver) -> None:
        for receiver in (old, new):
            created = await push_server.client.post("/v1/jobs", json=push_job(receiver.url))
            await wait_job(push_server, created.json()["data"]["id"], "completed")

    async with trio.open_nursery() as nursery:
        old = await start_receiver(nursery, Receiver(SIGNING_SECRET))
        new = await start_receiver(nursery, Receiver(new_secret))
        until = pipeline.clock.now_ms() + 3_600_000
        await pipeline.store.rotate_signing_secret(account.id, new_secret, previous_until=until)
        await deliver(old, new)
        await pipeline.store.rotate_signing_secret(account.id, new_secret, previous_until=None)
        await deliver(old, new)
        nursery.cancel_scope.cancel()

    def verdicts(receiver: Receiver, secret: str) -> list[tuple[bool, bool, bool]]:
        return [
            (d.chronos_ok, d.standard_ok, verify_signature(secret, d.headers, d.body))
            for d in receiver.deliveries
        ]

    # (single-signature code, standardwebhooks library, SDK) per delivery: overlap, then after.
    assert verdicts(old, SIGNING_SECRET) == [(False, True, True), (False, False, False)]
    assert verdicts(new, new_secret) == [(True, True, True), (True, True, True)]

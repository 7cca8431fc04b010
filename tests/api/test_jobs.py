"""One-off jobs (§5.7, §5.8, §12.1): timing, validation, idempotency, listing and cancel (G-41)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import trio

from tests.api.helpers import (
    UUID,
    assert_timestamps,
    claim,
    claim_ready,
    create_job,
    create_schedule,
    fails,
    get_job,
    invalid,
    ms,
    ok,
    paged,
    report,
    send,
    wait_job_status,
)
from tests.conftest import RunningServer


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


async def test_create_now(server: RunningServer) -> None:
    before = _now_ms()
    job = ok(await server.client.post("/v1/jobs", json={"name": "n", "handler": "h"}), 201)
    assert UUID.match(job["id"])
    assert job["status"] == "pending" and job["schedule_id"] is None
    assert (job["timeout"], job["max_retries"]) == (30, 3)
    assert job["delivery"] == {"type": "pull"} and job["payload"] is None
    assert job["attempt_count"] == 0 and job["last_execution_id"] is None
    assert job["idempotency_key"] is None and job["finished_at"] is None
    assert_timestamps(job, "scheduled_for", "run_at", "created_at", "updated_at")
    assert job["scheduled_for"] == job["run_at"] == job["created_at"]
    assert before <= ms(job["run_at"]) <= _now_ms()


async def test_create_with_delay(server: RunningServer) -> None:
    job = await create_job(server.client, delay={"value": 2, "unit": "hour"})
    assert ms(job["run_at"]) - ms(job["created_at"]) == 2 * 3_600_000
    assert job["scheduled_for"] == job["run_at"]
    # A job due later stays pending: admission only takes due jobs.
    await trio.sleep(0.05)
    assert (await get_job(server.client, job["id"]))["status"] == "pending"


async def test_create_with_scheduled_for_in_another_offset(server: RunningServer) -> None:
    when = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=123_000)
    local = when.astimezone(timezone(timedelta(hours=2)))
    job = await create_job(server.client, scheduled_for=local.isoformat())
    expected = when.strftime("%Y-%m-%dT%H:%M:%S.123Z")
    assert job["scheduled_for"] == job["run_at"] == expected


async def test_create_with_payload_and_options(server: RunningServer) -> None:
    fields = {"payload": {"a": [1, 2]}, "timeout": 3600, "max_retries": 0, "description": "x"}
    job = await create_job(server.client, idempotency_key="k-1", **fields)
    assert {k: job[k] for k in fields} == fields and job["idempotency_key"] == "k-1"
    fetched = await get_job(server.client, job["id"])
    # The pipeline may have moved the job on since the create answer; nothing else changes.
    assert _stable(fetched) == _stable(job)


def _stable(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k not in ("status", "updated_at")}


async def test_push_job_is_stored_and_never_offered_to_pull_workers(
    server: RunningServer,
) -> None:
    # `.invalid` never resolves (RFC 2606), so whatever the push sender does stays local.
    http = {"url": "https://push-target.invalid/hook", "method": "PUT", "headers": {"X-A": "1"}}
    delivery = {"type": "push", "http": http}
    body = {"name": "p", "delivery": delivery, "payload": {"x": 1}}
    job = ok(await server.client.post("/v1/jobs", json=body), 201)
    assert job["delivery"] == delivery and job["handler"] is None
    with trio.fail_after(5):
        while True:
            fetched = await get_job(server.client, job["id"])
            if fetched["status"] not in ("pending", "admitting"):
                break
            await trio.sleep(0.01)
    assert fetched["status"] != "ready" and fetched["delivery"] == delivery


def _future(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def _naive(delta: timedelta) -> str:
    """A local wall-clock time without any offset, which the API must refuse."""
    return (datetime.now(UTC) + delta).replace(tzinfo=None).isoformat()


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("missing name", {"name": None}, "name"),
    ("pull without handler", {"handler": None}, "handler"),
    (
        "delay and scheduled_for",
        {"delay": {"value": 1, "unit": "minute"}, "scheduled_for": _future(timedelta(hours=1))},
        "delay",
    ),
    (
        "scheduled_for in the past",
        {"scheduled_for": _future(timedelta(minutes=-5))},
        "scheduled_for",
    ),
    ("scheduled_for without offset", {"scheduled_for": "2099-01-01T09:00:00"}, "scheduled_for"),
    (
        "scheduled_for naive near now",
        {"scheduled_for": _naive(timedelta(hours=1))},
        "scheduled_for",
    ),
    ("scheduled_for garbage", {"scheduled_for": "next tuesday"}, "scheduled_for"),
    ("scheduled_for too far", {"scheduled_for": _future(timedelta(days=400))}, "scheduled_for"),
    ("delay too long", {"delay": {"value": 53, "unit": "week"}}, "delay"),
    ("delay zero", {"delay": {"value": 0, "unit": "second"}}, "delay.value"),
    ("delay bad unit", {"delay": {"value": 1, "unit": "year"}}, "delay.unit"),
    ("empty payload", {"payload": {}}, "payload"),
    ("payload over 64 KB", {"payload": {"b": "x" * 65_536}}, "payload"),
    ("payload with NaN", {"payload": {"b": float("nan")}}, "payload"),
    ("idempotency_key too long", {"idempotency_key": "k" * 256}, "idempotency_key"),
    ("timeout 3601", {"timeout": 3601}, "timeout"),
    ("max_retries 26", {"max_retries": 26}, "max_retries"),
    ("unknown field", {"cron": "* * * * *"}, "cron"),
    (
        "push to private address",
        {
            "handler": None,
            "delivery": {"type": "push", "http": {"url": "https://192.168.1.1/", "method": "POST"}},
        },
        "delivery.http.url",
    ),
]


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_invalid_create_is_422(
    server: RunningServer, changes: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {"name": "j", "handler": "h", **changes}.items() if v is not None}
    invalid(await send(server.client, "POST", "/v1/jobs", body), field)
    assert ok(await server.client.get("/v1/jobs")) == []


async def test_idempotency_key_reuse_is_409(server: RunningServer) -> None:
    first = await create_job(server.client, idempotency_key="order-42")
    # The body is not compared (G-38): a different job with the same key conflicts.
    resp = await server.client.post(
        "/v1/jobs", json={"name": "other", "handler": "x", "idempotency_key": "order-42"}
    )
    body = fails(resp, 409, "idempotency_key_conflict")
    assert body["errors"] == [
        {
            "field": "idempotency_key",
            "message": f"already used by job {first['id']}",
            "job_id": first["id"],
        }
    ]
    _, paging = paged(await server.client.get("/v1/jobs"))
    assert paging["total"] == 1
    # Another key is fine.
    await create_job(server.client, idempotency_key="order-43")


async def test_list_filters_and_paging(server: RunningServer) -> None:
    c = server.client
    sched = await create_schedule(c, handler="s")
    spawned = ok(await c.post(f"/v1/schedules/{sched['id']}/run"), 201)
    await trio.sleep(0.003)
    a = await create_job(c, handler="a")
    await trio.sleep(0.003)
    later = await create_job(c, handler="a", delay={"value": 1, "unit": "day"})
    await wait_job_status(c, a["id"], "ready")

    data, paging = paged(await c.get("/v1/jobs"))
    assert [j["id"] for j in data] == [later["id"], a["id"], spawned["id"]]
    assert paging == {
        "page": 1,
        "pages": 1,
        "size": 20,
        "total": 3,
        "total_estimated": False,
        "next_cursor": None,
    }
    data, _ = paged(await c.get("/v1/jobs", params={"handler": "a"}))
    assert [j["id"] for j in data] == [later["id"], a["id"]]
    data, _ = paged(await c.get("/v1/jobs", params={"schedule_id": sched["id"]}))
    assert [j["id"] for j in data] == [spawned["id"]]
    data, _ = paged(await c.get("/v1/jobs", params={"status": "pending"}))
    assert [j["id"] for j in data] == [later["id"]]
    data, _ = paged(await c.get("/v1/jobs", params={"status": "pending", "handler": "s"}))
    assert data == []
    data, paging = paged(await c.get("/v1/jobs", params={"size": 2, "page": 2}))
    assert [j["id"] for j in data] == [spawned["id"]]
    assert paging == {
        "page": 2,
        "pages": 2,
        "size": 2,
        "total": 3,
        "total_estimated": False,
        "next_cursor": None,
    }
    data, paging = paged(await c.get("/v1/jobs", params={"size": 2, "page": 3}))
    assert data == []
    assert paging == {
        "page": 3,
        "pages": 2,
        "size": 2,
        "total": 3,
        "total_estimated": False,
        "next_cursor": None,
    }

    # Keyset paging (extension): next_cursor while more follow, then null.
    data, paging = paged(await c.get("/v1/jobs", params={"size": 2}))
    assert [j["id"] for j in data] == [later["id"], a["id"]] and paging["next_cursor"]
    data, paging = paged(
        await c.get("/v1/jobs", params={"size": 2, "cursor": paging["next_cursor"]})
    )
    assert [j["id"] for j in data] == [spawned["id"]] and paging["next_cursor"] is None
    assert paging["total"] == 3 and paging["total_estimated"] is False
    _, paging = paged(await c.get("/v1/jobs", params={"size": 1, "handler": "a"}))
    data, _ = paged(
        await c.get("/v1/jobs", params={"handler": "a", "cursor": paging["next_cursor"]})
    )
    assert [j["id"] for j in data] == [a["id"]]
    bad = fails(await c.get("/v1/jobs", params={"cursor": "nonsense"}), 422, "validation_error")
    assert bad["errors"][0]["field"] == "cursor"
    both = {"cursor": paging["next_cursor"], "page": 2}
    bad = fails(await c.get("/v1/jobs", params=both), 422, "validation_error")
    assert bad["errors"][0]["field"] == "cursor"
    elsewhere = {"cursor": paging["next_cursor"]}
    bad = fails(await c.get("/v1/executions", params=elsewhere), 422, "validation_error")
    assert bad["errors"][0]["field"] == "cursor"
    paged(await c.get("/v1/executions", params={"size": 1}))
    schedules, paging = paged(await c.get("/v1/schedules", params={"size": 1}))
    assert len(schedules) == 1 and paging["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"schedule_id": "nope"}, "schedule_id"),
        ({"size": "0"}, "size"),
        ({"size": "101"}, "size"),
        ({"size": "x"}, "size"),
    ],
)
async def test_bad_list_query_is_422(
    server: RunningServer, params: dict[str, str], field: str
) -> None:
    invalid(await server.client.get("/v1/jobs", params=params), field)


async def test_get_missing_or_malformed(server: RunningServer) -> None:
    missing = uuid.uuid4()
    fails(await server.client.get(f"/v1/jobs/{missing}"), 404, "job_not_found")
    fails(await server.client.post(f"/v1/jobs/{missing}/cancel"), 404, "job_not_found")
    invalid(await server.client.get("/v1/jobs/xyz"), "id")
    invalid(await server.client.post("/v1/jobs/xyz/cancel"), "id")


async def test_cancel_pending_job(server: RunningServer) -> None:
    job = await create_job(server.client, delay={"value": 1, "unit": "hour"})
    cancelled = ok(await server.client.post(f"/v1/jobs/{job['id']}/cancel"))
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    assert (await get_job(server.client, job["id"]))["status"] == "cancelled"
    fails(await server.client.post(f"/v1/jobs/{job['id']}/cancel"), 409, "job_not_cancellable")


async def test_cancel_ready_job_is_never_claimed(server: RunningServer) -> None:
    c = server.client
    job = await create_job(c)
    await wait_job_status(c, job["id"], "ready")
    assert ok(await c.post(f"/v1/jobs/{job['id']}/cancel"))["status"] == "cancelled"
    assert await claim(c, ["h"]) is None


async def test_cancel_running_or_finished_is_409(server: RunningServer) -> None:
    c = server.client
    job = await create_job(c)
    claimed = await claim_ready(c, job["id"])
    body = fails(await c.post(f"/v1/jobs/{job['id']}/cancel"), 409, "job_not_cancellable")
    assert body["errors"] == []
    assert (await get_job(c, job["id"]))["status"] == "running"
    ok(await report(c, claimed["execution_id"], status="completed"))
    fails(await c.post(f"/v1/jobs/{job['id']}/cancel"), 409, "job_not_cancellable")
    assert (await get_job(c, job["id"]))["status"] == "completed"


async def test_payload_of_exactly_64_kb_is_accepted(server: RunningServer) -> None:
    payload = {"b": "x" * (65_536 - len('{"b":""}'))}
    job = await create_job(server.client, payload=payload)
    assert job["payload"] == payload


async def test_cancel_retrying_job(server: RunningServer) -> None:
    c = server.client
    job = await create_job(c)
    claimed = await claim_ready(c, job["id"])
    ok(await report(c, claimed["execution_id"], status="failed", error={"message": "x"}))
    assert (await get_job(c, job["id"]))["status"] == "retrying"  # next attempt in 1-2 s
    cancelled = ok(await c.post(f"/v1/jobs/{job['id']}/cancel"))
    assert cancelled["status"] == "cancelled" and cancelled["attempt_count"] == 1
    assert await claim(c, ["h"]) is None

"""Schedule list/get (§5.3), PATCH (§5.4, G-31), archive (§5.5, G-30) and run-now (§5.6)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import trio

from tests.api.helpers import (
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
    spec_paging,
    wait_job_status,
)
from tests.conftest import RunningServer


async def _three_schedules(server: RunningServer) -> list[str]:
    ids = []
    for name, handler in [("a1", "a"), ("a2", "a"), ("b1", "b")]:
        ids.append((await create_schedule(server.client, name=name, handler=handler))["id"])
        await trio.sleep(0.003)  # distinct created_at, so "newest first" is observable
    ok(await server.client.post(f"/v1/schedules/{ids[2]}/archive"))
    return ids


async def test_list_is_newest_first_with_filters(server: RunningServer) -> None:
    a1, a2, b1 = await _three_schedules(server)
    c = server.client
    data, paging = paged(await c.get("/v1/schedules"))
    assert [s["id"] for s in data] == [b1, a2, a1]
    assert spec_paging(paging) == {"page": 1, "pages": 1, "size": 20, "total": 3}
    data, paging = paged(await c.get("/v1/schedules", params={"status": "archived"}))
    assert [s["id"] for s in data] == [b1] and paging["total"] == 1
    data, _ = paged(await c.get("/v1/schedules", params={"status": "active"}))
    assert [s["id"] for s in data] == [a2, a1]
    data, _ = paged(await c.get("/v1/schedules", params={"handler": "a"}))
    assert [s["id"] for s in data] == [a2, a1]
    data, paging = paged(
        await c.get("/v1/schedules", params={"handler": "a", "status": "archived"})
    )
    assert data == [] and spec_paging(paging) == {"page": 1, "pages": 0, "size": 20, "total": 0}


async def test_list_paging(server: RunningServer) -> None:
    a1, a2, _ = await _three_schedules(server)
    data, paging = paged(await server.client.get("/v1/schedules", params={"size": 1, "page": 2}))
    assert [s["id"] for s in data] == [a2]
    assert spec_paging(paging) == {"page": 2, "pages": 3, "size": 1, "total": 3}
    data, paging = paged(await server.client.get("/v1/schedules", params={"size": 2, "page": 2}))
    assert [s["id"] for s in data] == [a1]
    assert spec_paging(paging) == {"page": 2, "pages": 2, "size": 2, "total": 3}
    data, paging = paged(await server.client.get("/v1/schedules", params={"size": 1, "page": 9}))
    assert data == [] and spec_paging(paging) == {"page": 9, "pages": 3, "size": 1, "total": 3}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"size": "0"}, "size"),
        ({"size": "101"}, "size"),
        ({"size": "x"}, "size"),
        ({"page": "0"}, "page"),
        ({"page": "1.5"}, "page"),
        ({"status": "paused"}, "status"),
    ],
)
async def test_bad_list_query_is_422(
    server: RunningServer, params: dict[str, str], field: str
) -> None:
    invalid(await server.client.get("/v1/schedules", params=params), field)


async def test_size_100_is_allowed(server: RunningServer) -> None:
    _, paging = paged(await server.client.get("/v1/schedules", params={"size": 100}))
    assert paging["size"] == 100


async def test_get_missing_or_malformed_id(server: RunningServer) -> None:
    missing = uuid.uuid4()
    c = server.client
    fails(await c.get(f"/v1/schedules/{missing}"), 404, "schedule_not_found")
    fails(await c.patch(f"/v1/schedules/{missing}", json={"timeout": 5}), 404, "schedule_not_found")
    fails(await c.post(f"/v1/schedules/{missing}/archive"), 404, "schedule_not_found")
    fails(await c.post(f"/v1/schedules/{missing}/run"), 404, "schedule_not_found")
    for resp in [
        await c.get("/v1/schedules/not-a-uuid"),
        await c.patch("/v1/schedules/not-a-uuid", json={"timeout": 5}),
        await c.post("/v1/schedules/123/archive"),
        await c.post("/v1/schedules/123/run"),
    ]:
        invalid(resp, "id")


async def test_patch_is_partial(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c, description="d", payload={"k": 1}, runs=5)
    await trio.sleep(0.003)
    resp = await c.patch(f"/v1/schedules/{s['id']}", json={"timeout": 60, "name": "renamed"})
    updated = ok(resp)
    assert updated["timeout"] == 60 and updated["name"] == "renamed"
    unchanged = {k: v for k, v in s.items() if k not in ("timeout", "name", "updated_at")}
    assert {k: updated[k] for k in unchanged} == unchanged
    assert ms(updated["updated_at"]) > ms(s["updated_at"])
    assert ok(await c.get(f"/v1/schedules/{s['id']}")) == updated


async def test_patch_null_clears_nullable_fields(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c, description="d", payload={"k": 1}, runs=5)
    body = {"description": None, "payload": None, "runs": None}
    updated = ok(await c.patch(f"/v1/schedules/{s['id']}", json=body))
    assert (updated["description"], updated["payload"], updated["runs"]) == (None, None, None)
    assert updated["handler"] == "h" and updated["cron"] == s["cron"]


async def test_patch_cron_replaces_interval_and_recomputes(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c, interval={"value": 1, "unit": "hour"})
    updated = ok(await c.patch(f"/v1/schedules/{s['id']}", json={"cron": "0 0 1 1 *"}))
    assert updated["cron"] == "0 0 1 1 *" and updated["interval"] is None
    assert updated["next_run_at"].endswith("-01-01T00:00:00.000Z")
    assert datetime.fromisoformat(updated["next_run_at"]) > datetime.now(UTC)


async def test_patch_interval_replaces_cron(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c)
    body = {"interval": {"value": 5, "unit": "minute"}}
    updated = ok(await c.patch(f"/v1/schedules/{s['id']}", json=body))
    assert updated["cron"] is None and updated["interval"] == {"value": 5, "unit": "minute"}
    delta = ms(updated["next_run_at"]) - ms(updated["updated_at"])
    assert 0 < delta <= 300_000


async def test_patch_timezone_recomputes_next_run(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c, cron="0 12 * * *")
    updated = ok(await c.patch(f"/v1/schedules/{s['id']}", json={"timezone": "Asia/Tokyo"}))
    assert updated["timezone"] == "Asia/Tokyo"
    # 12:00 in Tokyo is 03:00 UTC.
    assert updated["next_run_at"][11:] == "03:00:00.000Z"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "* * * * *", "interval": {"value": 1, "unit": "hour"}}, "cron"),
        ({"cron": "@hourly"}, "cron"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": 26}, "max_retries"),
        ({"name": None}, "name"),
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"stop_at": "2001-01-01T00:00:00Z"}, "stop_at"),
        ({"payload": {}}, "payload"),
        ({"colour": "blue"}, "colour"),
        ({"interval": {"value": 1, "unit": "fortnight"}}, "interval.unit"),
        ({"interval": {"value": 366, "unit": "day"}}, "interval"),
        ({"runs": 2**31}, "runs"),
        ({"payload": {"x": float("nan")}}, "payload"),
    ],
)
async def test_invalid_patch_is_422_and_changes_nothing(
    server: RunningServer, body: dict[str, object], field: str
) -> None:
    s = await create_schedule(server.client)
    invalid(await send(server.client, "PATCH", f"/v1/schedules/{s['id']}", body), field)
    assert ok(await server.client.get(f"/v1/schedules/{s['id']}")) == s


async def test_patch_removing_handler_of_pull_schedule_is_400(server: RunningServer) -> None:
    s = await create_schedule(server.client)
    resp = await server.client.patch(f"/v1/schedules/{s['id']}", json={"handler": None})
    assert fails(resp, 400, "handler_required_for_pull")["errors"] == []
    assert ok(await server.client.get(f"/v1/schedules/{s['id']}"))["handler"] == "h"


async def test_lowering_runs_to_run_count_completes(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c, runs=5)
    ok(await c.post(f"/v1/schedules/{s['id']}/run"), 201)
    done = ok(await c.patch(f"/v1/schedules/{s['id']}", json={"runs": 1}))
    assert done["status"] == "completed" and done["run_count"] == 1
    assert done["next_run_at"] is None and done["completed_at"] is not None
    fails(await c.patch(f"/v1/schedules/{s['id']}", json={"runs": 9}), 409, "schedule_completed")
    fails(await c.post(f"/v1/schedules/{s['id']}/archive"), 409, "schedule_completed")
    fails(await c.post(f"/v1/schedules/{s['id']}/run"), 409, "schedule_completed")


async def test_moving_stop_at_before_next_slot_completes(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c, interval={"value": 1, "unit": "day"})
    stop_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    done = ok(await c.patch(f"/v1/schedules/{s['id']}", json={"stop_at": stop_at}))
    assert done["status"] == "completed" and done["next_run_at"] is None


async def test_archive_cancels_unstarted_jobs(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c)
    spawned = [ok(await c.post(f"/v1/schedules/{s['id']}/run"), 201) for _ in range(2)]
    other = await create_job(c)
    await wait_job_status(c, spawned[0]["id"], "ready")
    archived = ok(await c.post(f"/v1/schedules/{s['id']}/archive"))
    assert archived["status"] == "archived" and archived["next_run_at"] is None
    assert ms(archived["archived_at"]) >= ms(s["created_at"])
    for job in spawned:
        cancelled = await get_job(c, job["id"])
        assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    assert (await get_job(c, other["id"]))["status"] in ("pending", "admitting", "queued", "ready")
    fails(await c.post(f"/v1/schedules/{s['id']}/archive"), 409, "schedule_archived")
    fails(await c.patch(f"/v1/schedules/{s['id']}", json={"timeout": 5}), 409, "schedule_archived")
    fails(await c.post(f"/v1/schedules/{s['id']}/run"), 409, "schedule_archived")


async def test_archive_lets_running_attempt_finish_without_retry(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c)
    job = ok(await c.post(f"/v1/schedules/{s['id']}/run"), 201)
    claimed = await claim_ready(c, job["id"])
    ok(await c.post(f"/v1/schedules/{s['id']}/archive"))
    assert (await get_job(c, job["id"]))["status"] == "running"
    ok(await report(c, claimed["execution_id"], status="failed", error={"message": "boom"}))
    # G-30: a retryable failure of an archived schedule's job ends as cancelled, not retrying.
    assert (await get_job(c, job["id"]))["status"] == "cancelled"


async def test_run_now_spawns_a_manual_job(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c, payload={"p": 1}, timeout=45, max_retries=2)
    job = ok(await c.post(f"/v1/schedules/{s['id']}/run"), 201)
    assert job["schedule_id"] == s["id"] and job["status"] == "pending"
    assert (job["name"], job["handler"], job["payload"]) == ("sched", "h", {"p": 1})
    assert (job["timeout"], job["max_retries"]) == (45, 2)
    assert job["scheduled_for"] == job["run_at"]
    after = ok(await c.get(f"/v1/schedules/{s['id']}"))
    assert after["run_count"] == 1 and after["next_run_at"] == s["next_run_at"]
    claimed = await claim_ready(c, job["id"])
    assert claimed["attempt"] == 1
    execution = ok(await c.get(f"/v1/executions/{claimed['execution_id']}"))
    assert execution["trigger"] == "manual" and execution["job_id"] == job["id"]


async def test_run_now_counts_toward_runs(server: RunningServer) -> None:
    s = await create_schedule(server.client, runs=1)
    ok(await server.client.post(f"/v1/schedules/{s['id']}/run"), 201)
    after = ok(await server.client.get(f"/v1/schedules/{s['id']}"))
    assert after["status"] == "completed" and after["run_count"] == 1

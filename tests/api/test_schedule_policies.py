"""Schedule policies over HTTP (README "Schedule policies"): `catch_up`, `catch_up_limit` and
`overlap` on create and PATCH, `paused_at`, and `POST /v1/schedules/:id/pause` and `/resume`."""

from __future__ import annotations

import uuid

import pytest

from chronos_server.api.auth import display_prefix, hash_key
from tests.api.helpers import create_schedule, fails, invalid, ms, ok, send
from tests.conftest import RunningServer

POLICY_DEFAULTS = {
    "catch_up": "latest",
    "catch_up_limit": 10,
    "overlap": "allow",
    "paused_at": None,
}


async def test_defaults_are_todays_behaviour(server: RunningServer) -> None:
    s = await create_schedule(server.client)
    assert {k: s[k] for k in POLICY_DEFAULTS} == POLICY_DEFAULTS
    assert ok(await server.client.get(f"/v1/schedules/{s['id']}")) == s


async def test_create_with_policies(server: RunningServer) -> None:
    body = {"catch_up": "all", "catch_up_limit": 1000, "overlap": "cancel_previous"}
    s = await create_schedule(server.client, **body)
    assert {k: s[k] for k in body} == body
    [listed] = ok(await server.client.get("/v1/schedules"))
    assert listed == s


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"catch_up": "sometimes"}, "catch_up"),
        ({"catch_up": None}, "catch_up"),
        ({"catch_up": "LATEST"}, "catch_up"),
        ({"catch_up_limit": 0}, "catch_up_limit"),
        ({"catch_up_limit": 1001}, "catch_up_limit"),
        ({"catch_up_limit": "5"}, "catch_up_limit"),
        ({"catch_up_limit": 2.5}, "catch_up_limit"),
        ({"catch_up_limit": True}, "catch_up_limit"),
        ({"overlap": "forbid"}, "overlap"),
        ({"overlap": ["skip"]}, "overlap"),
    ],
)
async def test_invalid_policy_on_create_is_422_naming_it(
    server: RunningServer, body: dict[str, object], field: str
) -> None:
    full = {"name": "s", "handler": "h", "cron": "0 0 1 1 *", **body}
    invalid(await send(server.client, "POST", "/v1/schedules", full), field)
    assert ok(await server.client.get("/v1/schedules")) == []


async def test_a_whole_float_limit_is_read_as_an_integer(server: RunningServer) -> None:
    s = await create_schedule(server.client, catch_up="all", catch_up_limit=25.0)
    assert s["catch_up_limit"] == 25


async def test_patch_policies(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c, catch_up="all", catch_up_limit=5)
    path = f"/v1/schedules/{s['id']}"
    updated = ok(await c.patch(path, json={"overlap": "queue"}))
    assert (updated["overlap"], updated["catch_up"], updated["catch_up_limit"]) == (
        "queue",
        "all",
        5,
    )  # absent = unchanged
    updated = ok(await c.patch(path, json={"catch_up": "none", "catch_up_limit": 7}))
    assert (updated["catch_up"], updated["catch_up_limit"], updated["overlap"]) == (
        "none",
        7,
        "queue",
    )
    assert updated["next_run_at"] == s["next_run_at"]  # a policy does not move the cadence
    assert ok(await c.get(path)) == updated


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"catch_up": None}, "catch_up"),
        ({"catch_up_limit": None}, "catch_up_limit"),
        ({"overlap": None}, "overlap"),
        ({"overlap": "replace"}, "overlap"),
        ({"catch_up_limit": -1}, "catch_up_limit"),
        ({"paused_at": "2030-01-01T00:00:00Z"}, "paused_at"),  # read-only: pause/resume set it
    ],
)
async def test_invalid_policy_patch_is_422_and_changes_nothing(
    server: RunningServer, body: dict[str, object], field: str
) -> None:
    s = await create_schedule(server.client)
    invalid(await send(server.client, "PATCH", f"/v1/schedules/{s['id']}", body), field)
    assert ok(await server.client.get(f"/v1/schedules/{s['id']}")) == s


async def test_pause_and_resume(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c, interval={"value": 1, "unit": "hour"})
    path = f"/v1/schedules/{s['id']}"

    paused = ok(await c.post(f"{path}/pause"))
    assert paused["status"] == "active"  # the spec's statuses are unchanged
    assert paused["paused_at"] is not None and paused["next_run_at"] is None
    assert ms(paused["updated_at"]) >= ms(paused["paused_at"])
    assert ok(await c.get(path)) == paused
    assert ok(await c.post(f"{path}/pause")) == paused  # again: a no-op, 200
    listed = ok(await c.get("/v1/schedules", params={"status": "active"}))
    assert [x["id"] for x in listed] == [s["id"]]

    resumed = ok(await c.post(f"{path}/resume"))
    assert resumed["paused_at"] is None
    assert resumed["next_run_at"] == s["next_run_at"]  # nothing was missed meanwhile
    assert ok(await c.post(f"{path}/resume")) == resumed  # not paused: a no-op, 200


async def test_patch_of_a_paused_schedule_keeps_it_paused(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c, interval={"value": 1, "unit": "hour"})
    path = f"/v1/schedules/{s['id']}"
    paused = ok(await c.post(f"{path}/pause"))
    patched = ok(await c.patch(path, json={"timeout": 9, "cron": "0 0 1 1 *"}))
    assert patched["timeout"] == 9 and patched["cron"] == "0 0 1 1 *"
    assert (patched["paused_at"], patched["next_run_at"]) == (paused["paused_at"], None)
    resumed = ok(await c.post(f"{path}/resume"))
    # The new cadence's slot, recomputed by the PATCH, is where it goes on.
    assert resumed["next_run_at"].endswith("-01-01T00:00:00.000Z")


async def test_run_now_and_archive_work_on_a_paused_schedule(server: RunningServer) -> None:
    c = server.client
    s = await create_schedule(c)
    path = f"/v1/schedules/{s['id']}"
    paused = ok(await c.post(f"{path}/pause"))
    job = ok(await c.post(f"{path}/run"), 201)
    assert job["schedule_id"] == s["id"]
    after = ok(await c.get(path))
    assert after["paused_at"] == paused["paused_at"] and after["run_count"] == 1
    archived = ok(await c.post(f"{path}/archive"))
    assert archived["status"] == "archived" and archived["paused_at"] is None
    assert ok(await c.get(f"/v1/jobs/{job['id']}"))["status"] == "cancelled"


async def test_pause_and_resume_refusals(server: RunningServer) -> None:
    c = server.client
    for action in ("pause", "resume"):
        path = f"/v1/schedules/{uuid.uuid4()}/{action}"
        fails(await c.post(path), 404, "schedule_not_found")
        invalid(await c.post(f"/v1/schedules/not-a-uuid/{action}"), "id")
        invalid(await c.post(f"/v1/schedules/{uuid.uuid4()}/{action}?x=1"), "x")

    archived = await create_schedule(c)
    ok(await c.post(f"/v1/schedules/{archived['id']}/archive"))
    completed = await create_schedule(c, runs=1)
    ok(await c.post(f"/v1/schedules/{completed['id']}/run"), 201)
    for action in ("pause", "resume"):
        resp = await c.post(f"/v1/schedules/{archived['id']}/{action}")
        fails(resp, 409, "schedule_archived")
        resp = await c.post(f"/v1/schedules/{completed['id']}/{action}")
        fails(resp, 409, "schedule_completed")
    assert (await c.get(f"/v1/schedules/{archived['id']}/pause")).status_code == 405


async def test_another_accounts_schedule_cannot_be_paused(server: RunningServer) -> None:
    s = await create_schedule(server.client)
    store = server.handle.services.pipeline.store
    other_key = "chrns_" + "P" * 40
    account, _ = await store.ensure_account("other", 0)
    await store.add_api_key(account.id, hash_key(other_key), display_prefix(other_key), 0)
    headers = {"Authorization": f"Bearer {other_key}"}
    for action in ("pause", "resume"):
        resp = await server.client.post(f"/v1/schedules/{s['id']}/{action}", headers=headers)
        fails(resp, 404, "schedule_not_found")
    assert ok(await server.client.get(f"/v1/schedules/{s['id']}"))["paused_at"] is None


async def test_openapi_documents_the_policies(server: RunningServer) -> None:
    doc = (await server.client.get("/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for name in ("ScheduleCreate", "SchedulePatch"):
        props = schemas[name]["properties"]
        assert props["catch_up"]["enum"] == ["latest", "none", "all"]
        assert props["overlap"]["enum"] == ["allow", "skip", "queue", "cancel_previous"]
        assert (props["catch_up_limit"]["minimum"], props["catch_up_limit"]["maximum"]) == (1, 1000)
    assert schemas["ScheduleCreate"]["properties"]["catch_up"]["default"] == "latest"
    assert set(POLICY_DEFAULTS) <= set(schemas["Schedule"]["required"])
    for action in ("pause", "resume"):
        op = doc["paths"][f"/v1/schedules/{{id}}/{action}"]["post"]
        assert op["operationId"] == f"{action}Schedule"
        assert {"200", "404", "409", "422"} <= set(op["responses"])

"""Per-handler limits through the API (README "Handler limits"): the four endpoints, their
validation (422 naming the field), the waiting jobs shown as `queued` with the reason in
`GET /v1/stats`, and removal releasing them at once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.helpers import fails, invalid, ok, paged, send
from tests.conftest import RunningServer
from tests.pg import eventually

LIMITS = "/v1/handlers/h/limits"


async def stats_for(client: httpx.AsyncClient, handler: str) -> dict[str, Any]:
    rows = ok(await client.get("/v1/stats"))["handlers"]
    [row] = [r for r in rows if r["handler"] == handler]
    return dict(row)


async def test_set_get_list_and_delete(server: RunningServer) -> None:
    client = server.client
    fails(await client.get(LIMITS), 404, "handler_limits_not_found")
    assert ok(await client.get("/v1/handlers/limits")) == []
    set_ = ok(await client.put(LIMITS, json={"max_running": 2, "max_per_second": 7.5}))
    assert set_["handler"] == "h"
    assert (set_["max_running"], set_["max_per_second"]) == (2, 7.5)
    assert ok(await client.get(LIMITS)) == set_
    # Replaced as a whole: absent is null. A handler name is read as a job's (trimmed).
    again = ok(await client.put("/v1/handlers/%20h%20/limits", json={"max_per_second": 3}))
    assert (again["handler"], again["max_running"], again["max_per_second"]) == ("h", None, 3.0)
    ok(await client.put("/v1/handlers/a%2Fb/limits", json={"max_running": 1}))
    listed = ok(await client.get("/v1/handlers/limits"))
    assert [x["handler"] for x in listed] == ["a/b", "h"]
    gone = await client.delete(LIMITS)
    assert gone.status_code == 204 and gone.content == b""
    fails(await client.delete(LIMITS), 404, "handler_limits_not_found")
    fails(await client.get(LIMITS), 404, "handler_limits_not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "max_running"),
        ({"max_running": None, "max_per_second": None}, "max_running"),
        ({"max_running": 0}, "max_running"),
        ({"max_running": 1.5}, "max_running"),
        ({"max_running": "2"}, "max_running"),
        ({"max_running": True}, "max_running"),
        ({"max_running": 1_000_001}, "max_running"),
        ({"max_per_second": 0}, "max_per_second"),
        ({"max_per_second": -1}, "max_per_second"),
        ({"max_per_second": "fast"}, "max_per_second"),
        ({"max_per_second": 1e9}, "max_per_second"),
        ({"max_per_second": float("nan")}, "max_per_second"),
        ({"max_running": 1, "burst": 3}, "burst"),
    ],
)
async def test_bad_limits_are_refused_naming_the_field(
    server: RunningServer, body: dict[str, Any], field: str
) -> None:
    invalid(await send(server.client, "PUT", LIMITS, body), field)
    fails(await server.client.get(LIMITS), 404, "handler_limits_not_found")  # nothing written


async def test_bad_bodies_and_names_are_refused(server: RunningServer) -> None:
    client = server.client
    fails(await client.put(LIMITS, content=b"[1]"), 400, "bad_request")
    fails(await client.put(LIMITS, content=b"{"), 400, "bad_request")
    for name in ("%20%20", "x" * 256, "a%00b"):
        invalid(await client.put(f"/v1/handlers/{name}/limits", json={"max_running": 1}), "name")
        invalid(await client.get(f"/v1/handlers/{name}/limits"), "name")
        invalid(await client.delete(f"/v1/handlers/{name}/limits"), "name")
    ok(await client.put(f"/v1/handlers/{'x' * 255}/limits", json={"max_running": 1}))


async def test_waiting_jobs_show_as_queued_with_the_reason_and_go_when_the_limit_goes(
    server: RunningServer,
) -> None:
    client = server.client
    ok(await client.put(LIMITS, json={"max_running": 1}))
    ids = [ok(await client.post("/v1/jobs", json={"name": "j", "handler": "h"}), 201)["id"]
           for _ in range(3)]  # fmt: skip

    async def two_wait() -> bool:
        return bool((await stats_for(client, "h"))["limited"] == 2)

    await eventually(two_wait)
    row = await stats_for(client, "h")
    assert row["counts"]["queued"] == 2 and row["counts"]["ready"] == 1
    assert row["limits"] == {"max_running": 1, "max_per_second": None}
    assert row["queued_reason"] == "max_running"
    queued, _ = paged(await client.get("/v1/jobs", params={"status": "queued", "handler": "h"}))
    assert sorted(j["id"] for j in queued) == sorted(ids[1:])
    assert ok(await client.get(f"/v1/jobs/{ids[2]}"))["status"] == "queued"
    assert (await client.delete(LIMITS)).status_code == 204
    ready, _ = paged(await client.get("/v1/jobs", params={"status": "ready", "handler": "h"}))
    assert len(ready) == 3  # at once: the removal released them in its own transaction
    row = await stats_for(client, "h")
    assert (row["limits"], row["limited"], row["queued_reason"]) == (None, 0, None)


async def test_a_raised_limit_lets_waiting_jobs_go_without_waiting_for_a_finish(
    server: RunningServer,
) -> None:
    client = server.client
    ok(await client.put(LIMITS, json={"max_running": 1}))
    for _ in range(3):
        ok(await client.post("/v1/jobs", json={"name": "j", "handler": "h"}), 201)

    async def ready(n: int) -> bool:
        return bool((await stats_for(client, "h"))["counts"]["ready"] == n)

    await eventually(lambda: ready(1))
    ok(await client.put(LIMITS, json={"max_running": 3}))
    await eventually(lambda: ready(3))

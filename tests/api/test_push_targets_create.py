"""Create-time push target checks through HTTP: non-ASCII header names and numeric or embedded
IPv4 URL hosts are a 422 naming the field, on job create, schedule create and schedule PATCH."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import create_schedule, invalid, ok
from tests.conftest import RunningServer


def _push(url: str = "https://example.com/hook", **headers: str) -> dict[str, Any]:
    return {"type": "push", "http": {"url": url, "method": "POST", "headers": headers}}


@pytest.mark.parametrize("name", ["X-\u00dcnicode", "\uff38-A", "X-\u0661"])
async def test_non_ascii_header_name_is_422(server: RunningServer, name: str) -> None:
    field = f"delivery.http.headers.{name}"
    body = {"name": "j", "delivery": _push(**{name: "v"})}
    [error] = invalid(await server.client.post("/v1/jobs", json=body), field)
    assert error["message"] == "is not a valid header name"
    schedule = await create_schedule(server.client)
    path = f"/v1/schedules/{schedule['id']}"
    invalid(await server.client.patch(path, json={"delivery": _push(**{name: "v"})}), field)
    assert ok(await server.client.get(path)) == schedule
    assert ok(await server.client.get("/v1/jobs")) == []


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",
        "0x7f000001",
        "127.1",
        "0177.0.0.1",
        "localhost.",
        "LOCALHOST",
        "[::ffff:127.0.0.1]",
        "[::127.0.0.1]",
        "[2002:7f00:1::]",
        "[64:ff9b::7f00:1]",
        "[64:ff9b:1::7f00:1]",
    ],
)
async def test_numeric_and_embedded_ipv4_hosts_are_422(server: RunningServer, host: str) -> None:
    delivery = _push(f"https://{host}/hook")
    invalid(
        await server.client.post("/v1/jobs", json={"name": "j", "delivery": delivery}),
        "delivery.http.url",
    )
    body = {"name": "s", "cron": "0 0 1 1 *", "delivery": delivery}
    invalid(await server.client.post("/v1/schedules", json=body), "delivery.http.url")
    assert ok(await server.client.get("/v1/jobs")) == []
    assert ok(await server.client.get("/v1/schedules")) == []

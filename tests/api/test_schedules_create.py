"""`POST /v1/schedules` (spec §5.2): defaults on success and every validation outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.api.helpers import UUID, assert_timestamps, fails, invalid, ms, ok, send
from tests.conftest import RunningServer

VALID: dict[str, Any] = {
    "name": "nightly",
    "handler": "h",
    "interval": {"value": 1, "unit": "hour"},
}
DROP = object()


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def _push(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    http: dict[str, Any] = {"url": url, "method": "POST"}
    if headers is not None:
        http["headers"] = headers
    return {"type": "push", "http": http}


def _body(**changes: Any) -> dict[str, Any]:
    body = {**VALID, **changes}
    return {k: v for k, v in body.items() if v is not DROP}


async def test_create_with_interval_fills_defaults(server: RunningServer) -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    data = ok(await server.client.post("/v1/schedules", json=VALID), 201)
    assert UUID.match(data["id"])
    assert data["status"] == "active" and data["run_count"] == 0
    assert data["timezone"] == "UTC"
    assert data["timeout"] == 30 and data["max_retries"] == 3
    assert data["delivery"] == {"type": "pull"}
    assert data["interval"] == {"value": 1, "unit": "hour"} and data["cron"] is None
    assert data["description"] is None and data["payload"] is None
    assert data["runs"] is None and data["stop_at"] is None
    assert data["last_run_at"] is None and data["completed_at"] is None
    assert data["archived_at"] is None
    assert_timestamps(data, "next_run_at", "created_at", "updated_at")
    # G-25: anchor = creation time truncated to the second; first slot one interval later.
    created = ms(data["created_at"])
    assert before <= created
    assert ms(data["next_run_at"]) == created - created % 1000 + 3_600_000


async def test_create_with_cron_in_a_timezone(server: RunningServer) -> None:
    body = _body(interval=DROP, cron="0  9 * * 1-5", timezone="America/New_York")
    body.update(payload={"tenant": "t_1"}, timeout=120, max_retries=0, runs=10)
    data = ok(await server.client.post("/v1/schedules", json=body), 201)
    assert data["cron"] == "0 9 * * 1-5" and data["interval"] is None
    assert data["timezone"] == "America/New_York"
    assert data["payload"] == {"tenant": "t_1"}
    assert (data["timeout"], data["max_retries"], data["runs"]) == (120, 0, 10)
    next_run = datetime.fromisoformat(data["next_run_at"])
    assert next_run > datetime.now(UTC)
    local = next_run.astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute, local.weekday() < 5) == (9, 0, True)
    fetched = ok(await server.client.get(f"/v1/schedules/{data['id']}"))
    assert fetched == data


async def test_create_push_schedule_echoes_delivery(server: RunningServer) -> None:
    delivery = _push("https://example.com/hooks/chronos", {"X-App-Secret": "s3cr3t"})
    body = _body(handler=DROP, delivery=delivery)
    data = ok(await server.client.post("/v1/schedules", json=body), 201)
    assert data["delivery"] == delivery and data["handler"] is None


async def test_stop_at_after_first_slot_is_kept(server: RunningServer) -> None:
    stop_at = datetime.now(UTC) + timedelta(days=2)
    data = ok(
        await server.client.post("/v1/schedules", json=_body(stop_at=stop_at.isoformat())), 201
    )
    assert abs(ms(data["stop_at"]) - int(stop_at.timestamp() * 1000)) <= 1


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("missing name", {"name": DROP}, "name"),
    ("empty name", {"name": ""}, "name"),
    ("long name", {"name": "n" * 256}, "name"),
    ("long description", {"description": "d" * 1001}, "description"),
    ("both cron and interval", {"cron": "* * * * *"}, "cron"),
    ("neither cron nor interval", {"interval": DROP}, "cron"),
    ("cron macro", {"interval": DROP, "cron": "@daily"}, "cron"),
    ("cron with seconds", {"interval": DROP, "cron": "0 0 * * * *"}, "cron"),
    ("cron out of range", {"interval": DROP, "cron": "61 * * * *"}, "cron"),
    ("unknown timezone", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("stop_at in the past", {"stop_at": _iso(timedelta(minutes=-1))}, "stop_at"),
    ("stop_at before first slot", {"stop_at": _iso(timedelta(minutes=10))}, "stop_at"),
    ("stop_at not a timestamp", {"stop_at": "tomorrow"}, "stop_at"),
    ("empty payload", {"payload": {}}, "payload"),
    ("payload over 64 KB", {"payload": {"blob": "x" * 65_536}}, "payload"),
    ("payload not an object", {"payload": [1, 2]}, "payload"),
    ("pull without handler", {"handler": DROP}, "handler"),
    ("explicit pull without handler", {"handler": DROP, "delivery": {"type": "pull"}}, "handler"),
    ("blank handler", {"handler": "   "}, "handler"),
    (
        "http given for pull",
        {"delivery": {"type": "pull", "http": _push("https://example.com")["http"]}},
        "delivery.http",
    ),
    ("push without http", {"delivery": {"type": "push"}}, "delivery.http"),
    ("unknown delivery type", {"delivery": {"type": "email"}}, "delivery.type"),
    ("push over http", {"delivery": _push("http://example.com/hook")}, "delivery.http.url"),
    ("push to localhost", {"delivery": _push("https://localhost/hook")}, "delivery.http.url"),
    ("push to 127.0.0.1", {"delivery": _push("https://127.0.0.1/hook")}, "delivery.http.url"),
    ("push to 10.0.0.1", {"delivery": _push("https://10.0.0.1/hook")}, "delivery.http.url"),
    (
        "push to metadata",
        {"delivery": _push("https://169.254.169.254/latest")},
        "delivery.http.url",
    ),
    ("push to ftp", {"delivery": _push("ftp://example.com/x")}, "delivery.http.url"),
    (
        "bad method",
        {"delivery": {"type": "push", "http": {"url": "https://example.com", "method": "HEAD"}}},
        "delivery.http.method",
    ),
    ("unknown top-level field", {"colour": "blue"}, "colour"),
    ("timeout 0", {"timeout": 0}, "timeout"),
    ("timeout 3601", {"timeout": 3601}, "timeout"),
    ("timeout as string", {"timeout": "30"}, "timeout"),
    ("max_retries 26", {"max_retries": 26}, "max_retries"),
    ("max_retries -1", {"max_retries": -1}, "max_retries"),
    ("runs 0", {"runs": 0}, "runs"),
    ("interval unit", {"interval": {"value": 1, "unit": "month"}}, "interval.unit"),
    ("interval value 0", {"interval": {"value": 0, "unit": "hour"}}, "interval.value"),
    ("interval extra field", {"interval": {"value": 1, "unit": "hour", "x": 1}}, "interval.x"),
    ("interval over 365 days", {"interval": {"value": 53, "unit": "week"}}, "interval"),
    ("huge interval", {"interval": {"value": 10**30, "unit": "second"}}, "interval"),
    ("huge runs", {"runs": 10**30}, "runs"),
    ("payload with NaN", {"payload": {"x": float("nan")}}, "payload"),
    ("payload with Infinity", {"payload": {"x": [float("inf")]}}, "payload"),
]


@pytest.mark.parametrize(("changes", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_invalid_create_is_422(
    server: RunningServer, changes: dict[str, Any], field: str
) -> None:
    resp = await send(server.client, "POST", "/v1/schedules", _body(**changes))
    invalid(resp, field)
    # Nothing is written when validation fails.
    assert ok(await server.client.get("/v1/schedules")) == []


@pytest.mark.parametrize(
    "name",
    [
        "X-Chronos-Foo",
        "Content-Type",
        "webhook-id",
        "user-agent",
        "Transfer-Encoding",
        "Connection",
        "Expect",
        "Upgrade",
    ],
)
async def test_reserved_custom_header_is_422(server: RunningServer, name: str) -> None:
    body = _body(handler=DROP, delivery=_push("https://example.com/h", {name: "v"}))
    errors = invalid(
        await server.client.post("/v1/schedules", json=body), "delivery.http.headers." + name
    )
    assert "reserved" in errors[0]["message"]


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "caf\u00e9", "a\x00b", "bell\x07"])
async def test_header_value_that_cannot_be_sent_is_422(server: RunningServer, value: str) -> None:
    body = _body(handler=DROP, delivery=_push("https://example.com/h", {"X-Tenant": value}))
    errors = invalid(
        await server.client.post("/v1/schedules", json=body), "delivery.http.headers.X-Tenant"
    )
    assert "printable ASCII" in errors[0]["message"]
    assert ok(await server.client.get("/v1/schedules")) == []


async def test_unknown_field_message(server: RunningServer) -> None:
    errors = invalid(await server.client.post("/v1/schedules", json=_body(colour=1)), "colour")
    assert errors == [{"field": "colour", "message": "is not allowed"}]


async def test_all_problems_are_reported_together(server: RunningServer) -> None:
    body = _body(name=DROP, timeout=0, payload={})
    errors = fails(await server.client.post("/v1/schedules", json=body), 422, "validation_error")
    fields = {e["field"] for e in errors["errors"]}
    assert {"name", "timeout"} <= fields


async def test_missing_name_message(server: RunningServer) -> None:
    errors = invalid(await server.client.post("/v1/schedules", json=_body(name=DROP)), "name")
    assert {"field": "name", "message": "is required"} in errors


async def test_longest_interval_and_largest_runs_are_accepted(server: RunningServer) -> None:
    body = _body(interval={"value": 365, "unit": "day"}, runs=2_147_483_647)
    data = ok(await server.client.post("/v1/schedules", json=body), 201)
    assert data["interval"] == {"value": 365, "unit": "day"} and data["runs"] == 2_147_483_647
    # The stored schedule still renders in lists (an unbounded interval used to break them).
    assert [s["id"] for s in ok(await server.client.get("/v1/schedules"))] == [data["id"]]

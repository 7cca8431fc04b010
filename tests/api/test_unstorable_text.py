"""Text neither store can hold (U+0000, lone surrogates) is a 422 naming the field on BOTH stores,
for every string a create, update, claim or result body brings in, and nothing is written.

PostgreSQL `text` cannot hold NUL (it was a 500 there, while SQLite stored it); a lone surrogate
has no UTF-8 form at all. Bodies are sent as JSON text with `\\u0000` / `\\ud800` escapes, as a
client would (`send` writes Python's lone surrogates as such escapes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from chronos_server.pipeline.services import LoopSettings
from tests import pg
from tests.api.helpers import claim_ready, create_job, create_schedule, invalid, ok, send
from tests.conftest import RunningServer, make_settings, open_running_server

NUL = "\x00"
SURROGATE = "\ud800"
KINDS = pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
SHOWN = "\ufffd"  # how a bad character inside a key appears in the field path
MESSAGE = {NUL: "must not contain U+0000 (NUL)", SURROGATE: "must not contain unpaired surrogates"}
Case = tuple[str, Callable[[str], dict[str, Any]]]


@pytest.fixture(params=["sqlite", "postgres"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningServer]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'chronos.db'}"
    else:
        url = await pg.new_schema_url_async()
    settings = make_settings(tmp_path, database_url=url)
    async with open_running_server(settings, LoopSettings(lease_grace_ms=0)) as running:
        yield running


def _push(
    url: str = "https://example.com/hook", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    http: dict[str, Any] = {"url": url, "method": "POST"}
    if headers:
        http["headers"] = headers
    return {"delivery": {"type": "push", "http": http}}


# (field the 422 must name, body fields holding the bad character)
COMMON: list[Case] = [
    ("name", lambda s: {"name": f"a{s}b"}),
    ("description", lambda s: {"description": f"d{s}"}),
    ("handler", lambda s: {"handler": f"h{s}"}),
    ("payload.a.b", lambda s: {"payload": {"a": {"b": f"x{s}"}}}),
    ("payload.a.1", lambda s: {"payload": {"a": [1, f"x{s}"]}}),
    (f"payload.a.k{SHOWN}", lambda s: {"payload": {"a": {f"k{s}": 1}}}),
    ("delivery.http.url", lambda s: _push(f"https://example.com/{s}")),
]
JOB_CASES: list[Case] = [
    *COMMON,
    ("idempotency_key", lambda s: {"idempotency_key": f"k{s}"}),
    ("scheduled_for", lambda s: {"scheduled_for": f"2099-01-01T00:00:00Z{s}"}),
]
SCHEDULE_CASES: list[Case] = [
    *COMMON,
    ("cron", lambda s: {"cron": f"0 0 1 1 *{s}"}),
    ("timezone", lambda s: {"timezone": f"Europe/Paris{s}"}),
    ("stop_at", lambda s: {"stop_at": f"2099-01-01T00:00:00Z{s}"}),
]


def refused(resp: Any, field: str, bad: str) -> None:
    errors = invalid(resp, field)
    [error] = [e for e in errors if e["field"] == field]
    assert MESSAGE[bad] in error["message"]


@KINDS
async def test_job_create(server: RunningServer, bad: str) -> None:
    for field, fields in JOB_CASES:
        body = {"name": "job", "handler": "h", **fields(bad)}
        refused(await send(server.client, "POST", "/v1/jobs", body), field, bad)
    assert ok(await server.client.get("/v1/jobs")) == []


@KINDS
async def test_schedule_create(server: RunningServer, bad: str) -> None:
    for field, fields in SCHEDULE_CASES:
        body = {"name": "s", "handler": "h", "cron": "0 0 1 1 *", **fields(bad)}
        refused(await send(server.client, "POST", "/v1/schedules", body), field, bad)
    assert ok(await server.client.get("/v1/schedules")) == []


@KINDS
async def test_schedule_patch(server: RunningServer, bad: str) -> None:
    schedule = await create_schedule(server.client)
    path = f"/v1/schedules/{schedule['id']}"
    for field, fields in SCHEDULE_CASES:
        refused(await send(server.client, "PATCH", path, fields(bad)), field, bad)
    assert ok(await server.client.get(path)) == schedule


@KINDS
async def test_push_headers(server: RunningServer, bad: str) -> None:
    """Header names and values have a stricter rule of their own (ASCII token, printable
    ASCII), which also refuses NUL; a surrogate is refused before it is read."""
    body = {"name": "j", **_push(headers={"X-A": f"v{bad}"})}
    [error] = invalid(
        await send(server.client, "POST", "/v1/jobs", body), "delivery.http.headers.X-A"
    )
    body = {"name": "j", **_push(headers={f"X{bad}": "v"})}
    name = await send(server.client, "POST", "/v1/jobs", body)
    [error2] = invalid(name, f"delivery.http.headers.X{SHOWN}")
    if bad == NUL:
        assert "printable ASCII" in error["message"]
        assert error2["message"] == "is not a valid header name"
    else:
        assert MESSAGE[bad] in error["message"] and MESSAGE[bad] in error2["message"]
    assert ok(await server.client.get("/v1/jobs")) == []


@KINDS
async def test_claim(server: RunningServer, bad: str) -> None:
    job = await create_job(server.client)
    claim = "/v1/worker/jobs/claim"
    for field, body in [
        ("handlers.1", {"handlers": ["h", f"h{bad}"], "wait_time_seconds": 0}),
        ("worker", {"handlers": ["h"], "worker": f"w{bad}", "wait_time_seconds": 0}),
    ]:
        refused(await send(server.client, "POST", claim, body), field, bad)
    claimed = await claim_ready(server.client, job["id"])  # still there, unclaimed
    assert claimed["attempt"] == 1


RESULT_CASES: list[Case] = [
    ("result", lambda s: {"status": "completed", "result": f"r{s}"}),
    ("result.a.0", lambda s: {"status": "completed", "result": {"a": [f"r{s}"]}}),
    (f"result.k{SHOWN}", lambda s: {"status": "completed", "result": {f"k{s}": 1}}),
    ("error.message", lambda s: {"status": "failed", "error": {"message": f"m{s}"}}),
    ("error.name", lambda s: {"status": "failed", "error": {"message": "m", "name": f"n{s}"}}),
    ("error.stack", lambda s: {"status": "failed", "error": {"message": "m", "stack": f"s{s}"}}),
]


@KINDS
async def test_result(server: RunningServer, bad: str) -> None:
    job = await create_job(server.client)
    execution_id = (await claim_ready(server.client, job["id"]))["execution_id"]
    path = f"/v1/worker/executions/{execution_id}/result"
    for field, body in RESULT_CASES:
        refused(await send(server.client, "POST", path, body(bad)), field, bad)
    batch = "/v1/worker/executions/results"
    for field, body in RESULT_CASES:
        item = {"execution_id": execution_id, **body(bad)}
        refused(
            await send(server.client, "POST", batch, {"results": [item]}), f"results.0.{field}", bad
        )
    item = {"execution_id": f"e{bad}", "status": "completed"}
    refused(
        await send(server.client, "POST", batch, {"results": [item]}), "results.0.execution_id", bad
    )
    execution = ok(await server.client.get(f"/v1/executions/{execution_id}"))
    assert execution["status"] == "running" and execution["result"] is None
    done = await send(server.client, "POST", path, {"status": "completed", "result": {"ok": 1}})
    assert ok(done)["status"] == "completed"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/jobs?handler=h%00", "handler"),
        ("/v1/schedules?handler=%00", "handler"),
        ("/v1/jobs?since=2026-01-01T00:00:00Z%00", "since"),
    ],
)
async def test_unstorable_text_in_a_query_string_is_422(
    server: RunningServer, path: str, field: str
) -> None:
    errors = invalid(await server.client.get(path), field)
    assert errors[0]["message"] == MESSAGE[NUL]


async def test_a_query_string_that_is_not_utf8_is_422(server: RunningServer) -> None:
    # %ED%A0%80 would decode to a lone surrogate: not UTF-8 at all.
    invalid(await server.client.get("/v1/jobs?handler=%ED%A0%80"), "query")

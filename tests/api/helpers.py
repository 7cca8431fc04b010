"""Assertions for the response envelope (spec §3.1) and small waits on the real pipeline."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import httpx
import trio

from tests.conftest import RunningServer

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
PULL_JOB: dict[str, Any] = {"name": "job", "handler": "h"}


async def send(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    """Send `body` as JSON the way lenient encoders do (NaN and Infinity written out)."""
    content = json.dumps(body, allow_nan=True).encode()
    headers = {"Content-Type": "application/json"}
    return await client.request(method, path, content=content, headers=headers)


def ok(resp: httpx.Response, status: int = 200) -> Any:
    """Assert a success envelope with `status`; return its `data`."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["success"] is True, body
    assert isinstance(body["message"], str) and body["message"]
    assert "data" in body
    assert "code" not in body and "errors" not in body
    return body["data"]


def paged(resp: httpx.Response) -> tuple[list[Any], dict[str, int]]:
    """Assert a list envelope; return `(data, meta.paging)`."""
    data = ok(resp)
    assert isinstance(data, list)
    paging = resp.json()["meta"]["paging"]
    # The spec's four, and the extensions `total_estimated` and `next_cursor` (README).
    assert set(paging) == {"page", "pages", "size", "total", "total_estimated", "next_cursor"}
    assert isinstance(paging["total_estimated"], bool)
    assert paging["next_cursor"] is None or isinstance(paging["next_cursor"], str)
    return data, paging


def spec_paging(paging: dict[str, Any]) -> dict[str, Any]:
    """The spec's four `meta.paging` fields (without the extensions)."""
    return {name: paging[name] for name in ("page", "pages", "size", "total")}


def fails(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an error envelope with `status` and `code`; return the body."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = resp.json()
    assert body["success"] is False
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], list)
    assert "data" not in body
    return body


def invalid(resp: httpx.Response, field: str) -> list[dict[str, str]]:
    """Assert a 422 `validation_error` naming `field`; return its `errors`."""
    errors: list[dict[str, str]] = fails(resp, 422, "validation_error")["errors"]
    assert errors, "a validation error must list the bad fields"
    for err in errors:
        assert set(err) == {"field", "message"} and err["message"], err
    assert field in {e["field"] for e in errors}, errors
    return errors


def ms(text: str) -> int:
    """A `...Z` timestamp from the API as Unix milliseconds."""
    assert TIMESTAMP.match(text), text
    return int(datetime.fromisoformat(text).timestamp() * 1000 + 0.5)


def assert_timestamps(obj: dict[str, Any], *names: str) -> None:
    for name in names:
        assert obj[name] is not None, name
        assert TIMESTAMP.match(obj[name]), (name, obj[name])


async def create_job(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = ok(await client.post("/v1/jobs", json={**PULL_JOB, **fields}), 201)
    return data


async def create_schedule(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "sched", "handler": "h", "cron": "0 0 1 1 *", **fields}
    if "interval" in fields:
        body.pop("cron")
    data: dict[str, Any] = ok(await client.post("/v1/schedules", json=body), 201)
    return data


async def get_job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    data: dict[str, Any] = ok(await client.get(f"/v1/jobs/{job_id}"))
    return data


async def wait_job_status(
    client: httpx.AsyncClient, job_id: str, status: str, timeout: float = 5
) -> dict[str, Any]:
    """Poll the job until it reaches `status` (the pipeline moves it in the background)."""
    with trio.fail_after(timeout):
        while True:
            job = await get_job(client, job_id)
            if job["status"] == status:
                return job
            await trio.sleep(0.01)


async def claim(
    client: httpx.AsyncClient, handlers: list[str] | None = None, wait: int = 0
) -> dict[str, Any] | None:
    body = {"handlers": handlers or ["h"], "wait_time_seconds": wait}
    data: dict[str, Any] | None = ok(await client.post("/v1/worker/jobs/claim", json=body))
    return data


async def claim_ready(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """Wait for `job_id` to be `ready`, claim it, and return the claim data."""
    job = await wait_job_status(client, job_id, "ready")
    claimed = await claim(client, [job["handler"]])
    assert claimed is not None and claimed["job_id"] == job_id
    return claimed


async def report(client: httpx.AsyncClient, execution_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/v1/worker/executions/{execution_id}/result", json=body)


async def wait_parked(server: RunningServer, count: int) -> None:
    """Wait until exactly `count` claims are parked on the server's claim board."""
    board = server.handle.services.pipeline.board
    with trio.fail_after(5):
        while True:
            if board.parked == count:
                return
            await trio.sleep(0.01)

"""The worker against a real Chronos server (real clock): batch claims and batch reports end
to end with `concurrency > 1`, the worker's own HTTP client (no `http_client` given) with
reports overlapping claims, and the log lines of failed attempts, which read the job."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from chronos_server.pipeline.services import LoopSettings
from chronos_worker import Chronos, ChronosContext, ChronosNonRetryableError
from tests.conftest import API_KEY, RunningServer, make_settings, start_server

from .fakes import RecordingLogger

JOBS = 50


# `server` is the fake in this directory (tests/worker/conftest.py), hence another name.
@pytest.fixture
async def real_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    settings = make_settings(tmp_path)
    async with trio.open_nursery() as nursery:
        handle = await start_server(nursery, settings, LoopSettings(lease_grace_ms=0))
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=handle.url, headers=headers, timeout=30) as client:
            yield RunningServer(handle, client, settings)
        handle.stop()


async def test_fifty_jobs_complete_once_each_with_batches(real_server: RunningServer) -> None:
    c = real_server.client
    job_ids = []
    for n in range(JOBS):
        created = await c.post(
            "/v1/jobs", json={"name": f"bulk {n}", "handler": "bulk", "payload": {"n": n}}
        )
        assert created.status_code == 201, created.text
        job_ids.append(created.json()["data"]["id"])

    requests: list[tuple[str, Any]] = []

    async def record(request: httpx.Request) -> None:
        requests.append((request.url.path, request.content))

    logger = RecordingLogger()
    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http_client:
        chronos = Chronos(
            api_key=API_KEY,
            base_url=real_server.url,
            concurrency=8,
            poll_wait_time_seconds=1,
            logger=logger,
            http_client=http_client,
        )

        @chronos.worker.handle("bulk")
        async def bulk(ctx: ChronosContext) -> dict[str, object]:
            await trio.sleep(0.01)
            return {"n": ctx.payload["n"]}

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(chronos.worker.start)
                while True:
                    if await _completed(c) == JOBS:
                        break
                    await trio.sleep(0.05)
                await chronos.worker.stop()

    listed = await c.get("/v1/executions", params={"size": 100})
    executions = listed.json()["data"]
    assert sorted(e["job_id"] for e in executions) == sorted(job_ids)  # one per job
    assert {e["status"] for e in executions} == {"completed"}
    assert sorted(e["result"]["n"] for e in executions) == list(range(JOBS))

    paths = [path for path, _ in requests]
    claims = paths.count("/v1/worker/jobs/claim")
    batches = [
        len(json.loads(body)["results"])
        for path, body in requests
        if path == "/v1/worker/executions/results"
    ]
    assert sum(batches) == JOBS
    assert max(batches) > 1
    assert not any(path.endswith("/result") for path in paths)  # no single reports
    assert claims < JOBS
    assert all(b'"max_jobs":' in body for path, body in requests if path.endswith("/claim"))
    assert logger.messages("warning") == []
    assert logger.messages("error") == []


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_every_job_completes_once_through_the_workers_own_http_client(
    real_server: RunningServer, concurrency: int
) -> None:
    c = real_server.client
    job_ids = []
    for n in range(JOBS):
        created = await c.post(
            "/v1/jobs", json={"name": f"j{n}", "handler": "echo", "payload": {"n": n}}
        )
        assert created.status_code == 201, created.text
        job_ids.append(created.json()["data"]["id"])

    logger = RecordingLogger()
    chronos = Chronos(
        api_key=API_KEY,
        base_url=real_server.url,
        concurrency=concurrency,
        poll_wait_time_seconds=1,
        logger=logger,
    )

    @chronos.worker.handle("echo")
    async def echo(ctx: ChronosContext) -> object:
        return ctx.payload["n"]

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            while True:
                if await _completed(c) == JOBS:
                    break
                await trio.sleep(0.05)
            await chronos.worker.stop()

    listed = await c.get("/v1/executions", params={"size": 100})
    executions = listed.json()["data"]
    assert sorted(e["job_id"] for e in executions) == sorted(job_ids)  # one per job
    assert {e["status"] for e in executions} == {"completed"}
    assert sorted(e["result"] for e in executions) == list(range(JOBS))
    assert logger.messages("warning") == []
    assert logger.messages("error") == []


async def test_failed_attempts_are_logged_as_what_the_server_decided(
    real_server: RunningServer,
) -> None:
    c = real_server.client
    ids = {}
    for name, max_retries in (("retried", 1), ("last", 0), ("fatal", 3)):
        body = {
            "name": name,
            "handler": "fails",
            "payload": {"kind": name},
            "max_retries": max_retries,
        }
        created = await c.post("/v1/jobs", json=body)
        assert created.status_code == 201, created.text
        ids[name] = created.json()["data"]["id"]

    logger = _WatchedLogger()
    chronos = Chronos(
        api_key=API_KEY, base_url=real_server.url, poll_wait_time_seconds=1, logger=logger
    )

    @chronos.worker.handle("fails")
    async def fails(ctx: ChronosContext) -> None:
        if ctx.payload["kind"] == "fatal":
            raise ChronosNonRetryableError("bad payload")
        raise ValueError("bad input")

    def outcomes() -> dict[str, tuple[str, str]]:
        return {
            str(meta["job_id"]): (level, message)
            for level, message, meta in logger.records
            if level in ("warning", "error") and meta.get("attempt") == 1
        }

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chronos.worker.start)
            while len(outcomes()) < 3:
                logger.logged = trio.Event()
                await logger.logged.wait()
            await chronos.worker.stop()

    retried = (await c.get(f"/v1/jobs/{ids['retried']}")).json()["data"]
    assert outcomes() == {
        ids["retried"]: (
            "warning",
            f"Attempt 1 of job {ids['retried']} failed, will be retried at {retried['run_at']}",
        ),
        ids["last"]: ("error", f"Job {ids['last']} failed for good after 1 attempt"),
        ids["fatal"]: (
            "error",
            f"Job {ids['fatal']} failed for good after 1 attempt (non-retryable error)",
        ),
    }


class _WatchedLogger(RecordingLogger):
    """Sets `logged` on every warning and error."""

    def __init__(self) -> None:
        super().__init__()
        self.logged = trio.Event()

    def warning(self, message: str, meta: Mapping[str, object], /) -> None:
        super().warning(message, meta)
        self.logged.set()

    def error(self, message: str, meta: Mapping[str, object], /) -> None:
        super().error(message, meta)
        self.logged.set()


async def _completed(client: httpx.AsyncClient) -> int:
    page = await client.get("/v1/jobs", params={"status": "completed", "size": 1})
    total: int = page.json()["meta"]["paging"]["total"]
    return total

"""Logs people can use (issue 13, item 6): a line for each failed or timed-out attempt (pull and
push, on both stores), the JSON format, the start-up summary, the access log, store outages."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from chronos_server.core.models import ExecutionStatus, JobStatus
from chronos_server.settings import Settings
from chronos_server.telemetry import logs
from tests.api.helpers import claim, create_job, ok, report, wait_job_status
from tests.conftest import (
    API_KEY,
    SIGNING_SECRET,
    RunningServer,
    make_settings,
    open_running_server,
    start_server,
)
from tests.e2e.test_crash import free_port
from tests.e2e.test_push import push_job, wait_job
from tests.receiver import Receiver, start_receiver


def failure_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "chronos.executions"]


async def test_failed_pull_attempts_are_logged_with_their_ids(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chronos.executions")
    job = await create_job(server.client, handler="mail", max_retries=1)
    for attempt in (1, 2):
        with trio.fail_after(10):
            while (claimed := await claim(server.client, ["mail"], wait=1)) is None:
                pass
        error = {"message": f"smtp down {attempt}", "name": "SMTPError"}
        ok(await report(server.client, claimed["execution_id"], status="failed", error=error))
        if attempt == 1:
            await wait_job_status(server.client, job["id"], "retrying")
    await wait_job_status(server.client, job["id"], "failed")

    first, second = failure_records(caplog)
    for record, attempt in ((first, 1), (second, 2)):
        assert record.levelno == logging.INFO
        fields = record.__dict__
        assert fields["job_id"] == job["id"] and fields["handler"] == "mail"
        assert fields["attempt"] == attempt and fields["delivery"] == "pull"
        assert fields["error"] == f"SMTPError: smtp down {attempt}"
        assert job["id"] in record.getMessage() and fields["execution_id"] in record.getMessage()
    assert first.__dict__["will_retry"] is True and "will be retried" in first.getMessage()
    assert second.__dict__["will_retry"] is False
    assert "will not be retried (job failed)" in second.getMessage()


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


async def test_failed_push_attempts_are_logged_with_their_http_status(
    push_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chronos.executions")
    async with trio.open_nursery() as nursery:
        receiver = await start_receiver(
            nursery, Receiver(SIGNING_SECRET, script=[(503, 0), (404, 0)])
        )
        body = push_job(receiver.url + "/hook")
        body["max_retries"] = 3
        created = await push_server.client.post("/v1/jobs", json=body)
        job = await wait_job(push_server, ok(created, 201)["id"], "completed", "failed")
        nursery.cancel_scope.cancel()
    assert job["status"] == "failed" and job["attempt_count"] == 2
    with trio.fail_after(5):  # the line follows the write the job's state shows
        while True:
            if len(failure_records(caplog)) >= 2:
                break
            await trio.sleep(0.01)
    first, second = failure_records(caplog)
    assert (first.__dict__["http_status"], first.__dict__["will_retry"]) == (503, True)
    assert (second.__dict__["http_status"], second.__dict__["will_retry"]) == (404, False)
    assert first.__dict__["delivery"] == "push" and first.__dict__["job_id"] == job["id"]
    assert "HTTP 503" in first.getMessage() and "will be retried" in first.getMessage()


@pytest.fixture
def json_stream() -> Iterator[io.StringIO]:
    """The server's logging configured for JSON into a buffer; the root logger given back."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logs.access.level
    stream = io.StringIO()
    logs.configure_logging("DEBUG", "json", access_log=True, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], level, access_level = saved
        root.setLevel(level)
        logs.access.setLevel(access_level)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_parse_with_time_level_logger_message_and_ids(
    json_stream: io.StringIO,
) -> None:
    logs.attempt_failed(
        delivery="pull",
        job_id="j-1",
        execution_id="e-1",
        attempt=2,
        outcome=ExecutionStatus.TIMEOUT,
        handler="mail",
        job_status=JobStatus.RETRYING,
        error="lease expired",
    )
    logs.state_change("job %s running", "j-1", job_id="j-1", status="running")
    logging.getLogger("chronos.api").error("multi\nline")
    first, second, third = parsed(json_stream)
    assert first["level"] == "INFO" and first["logger"] == "chronos.executions"
    assert first["job_id"] == "j-1" and first["execution_id"] == "e-1"
    assert first["attempt"] == 2 and first["will_retry"] is True
    assert first["outcome"] == "timeout" and first["handler"] == "mail"
    assert "timed out" in first["message"] and first["time"].startswith("20")
    assert second["level"] == "DEBUG" and second["status"] == "running"
    assert third["message"] == "multi\nline"  # one object per line, the newline escaped


async def test_json_startup_summary_and_access_log(
    tmp_path: Path, json_stream: io.StringIO
) -> None:
    settings = make_settings(tmp_path, access_log=True, metrics_port=0)
    async with open_running_server(settings) as running:
        ok(await running.client.get("/v1/jobs", params={"size": 5}))
    lines = parsed(json_stream)
    [startup] = [line for line in lines if line.get("event") == "startup"]
    assert startup["store"] == "sqlite" and startup["url"] == running.handle.url
    assert startup["version"] and startup["workers"] == 1
    assert startup["metrics_url"] == running.handle.metrics_url
    message = startup["message"]
    assert "store sqlite" in message and "workers 1" in message
    assert "rate_limit=off" in message and "access_log=True" in message
    assert "bootstrap_api_key=set" in message and API_KEY not in message
    [access] = [line for line in lines if line["logger"] == "chronos.access"]
    assert access["route"] == "/v1/jobs" and access["status"] == 200
    assert access["method"] == "GET" and "/v1/jobs?size=5" in access["message"]


def test_startup_line_with_defaults_says_none_changed() -> None:
    line = logs.startup_line(Settings(), "http://127.0.0.1:8080", "postgres", None)
    assert line.startswith("Chronos ") and "listening on http://127.0.0.1:8080" in line
    assert line.endswith("settings changed: none")


async def test_store_outage_and_recovery_are_one_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chronos")
    health = logs.StoreHealth()
    health.ok()
    for where in ("admission", "sweeper", "admission"):
        health.failed(where, RuntimeError("connection refused"))
    health.ok()
    health.ok()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2
    assert lines[0][0] == "WARNING" and "store unavailable" in lines[0][1]
    assert lines[1][0] == "INFO" and "store reachable again" in lines[1][1]


async def test_serve_command_takes_the_flags(tmp_path: Path) -> None:
    """`chronos serve --log-format json --metrics-port P --access-log`, as a process."""
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ, CHRONOS_BOOTSTRAP_API_KEY=API_KEY)
    cmd = [sys.executable, "-m", "chronos_server", "serve", "--port", str(port)]
    cmd += ["--database-url", f"sqlite:///{tmp_path / 'c.db'}", "--log-format", "json"]
    cmd += ["--metrics-port", str(metrics_port), "--access-log"]
    proc = await trio.lowlevel.open_process(cmd, env=env, stderr=-1)
    try:
        async with httpx.AsyncClient() as client:
            with trio.fail_after(20):
                while True:
                    try:
                        r = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
                        if r.status_code == 200:
                            break
                    except httpx.TransportError:
                        await trio.sleep(0.05)
            assert "chronos_jobs_created_total" in r.text
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.stderr is not None
    err = b""
    while chunk := await proc.stderr.receive_some():
        err += chunk
    lines = [json.loads(line) for line in err.decode().splitlines()]
    [startup] = [line for line in lines if line.get("event") == "startup"]
    assert startup["metrics_url"] == f"http://127.0.0.1:{metrics_port}"
    assert proc.returncode == 0

"""Worker protocol (§10): claim validation and long-poll, handler routing, order, and reports."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio

from chronos_server.errors import StoreUnavailable
from tests.api.helpers import (
    assert_timestamps,
    claim,
    claim_ready,
    create_job,
    fails,
    get_job,
    invalid,
    ms,
    ok,
    report,
    send,
    wait_job_status,
    wait_parked,
)
from tests.conftest import RunningServer

CLAIM = "/v1/worker/jobs/claim"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "handlers"),
        ({"handlers": []}, "handlers"),
        ({"handlers": [f"h{i}" for i in range(101)]}, "handlers"),
        ({"handlers": "h"}, "handlers"),
        ({"handlers": [""]}, "handlers.0"),
        ({"handlers": ["  "]}, "handlers"),
        ({"handlers": ["h"], "wait_time_seconds": 21}, "wait_time_seconds"),
        ({"handlers": ["h"], "wait_time_seconds": -1}, "wait_time_seconds"),
        ({"handlers": ["h"], "wait_time_seconds": 1.5}, "wait_time_seconds"),
        ({"handlers": ["h"], "worker": "w" * 256}, "worker"),
        ({"handlers": ["h"], "extra": True}, "extra"),
        ({"handlers": ["h"], "timed_start": "yes"}, "timed_start"),
        ({"handlers": ["h"], "timed_start": 1}, "timed_start"),
    ],
)
async def test_bad_claim_body_is_422(
    server: RunningServer, body: dict[str, Any], field: str
) -> None:
    invalid(await server.client.post(CLAIM, json=body), field)


async def test_100_handlers_are_allowed(server: RunningServer) -> None:
    body = {"handlers": [f"h{i}" for i in range(100)], "wait_time_seconds": 0}
    assert ok(await server.client.post(CLAIM, json=body)) is None


async def test_claim_without_wait_answers_null_at_once(server: RunningServer) -> None:
    with trio.fail_after(2):  # the default wait would be 20 s
        resp = await server.client.post(CLAIM, json={"handlers": ["h"], "wait_time_seconds": 0})
    assert ok(resp) is None and resp.json()["data"] is None


async def test_parked_claim_is_woken_by_a_new_job(server: RunningServer) -> None:
    c = server.client
    got: list[dict[str, Any] | None] = []

    async def parked() -> None:
        got.append(await claim(c, ["h"], wait=5))

    with trio.fail_after(4):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(parked)
            await wait_parked(server, 1)
            job = await create_job(c, payload={"n": 7}, timeout=12)
    assert got[0] is not None
    data = got[0]
    assert data["job_id"] == job["id"] and data["attempt"] == 1
    assert (data["handler"], data["payload"], data["timeout"]) == ("h", {"n": 7}, 12)
    assert data["scheduled_for"] == job["scheduled_for"]
    assert_timestamps(data, "scheduled_for", "lease_expires_at")
    running = await get_job(c, job["id"])
    assert running["status"] == "running" and running["attempt_count"] == 1
    assert running["last_execution_id"] == data["execution_id"]
    execution = ok(await c.get(f"/v1/executions/{data['execution_id']}"))
    assert execution["status"] == "running" and execution["trigger"] == "api"
    assert ms(execution["lease_expires_at"]) - ms(execution["started_at"]) == 12_000
    assert execution["lease_expires_at"] == data["lease_expires_at"]


async def test_a_timed_start_claim_gets_a_job_ahead_and_is_told_when_to_start(
    server: RunningServer,
) -> None:
    """Every claim answer offers the timed start (`Chronos-Timed-Start`: the lead in ms). A
    parked claim that asks for it (`timed_start`) is handed a job up to that lead before it is
    due, with `start_in_ms`; its execution starts (and its lease counts) as of the due instant.
    A claim that does not ask never gets a job before it is due, nor the field. (Real time: a
    job comes ahead unless the server stalls past the lead, so of three one must; the hand-off
    itself is MockClock-tested in tests/loops/test_loops.py.)"""
    c = server.client
    found: list[tuple[bool, dict[str, Any], float]] = []
    for _ in range(3):
        for timed in (True, False):
            handler = "timed" if timed else "plain"
            body: dict[str, Any] = {"handlers": [handler], "wait_time_seconds": 5}
            if timed:
                body["timed_start"] = True
            answers: list[Any] = []

            async def parked(body: dict[str, Any] = body, answers: list[Any] = answers) -> None:
                answers.append(await c.post(CLAIM, json=body))

            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(parked)
                    await wait_parked(server, 1)
                    due = datetime.now(UTC) + timedelta(milliseconds=400)
                    job = await create_job(c, handler=handler, scheduled_for=due.isoformat())
            resp = answers[0]
            lead = resp.headers["chronos-timed-start"]
            assert lead.isdigit() and int(lead) > 1
            data = ok(resp)
            assert data is not None and data["job_id"] == job["id"]
            found.append((timed, data, due.timestamp() - time.time()))
    assert any(timed and left > 0 for timed, _, left in found), found
    for timed, data, left in found:
        execution = ok(await c.get(f"/v1/executions/{data['execution_id']}"))
        if "start_in_ms" in data:
            assert timed and 0 < data["start_in_ms"] <= int(lead)
            assert execution["started_at"] == data["scheduled_for"]
        else:
            # Started when claimed, never before its instant (a plain hand-off fires at most
            # 1 ms ahead and claims as of the instant).
            assert execution["started_at"] >= data["scheduled_for"]
            assert timed or left <= 0.001
    assert all("start_in_ms" in data for timed, data, left in found if timed and left > 0)


async def test_only_named_handlers_are_handed_out(server: RunningServer) -> None:
    c = server.client
    job = await create_job(c, handler="other")
    await wait_job_status(c, job["id"], "ready")
    assert await claim(c, ["h", "h2"]) is None
    claimed = await claim(c, ["h", " other "])  # names match after trimming
    assert claimed is not None and claimed["job_id"] == job["id"]


async def test_worker_label_is_recorded(server: RunningServer) -> None:
    c = server.client
    job = await create_job(c)
    await wait_job_status(c, job["id"], "ready")
    body = {"handlers": ["h"], "wait_time_seconds": 0, "worker": "host-1:42"}
    claimed = ok(await c.post(CLAIM, json=body))
    execution = ok(await c.get(f"/v1/executions/{claimed['execution_id']}"))
    assert execution["worker"] == "host-1:42"


async def test_oldest_ready_job_first(server: RunningServer) -> None:
    c = server.client
    ids = []
    for handler in ("b", "a", "b"):
        ids.append((await create_job(c, handler=handler))["id"])
        await trio.sleep(0.003)
    for job_id in ids:
        await wait_job_status(c, job_id, "ready")
    order = []
    for _ in ids:
        claimed = await claim(c, ["a", "b"])
        assert claimed is not None
        order.append(claimed["job_id"])
    assert order == ids
    assert await claim(c, ["a", "b"]) is None


async def test_report_completed_completes_the_job(server: RunningServer) -> None:
    c = server.client
    job = await create_job(c)
    claimed = await claim_ready(c, job["id"])
    execution = ok(await report(c, claimed["execution_id"], status="completed", result=[1, "two"]))
    assert execution["status"] == "completed" and execution["result"] == [1, "two"]
    assert execution["error"] is None and execution["duration_ms"] >= 0
    assert_timestamps(execution, "started_at", "finished_at")
    done = await get_job(c, job["id"])
    assert done["status"] == "completed" and done["finished_at"] is not None


async def test_report_failed_schedules_a_retry(server: RunningServer) -> None:
    c = server.client
    job = await create_job(c)
    claimed = await claim_ready(c, job["id"])
    error = {"message": "db timeout", "name": "TimeoutError", "stack": "Traceback ..."}
    execution = ok(await report(c, claimed["execution_id"], status="failed", error=error))
    assert execution["status"] == "failed" and execution["error"] == error
    retrying = await get_job(c, job["id"])
    assert retrying["status"] == "retrying" and retrying["finished_at"] is None
    # §8.3: the first failed attempt waits 1-2 s.
    delay = ms(retrying["run_at"]) - ms(execution["finished_at"])
    assert 1000 <= delay <= 2000
    assert retrying["scheduled_for"] == job["scheduled_for"]
    stored = ok(await c.get(f"/v1/executions/{claimed['execution_id']}"))
    assert stored["error"] == error


async def test_non_retryable_failure_fails_the_job(server: RunningServer) -> None:
    c = server.client
    job = await create_job(c)
    claimed = await claim_ready(c, job["id"])
    body = {"status": "failed", "error": {"message": "bad input"}, "retryable": False}
    execution = ok(await report(c, claimed["execution_id"], **body))
    assert execution["error"] == {"message": "bad input"}
    failed = await get_job(c, job["id"])
    assert failed["status"] == "failed" and failed["finished_at"] is not None


async def test_failure_without_retries_left_fails_the_job(server: RunningServer) -> None:
    c = server.client
    job = await create_job(c, max_retries=0)
    claimed = await claim_ready(c, job["id"])
    ok(await report(c, claimed["execution_id"], status="failed", error={"message": "x"}))
    assert (await get_job(c, job["id"]))["status"] == "failed"


async def test_second_report_is_409(server: RunningServer) -> None:
    c = server.client
    job = await create_job(c)
    claimed = await claim_ready(c, job["id"])
    ok(await report(c, claimed["execution_id"], status="completed"))
    for body in ({"status": "completed"}, {"status": "failed", "error": {"message": "late"}}):
        resp = await report(c, claimed["execution_id"], **body)
        assert fails(resp, 409, "execution_already_finished")["errors"] == []
    execution = ok(await c.get(f"/v1/executions/{claimed['execution_id']}"))
    assert execution["status"] == "completed" and execution["error"] is None


async def test_report_for_unknown_or_malformed_execution(server: RunningServer) -> None:
    resp = await report(server.client, str(uuid.uuid4()), status="completed")
    fails(resp, 404, "execution_not_found")
    invalid(await report(server.client, "not-an-id", status="completed"), "id")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "status"),
        ({"status": "done"}, "status"),
        ({"status": "failed"}, "error"),
        ({"status": "failed", "error": {}}, "error.message"),
        ({"status": "failed", "error": {"message": "m" * 4097}}, "error.message"),
        ({"status": "failed", "error": {"message": "x"}, "result": 1}, "result"),
        ({"status": "completed", "error": {"message": "x"}}, "error"),
        ({"status": "completed", "retryable": False}, "retryable"),
        ({"status": "completed", "result": {"b": "x" * 65_536}}, "result"),
        ({"status": "completed", "result": float("nan")}, "result"),
        ({"status": "failed", "error": {"message": "x"}, "retryable": "no"}, "retryable"),
        ({"status": "completed", "extra": 1}, "extra"),
    ],
)
async def test_bad_report_body_is_422_and_changes_nothing(
    server: RunningServer, body: dict[str, Any], field: str
) -> None:
    c = server.client
    job = await create_job(c)
    claimed = await claim_ready(c, job["id"])
    path = f"/v1/worker/executions/{claimed['execution_id']}/result"
    invalid(await send(c, "POST", path, body), field)
    execution = ok(await c.get(f"/v1/executions/{claimed['execution_id']}"))
    assert execution["status"] == "running"
    assert (await get_job(c, job["id"]))["status"] == "running"


async def test_a_long_poll_whose_store_fails_answers_503_not_500(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store failing inside a long-poll (which watches the client's connection in a nursery)
    is the same 503 `service_unavailable` as anywhere else, not an ExceptionGroup's 500."""
    store = server.handle.services.pipeline.store

    async def unavailable(*args: object, **kwargs: object) -> Any:
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(store, "claim_ready_jobs", unavailable)
    with trio.fail_after(10):
        resp = await server.client.post(CLAIM, json={"handlers": ["h"], "wait_time_seconds": 1})
    assert resp.status_code == 503, resp.text
    assert resp.json()["success"] is False

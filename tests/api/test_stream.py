"""The worker channel (`GET /v1/worker/stream`, a WebSocket) against a real server: jobs sent as
credits allow, results acknowledged with the codes of the report endpoint, bad messages closing
the channel with a clear code, keys checked before anything is sent, accounts kept apart, and
the stop. A WebSocket client of another stack (trio-websocket) plays the worker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
)

from chronos_server.api.auth import display_prefix, hash_key
from tests.api.helpers import PULL_JOB, ok
from tests.conftest import (
    API_KEY,
    RunningServer,
    make_settings,
    open_running_server,
    start_server,
)
from tests.pg import eventually

GUARD = 10  # seconds: a stall guard, not a measurement


@asynccontextmanager
async def channel(server: RunningServer, key: str = API_KEY) -> AsyncIterator[WebSocketConnection]:
    url = server.url.replace("http://", "ws://") + "/v1/worker/stream"
    headers = [(b"authorization", f"Bearer {key}".encode())]
    async with open_websocket_url(url, extra_headers=headers) as ws:
        yield ws


async def send(ws: WebSocketConnection, message: dict[str, Any]) -> None:
    await ws.send_message(json.dumps(message))


async def receive(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(GUARD):
        message: dict[str, Any] = json.loads(await ws.get_message())
    return message


async def hello(ws: WebSocketConnection, credits: int, handlers: list[str] | None = None) -> None:
    await send(ws, {"type": "hello", "handlers": handlers or ["h"], "credits": credits})
    welcome = await receive(ws)
    assert welcome["type"] == "welcome" and welcome["max_credits"] == 1000


async def jobs(ws: WebSocketConnection, n: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < n:
        message = await receive(ws)
        assert message["type"] == "jobs", message
        got.extend(message["jobs"])
    assert len(got) == n
    return got


async def test_jobs_flow_as_credits_allow_and_results_are_acknowledged(
    server: RunningServer,
) -> None:
    for _ in range(3):
        ok(await server.client.post("/v1/jobs", json=PULL_JOB), 201)
    async with channel(server) as ws:
        await hello(ws, credits=2)
        first = await jobs(ws, 2)
        assert {j["handler"] for j in first} == {"h"}
        with trio.move_on_after(0.3):  # no third job: no credit left
            assert await ws.get_message() is None
        await send(
            ws,
            {
                "type": "results",
                "results": [
                    {"execution_id": first[0]["execution_id"], "status": "completed"},
                    {
                        "execution_id": first[1]["execution_id"],
                        "status": "failed",
                        "error": {"message": "boom"},
                        "retryable": False,
                    },
                    {"execution_id": str(uuid.uuid4()), "status": "completed"},
                    {"execution_id": first[0]["execution_id"], "status": "nope"},
                ],
            },
        )
        acks = await receive(ws)
        assert acks["type"] == "acks"
        assert [(a["success"], a.get("code")) for a in acks["results"]] == [
            (True, None),
            (True, None),
            (False, "execution_not_found"),
            (False, "validation_error"),
        ]
        assert acks["results"][1]["data"]["status"] == "failed"
        await send(ws, {"type": "credit", "n": 5})
        [third] = await jobs(ws, 1)
        await send(ws, {"type": "ping"})
        assert (await receive(ws))["type"] == "pong"
        await send(
            ws,
            {
                "type": "results",
                "results": [{"execution_id": third["execution_id"], "status": "completed"}],
            },
        )
        again = await receive(ws)
        assert again["results"][0]["success"] is True
        await send(
            ws,
            {
                "type": "results",
                "results": [{"execution_id": third["execution_id"], "status": "completed"}],
            },
        )
        twice = await receive(ws)
        assert twice["results"][0]["code"] == "execution_already_finished"


async def test_after_brief_acks_an_accepted_result_is_acknowledged_without_its_execution(
    server: RunningServer,
) -> None:
    """The welcome offers `brief_acks`; once the worker says it, an accepted result's ack is
    its id and `success` alone (a refusal keeps its code), and the result is recorded all the
    same."""
    for _ in range(2):
        ok(await server.client.post("/v1/jobs", json=PULL_JOB), 201)
    async with channel(server) as ws:
        await send(ws, {"type": "hello", "handlers": ["h"], "credits": 2})
        welcome = await receive(ws)
        assert welcome["brief_acks"] is True
        await send(ws, {"type": "brief_acks"})
        got = await jobs(ws, 2)
        results = [
            {"execution_id": got[0]["execution_id"], "status": "completed", "result": 7},
            {"execution_id": got[0]["execution_id"], "status": "completed"},
            {"execution_id": got[1]["execution_id"], "status": "completed"},
        ]
        await send(ws, {"type": "results", "results": results})
        acks = await receive(ws)
    assert acks["results"] == [
        {"execution_id": got[0]["execution_id"], "success": True},
        {
            "execution_id": got[0]["execution_id"],
            "success": False,
            "code": "execution_already_finished",
            "message": acks["results"][1]["message"],
        },
        {"execution_id": got[1]["execution_id"], "success": True},
    ]
    execution = ok(await server.client.get(f"/v1/executions/{got[0]['execution_id']}"))
    assert (execution["status"], execution["result"]) == ("completed", 7)


async def test_a_job_made_ready_later_is_sent_at_once(server: RunningServer) -> None:
    async with channel(server) as ws:
        await hello(ws, credits=1, handlers=["later"])
        created = ok(
            await server.client.post("/v1/jobs", json={"name": "j", "handler": "later"}), 201
        )
        [job] = await jobs(ws, 1)
        assert job["job_id"] == created["id"]


async def test_after_timed_start_a_due_job_comes_ahead_and_says_when_to_start(
    server: RunningServer,
) -> None:
    """After `timed_start`, a job is sent up to `lead_ms` before it is due, with `start_in_ms`;
    its execution starts (and its lease counts) as of the due instant. A channel without
    `timed_start` never gets a job before it is due. (Real time: a job is sent ahead unless the
    server stalls past the lead, so of three jobs one must be; the rest is MockClock-tested in
    tests/loops/test_loops.py.)"""
    async with channel(server) as ws, channel(server) as plain:
        await send(ws, {"type": "hello", "handlers": ["timed"], "credits": 3})
        welcome = await receive(ws)
        lead_ms = welcome["lead_ms"]
        assert isinstance(lead_ms, int) and lead_ms > 1
        await send(ws, {"type": "timed_start"})
        await hello(plain, credits=3, handlers=["plain"])
        found: list[tuple[str, dict[str, Any], float]] = []
        for _ in range(3):
            for handler, conn in (("timed", ws), ("plain", plain)):
                due = datetime.now(UTC) + timedelta(milliseconds=500)
                body = {"name": "j", "handler": handler, "scheduled_for": due.isoformat()}
                ok(await server.client.post("/v1/jobs", json=body), 201)
                message = await receive(conn)
                assert message["type"] == "jobs" and len(message["jobs"]) == 1, message
                [job] = message["jobs"]
                if "start_in_ms" in job:  # the message says when it left: the due instant - that
                    due_ms = datetime.fromisoformat(job["scheduled_for"]).timestamp() * 1000
                    assert message["sent_at"] + job["start_in_ms"] == pytest.approx(
                        due_ms, abs=0.02
                    )
                else:
                    assert "sent_at" not in message
                found.append((handler, job, due.timestamp() - time.time()))
    ahead = [job for handler, job, left in found if handler == "timed" and left > 0]
    assert ahead, found
    for handler, job, left in found:
        execution = ok(await server.client.get(f"/v1/executions/{job['execution_id']}"), 200)
        if "start_in_ms" in job:
            assert handler == "timed" and 0 < job["start_in_ms"] <= lead_ms
            assert execution["started_at"] == job["scheduled_for"]
        else:
            # Started when claimed, never before its instant (the plain hand-off fires at most
            # 1 ms ahead and claims as of the instant).
            assert execution["started_at"] >= job["scheduled_for"]
            assert left <= 0.001 or handler == "timed"
    assert all("start_in_ms" in job for job in ahead)


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        ("not json", "bad message"),
        ('{"type": "credit", "n": 1}', "the first message must be a hello"),
        ('{"type": "hello", "handlers": [], "credits": 1}', "handlers"),
        ('{"type": "launch"}', "bad message"),
        ("[1, 2]", "bad message"),
    ],
)
async def test_a_malformed_message_closes_the_channel_with_a_reason(
    server: RunningServer, first: str, reason: str
) -> None:
    async with channel(server) as ws:
        await ws.send_message(first)
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(GUARD):
            await ws.get_message()
    assert closed.value.reason is not None
    assert closed.value.reason.code == 1008
    assert reason in (closed.value.reason.reason or "")


async def test_an_oversized_message_closes_the_channel_1009(server: RunningServer) -> None:
    async with channel(server) as ws:
        await hello(ws, credits=1)
        await ws.send_message("x" * (1024 * 1024 + 10))
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(GUARD):
            await ws.get_message()
    assert closed.value.reason is not None and closed.value.reason.code == 1009


async def test_an_unknown_or_revoked_key_is_refused_before_the_upgrade(
    server: RunningServer,
) -> None:
    ok(await server.client.post("/v1/jobs", json=PULL_JOB), 201)
    with pytest.raises(ConnectionRejected) as refused, trio.fail_after(GUARD):
        async with channel(server, key="chrns_" + "U" * 40):
            pass
    assert refused.value.status_code == 401


async def test_one_accounts_channel_never_receives_another_accounts_jobs(
    server: RunningServer,
) -> None:
    store = server.handle.services.pipeline.store
    other_key = "chrns_" + "O" * 40
    account, _ = await store.ensure_account("other", 0)
    await store.add_api_key(account.id, hash_key(other_key), display_prefix(other_key), 0)
    ok(await server.client.post("/v1/jobs", json=PULL_JOB), 201)  # the default account's
    async with channel(server, key=other_key) as ws:
        await hello(ws, credits=5)
        with trio.move_on_after(0.5):
            assert await ws.get_message() is None  # nothing for "other"


async def test_a_channel_that_breaks_leaves_its_job_to_the_lease(server: RunningServer) -> None:
    body = PULL_JOB | {"timeout": 1, "max_retries": 2}
    created = ok(await server.client.post("/v1/jobs", json=body), 201)
    async with channel(server) as ws:
        await hello(ws, credits=1)
        [sent] = await jobs(ws, 1)
    # Closed with the job in hand: after its 1 s lease the sweeper retries it, and a new
    # channel gets attempt 2.
    async with channel(server) as ws:
        await hello(ws, credits=1)
        [again] = await jobs(ws, 1)
    assert again["job_id"] == created["id"] == sent["job_id"]
    assert again["attempt"] == 2


async def test_the_stop_tells_channels_and_takes_their_results(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, shutdown_grace_seconds=30.0)
    async with trio.open_nursery() as nursery:
        handle = await start_server(nursery, settings)
        server = RunningServer(handle, None, settings)  # type: ignore[arg-type]
        async with channel(server) as ws:
            await hello(ws, credits=1)
            headers = {"Authorization": f"Bearer {API_KEY}"}
            async with httpx.AsyncClient(base_url=handle.url, headers=headers) as client:
                ok(await client.post("/v1/jobs", json=PULL_JOB), 201)
            [job] = await jobs(ws, 1)
            handle.stop()
            assert (await receive(ws))["type"] == "stopping"
            await send(
                ws,
                {
                    "type": "results",
                    "results": [{"execution_id": job["execution_id"], "status": "completed"}],
                },
            )
            assert (await receive(ws))["results"][0]["success"] is True
            with pytest.raises(ConnectionClosed) as closed, trio.fail_after(GUARD):
                await ws.get_message()
            assert closed.value.reason is not None and closed.value.reason.code == 1001
        with trio.fail_after(GUARD):
            await handle.stopped.wait()  # long before the 30 s grace: nothing left in flight


async def test_open_channels_are_listed_per_handler(server: RunningServer) -> None:
    assert ok(await server.client.get("/v1/workers")) == {"channels": [], "handlers": []}
    async with channel(server) as a, channel(server) as b:
        await hello(a, credits=3, handlers=["h", "g"])
        await send(b, {"type": "hello", "handlers": ["h"], "worker": "box:1", "credits": 2})
        await receive(b)
        listed = ok(await server.client.get("/v1/workers"))
        assert listed["handlers"] == [
            {"handler": "g", "channels": 1, "credits": 3},
            {"handler": "h", "channels": 2, "credits": 5},
        ]
        assert sorted(c["worker"] or "" for c in listed["channels"]) == ["", "box:1"]

    async def closed() -> bool:
        return not ok(await server.client.get("/v1/workers"))["channels"]

    await eventually(closed)


async def test_a_drain_stops_the_jobs_and_says_drained_once_all_are_reported(
    server: RunningServer,
) -> None:
    for _ in range(3):
        ok(await server.client.post("/v1/jobs", json=PULL_JOB), 201)
    async with channel(server) as ws:
        await hello(ws, credits=1)
        [job] = await jobs(ws, 1)
        await send(ws, {"type": "drain"})
        await send(ws, {"type": "credit", "n": 5})  # credits after a drain send nothing
        await send(ws, {"type": "ping"})
        assert (await receive(ws))["type"] == "pong"  # no `drained`: a job is out
        await send(
            ws,
            {
                "type": "results",
                "results": [{"execution_id": job["execution_id"], "status": "completed"}],
            },
        )
        assert (await receive(ws))["results"][0]["success"] is True
        assert (await receive(ws)) == {"type": "drained"}
        with trio.move_on_after(0.3):
            assert await ws.get_message() is None  # and still no job
    ready = await server.client.get("/v1/jobs", params={"status": "ready"})
    assert ready.json()["meta"]["paging"]["total"] == 2


async def test_a_drain_ends_a_parked_claim_and_leaves_nothing_claimed(
    server: RunningServer,
) -> None:
    async with channel(server) as ws:
        await hello(ws, credits=2, handlers=["later"])
        await send(ws, {"type": "drain"})
        assert (await receive(ws)) == {"type": "drained"}
        ok(await server.client.post("/v1/jobs", json={"name": "j", "handler": "later"}), 201)
        with trio.move_on_after(0.3):
            assert await ws.get_message() is None
    ready = await server.client.get("/v1/jobs", params={"status": "ready"})
    assert ready.json()["meta"]["paging"]["total"] == 1


async def test_the_channel_switched_off_answers_404(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, worker_stream=False)
    async with open_running_server(settings) as server:
        with pytest.raises(ConnectionRejected) as refused, trio.fail_after(GUARD):
            async with channel(server):
                pass
        assert refused.value.status_code == 404
        r = await server.client.post(
            "/v1/worker/jobs/claim", json={"handlers": ["h"], "wait_time_seconds": 0}
        )
        assert r.status_code in (200, 204)


def test_a_plain_ping_skips_validation_and_anything_else_is_validated() -> None:
    from chronos_server.api.routes_stream import BadMessage, Ping, parse_message

    assert isinstance(parse_message('{"type":"ping"}'), Ping)
    assert isinstance(parse_message('{ "type": "ping" }'), Ping)  # the validated way
    with pytest.raises(BadMessage):
        parse_message('{"type":"ping","extra":1}')


def _tcp_timer(local_port: int, remote_port: int) -> int | None:
    """The kernel timer armed on a TCP connection of this machine (`/proc/net/tcp`: 0 none,
    1 retransmit, 2 keep-alive ...), or None if there is no such connection."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if (
            int(local.split(":")[1], 16) == local_port
            and int(remote.split(":")[1], 16) == remote_port
        ):
            return int(fields[5].split(":")[0], 16)
    return None


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
async def test_both_ends_of_a_channel_keep_tcp_alive(server: RunningServer) -> None:
    """A peer whose host vanished is noticed by TCP keep-alive (~30 s) at no CPU cost while it
    lives, where pings every `heartbeat_seconds` (60) would take two minutes: both the server's
    end of a channel and the SDK's have the kernel's keep-alive timer armed once idle."""
    from chronos_worker.channel import open_channel
    from chronos_worker.settings import WorkerSettings

    settings = WorkerSettings.create(api_key=API_KEY, base_url=server.url)
    async with open_channel(settings) as ws:
        await send(ws, {"type": "hello", "handlers": ["h"], "credits": 0})
        welcome = await receive(ws)
        assert welcome["heartbeat_seconds"] == 60
        assert not isinstance(ws.local, str) and not isinstance(ws.remote, str)
        mine, theirs = ws.local.port, ws.remote.port

        async def armed() -> bool:
            return _tcp_timer(mine, theirs) == 2 and _tcp_timer(theirs, mine) == 2

        await eventually(armed)

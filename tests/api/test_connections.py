"""Connections that never hang (issue 10, defects 1 and 3): early refusals followed by a second
request on the same connection, departed clients, the cap on connections, idle timeouts and the
per-address budget of failed authentications.

`trio.fail_after` here guards against stalls (a server that never answers); it bounds a wait,
it does not measure speed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from chronos_server.settings import RateLimit
from chronos_server.web.server import Limits
from tests.api.rawhttp import RawConnection
from tests.conftest import API_KEY, RunningServer, make_settings, open_running_server
from tests.pg import eventually

AUTH = {"Authorization": f"Bearer {API_KEY}"}
UNKNOWN = {"Authorization": "Bearer chrns_" + "U" * 40}
BIG = b'{"name":"' + b"x" * 300_000 + b'"}'
STALL_GUARD = 10


async def wait_until(predicate: Callable[[], bool], seconds: float = STALL_GUARD) -> None:
    await eventually(predicate, seconds)


@asynccontextmanager
async def running(
    tmp_path: Path, limits: Limits | None = None, **settings: object
) -> AsyncIterator[RunningServer]:
    async with open_running_server(make_settings(tmp_path, **settings), limits=limits) as server:
        yield server


EARLY_REFUSALS = [
    ("POST", "/v1/jobs", UNKNOWN, 401),
    ("POST", "/v1/jobs", {}, 401),
    ("POST", "/v1/nope", AUTH, 404),
    ("DELETE", "/v1/jobs", AUTH, 405),
    ("PUT", "/v1/schedules/not-a-uuid", AUTH, 405),
    ("POST", "/v1/jobs/not-a-uuid/cancel", AUTH, 422),
    ("POST", "/v1/worker/executions/not-a-uuid/result", AUTH, 422),
]


@pytest.mark.parametrize(("method", "path", "headers", "status"), EARLY_REFUSALS)
@pytest.mark.parametrize("chunked", [False, True])
async def test_an_early_refusal_never_stalls_the_next_request(
    server: RunningServer,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    chunked: bool,
) -> None:
    for _ in range(6):
        conn = await RawConnection.open(server.url)
        with trio.fail_after(STALL_GUARD):
            # The body arrives in paced pieces: an answer sent before the end of it left
            # Hypercorn's connection waiting forever (the probe saw 5 stalls in 12).
            refused = await conn.request(
                method, path, body=BIG, headers=headers, chunked=chunked, pace=0.002
            )
            assert refused.status == status, refused.body
            assert refused.json()["success"] is False
            if refused.headers.get("connection") != "close":
                again = await conn.request("GET", "/healthz")
                assert again.status == 200
        await conn.aclose()
    await wait_until(lambda: server.handle.http.connections == 0)


async def test_429_then_a_second_request_on_the_same_connection(tmp_path: Path) -> None:
    async with running(tmp_path, rate_limit=RateLimit(1, 60.0)) as server:
        conn = await RawConnection.open(server.url)
        with trio.fail_after(STALL_GUARD):
            assert (await conn.request("GET", "/v1/jobs", headers=AUTH)).status == 200
            limited = await conn.request("POST", "/v1/jobs", body=BIG, headers=AUTH, pace=0.002)
            assert limited.status == 429 and limited.headers["retry-after"].isdigit()
            assert (await conn.request("GET", "/healthz")).status == 200
        await conn.aclose()


async def test_wrong_method_is_405_with_allow(server: RunningServer) -> None:
    resp = await server.client.delete("/v1/jobs")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET, POST"
    assert resp.json()["code"] == "method_not_allowed"
    resp = await server.client.get("/v1/worker/jobs/claim")
    assert resp.status_code == 405 and resp.headers["Allow"] == "POST"


async def test_a_body_over_the_limit_is_answered_before_it_is_read(server: RunningServer) -> None:
    conn = await RawConnection.open(server.url)
    head = b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 50000000\r\n" + (
        b"Authorization: Bearer " + API_KEY.encode() + b"\r\n\r\n"
    )
    with trio.fail_after(STALL_GUARD):
        await conn.send_raw(head + b"x" * 1000)
        resp = await conn.response()
        assert resp.status == 413 and resp.headers["connection"] == "close"
        assert await conn.closed_by_server()
    await wait_until(lambda: server.handle.http.connections == 0)


async def test_a_client_that_leaves_mid_body_is_closed_at_once(server: RunningServer) -> None:
    conns = []
    for _ in range(20):
        conn = await RawConnection.open(server.url)
        await conn.send_raw(b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{")
        conns.append(conn)
    await wait_until(lambda: server.handle.http.connections == 20)
    for conn in conns:
        await conn.aclose()
    # The body timeout is 30 s: only noticing the EOF closes them this early.
    await wait_until(lambda: server.handle.http.connections == 0, seconds=5)


async def test_a_long_poll_whose_client_leaves_is_closed_at_once(server: RunningServer) -> None:
    conn = await RawConnection.open(server.url)
    await conn.send_request(
        "POST", "/v1/worker/jobs/claim", body=b'{"handlers":["h"]}', headers=AUTH
    )
    await wait_until(lambda: server.handle.services.pipeline.board.parked == 1)
    await conn.aclose()
    await wait_until(lambda: server.handle.services.pipeline.board.parked == 0, seconds=5)
    await wait_until(lambda: server.handle.http.connections == 0, seconds=5)


async def test_unauthenticated_idle_connections_time_out_sooner(tmp_path: Path) -> None:
    limits = Limits(unauthenticated_idle_seconds=0.2, keep_alive_seconds=30)
    async with running(tmp_path, limits) as server:
        anon = await RawConnection.open(server.url)
        keyed = await RawConnection.open(server.url)
        with trio.fail_after(STALL_GUARD):
            assert (await keyed.request("GET", "/v1/jobs", headers=AUTH)).status == 200
            assert (await anon.request("GET", "/healthz")).status == 200
            assert await anon.closed_by_server()  # after 0.2 s idle
        assert server.handle.http.connections == 1  # the authenticated one stays
        assert (await keyed.request("GET", "/v1/jobs", headers=AUTH)).status == 200
        await keyed.aclose()
        await anon.aclose()


async def test_idle_connections_past_the_cap_never_lock_out_real_clients(tmp_path: Path) -> None:
    async with running(tmp_path, Limits(max_connections=20)) as server:
        idle = [await RawConnection.open(server.url) for _ in range(60)]
        with trio.fail_after(STALL_GUARD):
            for _ in range(5):
                async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as client:
                    assert (await client.get("/v1/jobs")).status_code == 200
                    assert (await client.get("/healthz")).status_code == 200
        assert server.handle.http.connections <= 21
        for conn in idle:
            await conn.aclose()
        await wait_until(lambda: server.handle.http.connections == 0)
        assert (await server.client.get("/v1/jobs")).status_code == 200


async def test_parked_claims_past_the_cap_make_room(tmp_path: Path) -> None:
    async with running(tmp_path, Limits(max_connections=4)) as server:
        pipeline = server.handle.services.pipeline
        answers: list[httpx.Response] = []

        async def park() -> None:
            async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=30) as c:
                answers.append(await c.post("/v1/worker/jobs/claim", json={"handlers": ["h"]}))

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(park)
            await wait_until(lambda: pipeline.board.parked == 4)
            with trio.fail_after(STALL_GUARD):
                async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as client:
                    assert (await client.get("/v1/jobs")).status_code == 200
            await wait_until(lambda: len(answers) == 1)
            evicted = answers[0]
            assert evicted.status_code == 200 and evicted.json()["data"] is None
            assert evicted.headers["connection"] == "close"
            pipeline.board.close()


async def test_when_every_connection_is_busy_health_still_answers(tmp_path: Path) -> None:
    async with running(tmp_path, Limits(max_connections=3)) as server:
        busy = []
        for _ in range(3):  # mid-request: neither idle nor parked, nothing to take over
            conn = await RawConnection.open(server.url)
            await conn.send_raw(b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n{")
            busy.append(conn)
        await wait_until(lambda: server.handle.http.connections == 3)
        with trio.fail_after(STALL_GUARD):
            async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as client:
                health = await client.get("/healthz")
                assert health.status_code == 200
                refused = await client.get("/v1/jobs")
                assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
                assert refused.json()["code"] == "service_unavailable"
        for conn in busy:
            await conn.aclose()
        await wait_until(lambda: server.handle.http.connections == 0)
        assert (await server.client.get("/v1/jobs")).status_code == 200


async def test_failed_authentications_are_limited_per_address(server: RunningServer) -> None:
    store = server.handle.services.pipeline.store
    reads = 0
    lookup: Callable[[str], Awaitable[object]] = store.account_for_key

    async def counting(key_hash: str) -> object:
        nonlocal reads
        reads += 1
        return await lookup(key_hash)

    assert (await server.client.get("/v1/jobs")).status_code == 200  # this key is now cached
    store.account_for_key = counting  # type: ignore[method-assign,assignment]
    async with httpx.AsyncClient(base_url=server.url) as anon:
        statuses = []
        for i in range(30):
            headers = {"Authorization": f"Bearer chrns_{i:040d}"}
            statuses.append((await anon.get("/v1/jobs", headers=headers)).status_code)
    assert statuses[:20] == [401] * 20
    assert set(statuses[20:]) == {429}
    assert reads == 20  # past the budget, an unknown key costs no database read
    # A key verified recently (cached) still works from the same address.
    assert (await server.client.get("/v1/jobs")).status_code == 200


async def test_requests_without_a_key_do_not_lock_out_valid_keys(tmp_path: Path) -> None:
    """Found by schemathesis: its no-key probes used to count as failed authentications, and a
    valid key whose cache entry had expired was then refused 429 from the same address."""
    settings = make_settings(tmp_path, auth_cache_seconds=0.0)  # every request reads the key
    async with open_running_server(settings) as running:
        async with httpx.AsyncClient(base_url=running.url) as anon:
            for headers in ({}, {"Authorization": "Bearer SCHEMATHESIS-INVALID-VALUE"}) * 15:
                assert (await anon.get("/v1/jobs", headers=headers)).status_code == 401
        assert (await running.client.get("/v1/jobs")).status_code == 200

"""Authentication (§13), unknown routes, unparseable bodies (G-34, G-49) and rate limiting (§14)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import trio

from chronos_server.settings import RateLimit
from tests.api.helpers import fails, ok
from tests.conftest import API_KEY, RunningServer, make_settings, start_server

BAD_AUTH = [
    None,
    f"Basic {API_KEY}",
    f"Token {API_KEY}",
    f"Bearer{API_KEY}",
    "Bearer",
    "Bearer chrns_" + "U" * 40,
    "Bearer sk_" + "T" * 40,
    "Bearer " + API_KEY[len("chrns_") :],
]


@pytest.mark.parametrize("authorization", BAD_AUTH)
async def test_bad_or_missing_key_is_401(server: RunningServer, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as anon:
        for method, path in [("GET", "/v1/jobs"), ("POST", "/v1/schedules")]:
            resp = await anon.request(method, path, json={"name": "x"})
            assert fails(resp, 401, "unauthorized")["errors"] == []


async def test_lowercase_bearer_scheme_is_accepted(server: RunningServer) -> None:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"bearer {API_KEY}"}
    ) as client:
        ok(await client.get("/v1/jobs"))


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/v1/openapi.json"])
async def test_public_paths_need_no_key(server: RunningServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=server.url) as anon:
        resp = await anon.get(path)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")


async def test_health_and_ready_bodies(server: RunningServer) -> None:
    assert ok(await server.client.get("/healthz")) == {"status": "ok"}
    assert ok(await server.client.get("/readyz")) == {"status": "ready"}


@pytest.mark.parametrize("path", ["/v1/nope", "/v2/jobs", "/", "/v1/jobs/x/y/z"])
async def test_unknown_route_is_404_not_found(server: RunningServer, path: str) -> None:
    body = fails(await server.client.get(path), 404, "not_found")
    assert body["errors"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/schedules"),
        ("POST", "/v1/jobs"),
        ("POST", "/v1/worker/jobs/claim"),
        ("POST", f"/v1/worker/executions/{uuid.uuid4()}/result"),
    ],
)
@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'"text"', b"null", b"42"])
async def test_body_that_is_not_a_json_object_is_400(
    server: RunningServer, method: str, path: str, content: bytes
) -> None:
    resp = await server.client.request(
        method, path, content=content, headers={"Content-Type": "application/json"}
    )
    assert fails(resp, 400, "bad_request")["errors"] == []


async def test_oversized_body_is_refused_and_the_client_keeps_working(
    server: RunningServer,
) -> None:
    content = b'{"name":"' + b"x" * 1_100_000 + b'"}'
    with trio.fail_after(5):
        resp = await server.client.post("/v1/jobs", content=content)
        body = fails(resp, resp.status_code, "bad_request")
        assert resp.status_code in (400, 413) and body["errors"] == []
        # The unread rest of the body makes the connection unusable; the server must say so,
        # or the client's next request on it hangs.
        assert resp.headers["Connection"] == "close"
        ok(await server.client.get("/v1/jobs"))
    assert ok(await server.client.get("/v1/jobs")) == []


async def test_patch_body_that_is_not_an_object_is_400(server: RunningServer) -> None:
    created = ok(
        await server.client.post(
            "/v1/schedules", json={"name": "s", "handler": "h", "cron": "* * * * *"}
        ),
        201,
    )
    resp = await server.client.patch(f"/v1/schedules/{created['id']}", content=b"[]")
    fails(resp, 400, "bad_request")


async def test_not_found_codes_have_empty_errors(server: RunningServer) -> None:
    missing = uuid.uuid4()
    for path, code in [
        (f"/v1/schedules/{missing}", "schedule_not_found"),
        (f"/v1/jobs/{missing}", "job_not_found"),
        (f"/v1/executions/{missing}", "execution_not_found"),
    ]:
        assert fails(await server.client.get(path), 404, code)["errors"] == []


async def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rate_limit=RateLimit(5, 10.0))
    async with trio.open_nursery() as nursery:
        handle = await start_server(nursery, settings)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with httpx.AsyncClient(base_url=handle.url, headers=headers) as client:
            for remaining in (4, 3, 2, 1, 0):
                resp = await client.get("/v1/jobs")
                ok(resp)
                assert resp.headers["X-RateLimit-Limit"] == "5"
                assert resp.headers["X-RateLimit-Remaining"] == str(remaining)
                assert 1 <= int(resp.headers["X-RateLimit-Reset"]) <= 10
            # Every endpoint counts against the same per-key budget, the claim included.
            limited = await client.post("/v1/worker/jobs/claim", json={"handlers": ["h"]})
            fails(limited, 429, "rate_limit_exceeded")
            retry_after = limited.headers["Retry-After"]
            assert retry_after.isdigit() and 1 <= int(retry_after) <= 10
            assert limited.headers["X-RateLimit-Limit"] == "5"
            assert limited.headers["X-RateLimit-Remaining"] == "0"
            assert "X-RateLimit-Reset" in limited.headers
            # Public paths are not authenticated, so they are not limited either.
            assert (await client.get("/healthz")).status_code == 200
        handle.stop()


async def test_no_rate_limit_headers_when_limit_is_off(server: RunningServer) -> None:
    resp = await server.client.get("/v1/jobs")
    ok(resp)
    assert "X-RateLimit-Limit" not in resp.headers

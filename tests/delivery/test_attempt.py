"""`PushSender.attempt`: one signed request through `httpx.MockTransport`, classified.

The pipeline runs on the inline in-memory SQLite store; the resolver is a fake answering a public
address, so the URL the transport sees is the pinned one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from chronos_server.api.timefmt import iso
from chronos_server.core.models import ClaimedJob, ExecutionStatus, Outcome
from chronos_server.delivery.push import (
    BODY_PREFIX_BYTES,
    PushSender,
    PushSettings,
    new_push_transport,
)
from chronos_worker import verify_signature, verify_standard_webhook
from tests.delivery.fakes import ORIGIN_MS, PUBLIC_IP, SECRET, FakeResolver, World, open_world

Handler = Callable[[httpx.Request], Any]
HOOK = "https://hooks.example.com/chronos"


@dataclass
class Endpoint:
    """A MockTransport handler that records every request and answers `respond(request)`."""

    respond: Handler = lambda _request: httpx.Response(200, text="ok")
    requests: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.respond(request)
        if isinstance(answer, httpx.Response):
            return answer
        response: httpx.Response = await answer
        return response


@dataclass
class Rig:
    world: World
    endpoint: Endpoint
    resolver: FakeResolver
    transport: httpx.AsyncBaseTransport
    sender: PushSender

    async def attempt(self, url: str = HOOK, **job_args: Any) -> tuple[ClaimedJob, Outcome]:
        claimed = await self.world.start_one(url=url, **job_args)
        return claimed, await self.sender.attempt(claimed)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    endpoint = Endpoint()
    resolver = FakeResolver(
        {"hooks.example.com": [PUBLIC_IP], "xn--bcher-kva.example": [PUBLIC_IP]}
    )
    transport = httpx.MockTransport(endpoint)
    async with open_world() as world:
        sender = PushSender(world.p, transport, PushSettings(concurrency=8), resolver)
        yield Rig(world, endpoint, resolver, transport, sender)


def answer(status: int, text: str = "", **headers: str) -> Handler:
    return lambda _request: httpx.Response(status, text=text, headers=headers)


async def test_2xx_completes_and_keeps_status_and_body(rig: Rig) -> None:
    rig.endpoint.respond = answer(201, '{"ok":true}')
    _, outcome = await rig.attempt()
    assert outcome.status is ExecutionStatus.COMPLETED
    assert outcome.http_status == 201 and outcome.response_body == '{"ok":true}'
    assert outcome.error is None
    assert len(rig.endpoint.requests) == 1


async def test_request_is_signed_pinned_and_carries_custom_headers(rig: Rig) -> None:
    claimed, _ = await rig.attempt(
        "https://hooks.example.com:8443/chronos?tenant=7",
        method="PUT",
        headers={"X-App-Secret": "s3"},
        payload={"format": "pdf", "name": "Zoë"},
    )
    [request] = rig.endpoint.requests
    job, execution = claimed.job, claimed.execution
    assert request.method == "PUT"
    assert str(request.url) == f"https://{PUBLIC_IP}:8443/chronos?tenant=7"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "chronos.sh/1.0"
    assert request.headers["x-app-secret"] == "s3"

    body = request.content
    expected_body = (
        f'{{"job_id":"{job.id}","handler":"report","execution_id":"{execution.id}",'
        f'"scheduled_for":"{iso(job.scheduled_for)}","attempt":1,'
        '"payload":{"format":"pdf","name":"Zoë"}}'
    ).encode()
    assert body == expected_body
    assert json.loads(body)["scheduled_for"].endswith("Z")

    timestamp = str(ORIGIN_MS // 1000)  # the virtual clock has not moved
    signed = f"{execution.id}.{timestamp}.".encode() + body
    hex_sig = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    b64_sig = base64.b64encode(hmac.new(bytes(range(32)), signed, hashlib.sha256).digest())
    assert request.headers["x-chronos-signature"] == f"sha256={hex_sig}"
    assert request.headers["x-chronos-timestamp"] == timestamp
    assert request.headers["x-chronos-delivery-id"] == execution.id
    assert request.headers["webhook-id"] == execution.id
    assert request.headers["webhook-timestamp"] == timestamp
    assert request.headers["webhook-signature"] == f"v1,{b64_sig.decode()}"


async def test_user_agent_is_configurable(rig: Rig) -> None:
    settings = PushSettings(user_agent="acme-scheduler/2")
    rig.sender = PushSender(rig.world.p, rig.transport, settings, rig.resolver)
    await rig.attempt()
    assert rig.endpoint.requests[0].headers["user-agent"] == "acme-scheduler/2"


async def test_get_and_delete_carry_the_body_too(rig: Rig) -> None:
    for method in ("GET", "DELETE"):
        claimed, _ = await rig.attempt(method=method)
        request = rig.endpoint.requests[-1]
        assert request.method == method
        assert json.loads(request.content)["execution_id"] == claimed.execution.id


async def test_5xx_fails_retryably(rig: Rig) -> None:
    rig.endpoint.respond = answer(503, "busy")
    _, outcome = await rig.attempt()
    assert outcome.status is ExecutionStatus.FAILED and outcome.retryable
    assert outcome.http_status == 503 and outcome.response_body == "busy"


async def test_4xx_fails_for_good(rig: Rig) -> None:
    rig.endpoint.respond = answer(404, "no such hook")
    _, outcome = await rig.attempt()
    assert outcome.status is ExecutionStatus.FAILED and not outcome.retryable
    assert outcome.http_status == 404


async def test_retry_on_status_with_retry_after(rig: Rig) -> None:
    rig.endpoint.respond = answer(429, "", **{"Retry-After": "7"})
    _, outcome = await rig.attempt(retry_on_status=(429,))
    assert outcome.retryable and outcome.retry_after_ms == 7_000


async def test_redirect_is_not_followed(rig: Rig) -> None:
    rig.endpoint.respond = answer(302, "", Location="https://hooks.example.com/elsewhere")
    _, outcome = await rig.attempt()
    assert outcome.status is ExecutionStatus.FAILED and not outcome.retryable
    assert outcome.http_status == 302
    assert len(rig.endpoint.requests) == 1


async def test_connection_error_is_retried_with_its_name(rig: Rig) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    rig.endpoint.respond = refuse
    _, outcome = await rig.attempt()
    assert outcome.status is ExecutionStatus.FAILED and outcome.retryable
    assert outcome.error is not None
    assert outcome.error.name == "ConnectError" and "refused" in outcome.error.message
    assert outcome.http_status is None


async def test_request_that_cannot_be_sent_fails_for_good(rig: Rig) -> None:
    """A request the transport refuses to write (here: a framing header stored before it was
    reserved) would fail the same way on every attempt."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError("Transfer-Encoding is not allowed on a push request")

    rig.endpoint.respond = refuse
    _, outcome = await rig.attempt()
    assert outcome.status is ExecutionStatus.FAILED and not outcome.retryable
    assert outcome.error is not None and outcome.error.name == "LocalProtocolError"


async def test_name_the_resolver_cannot_encode_fails_for_good(rig: Rig) -> None:
    """getaddrinfo raises UnicodeError for a label over 63 characters: the same on every try."""
    rig.resolver.error = UnicodeError("label too long")
    _, outcome = await rig.attempt()
    assert outcome.status is ExecutionStatus.FAILED and not outcome.retryable
    assert outcome.error is not None and outcome.error.name == "UnicodeError"


async def test_nul_in_the_response_body_is_stored_as_a_replacement_character(rig: Rig) -> None:
    """PostgreSQL text cannot hold NUL; a receiver's body must never fail the write."""
    rig.endpoint.respond = lambda _request: httpx.Response(500, content=b"bad\x00byte\xff")
    _, outcome = await rig.attempt()
    assert outcome.response_body == "bad\ufffdbyte\ufffd"


async def test_dns_failure_is_retried(rig: Rig) -> None:
    rig.resolver.error = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    _, outcome = await rig.attempt()
    assert outcome.status is ExecutionStatus.FAILED and outcome.retryable
    assert outcome.error is not None and outcome.error.name == "gaierror"
    assert rig.endpoint.requests == []


async def test_blocked_resolution_fails_for_good_with_a_clear_message(rig: Rig) -> None:
    rig.resolver.answers["hooks.example.com"] = [PUBLIC_IP, "169.254.169.254"]
    _, outcome = await rig.attempt()
    assert outcome.status is ExecutionStatus.FAILED and not outcome.retryable
    assert outcome.error is not None and outcome.error.name == "BlockedDestination"
    assert outcome.error.message == (
        "hooks.example.com resolves to 169.254.169.254, a blocked address"
    )
    assert rig.endpoint.requests == []


async def test_internationalised_host_is_sent_as_a_label(rig: Rig) -> None:
    _, outcome = await rig.attempt("https://bücher.example/hook")
    assert outcome.status is ExecutionStatus.COMPLETED
    [request] = rig.endpoint.requests
    assert request.headers["host"] == "xn--bcher-kva.example"
    assert str(request.url) == f"https://{PUBLIC_IP}/hook"


async def test_unencodable_host_fails_for_good_instead_of_raising(rig: Rig) -> None:
    _, outcome = await rig.attempt("https://a\u200bb.example/hook")
    assert outcome.status is ExecutionStatus.FAILED and not outcome.retryable
    assert outcome.error is not None and "valid host name" in outcome.error.message
    assert rig.endpoint.requests == []


async def test_response_body_is_stored_truncated_to_4_kib(rig: Rig) -> None:
    rig.endpoint.respond = answer(500, "x" * 10_000)
    async with trio.open_nursery() as nursery:
        job = await rig.world.add_push_job()
        assert await rig.sender.dispatch_once(nursery) == 1
    execution_id = (await rig.world.job(job.id)).last_execution_id
    assert execution_id is not None
    execution = await rig.world.p.store.get_execution(rig.world.account_id, execution_id)
    assert execution is not None and execution.status is ExecutionStatus.FAILED
    assert execution.http_status == 500
    assert execution.response_body == "x" * BODY_PREFIX_BYTES
    assert BODY_PREFIX_BYTES == 4096


async def test_endless_body_is_cut_at_4_kib(rig: Rig) -> None:
    async def forever() -> AsyncIterator[bytes]:
        while True:
            yield b"y" * 1000
            await trio.lowlevel.checkpoint()

    rig.endpoint.respond = lambda _request: httpx.Response(200, content=forever())
    _, outcome = await rig.attempt()
    assert outcome.status is ExecutionStatus.COMPLETED
    assert outcome.response_body == "y" * 4096


async def test_rotated_secret_signs_the_next_delivery(rig: Rig) -> None:
    new_secret = "whsec_" + base64.b64encode(b"\x07" * 32).decode()
    await rig.world.p.store.set_signing_secret(rig.world.account_id, new_secret)
    claimed, _ = await rig.attempt()
    request = rig.endpoint.requests[0]
    signed = f"{claimed.execution.id}.{ORIGIN_MS // 1000}.".encode() + request.content
    expected = hmac.new(new_secret.encode(), signed, hashlib.sha256).hexdigest()
    assert request.headers["x-chronos-signature"] == f"sha256={expected}"


async def test_during_an_overlap_deliveries_verify_with_either_secret_and_after_it_new_only(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    """`chronos secrets rotate --overlap 60s`: both signatures until the overlap ends by the
    pipeline's clock, decided when each request is signed (here the secrets were read before
    the end, as a dispatch batch reads them, and the request is signed after it)."""
    store, account_id = rig.world.p.store, rig.world.account_id
    new_secret = "whsec_" + base64.b64encode(b"\x07" * 32).decode()
    await store.rotate_signing_secret(account_id, new_secret, previous_until=ORIGIN_MS + 60_000)

    def verified_by(request: httpx.Request) -> set[str]:
        now = int(request.headers["x-chronos-timestamp"])
        return {
            name
            for name, secret in (("old", SECRET), ("new", new_secret))
            if verify_signature(secret, request.headers, request.content, now=now)
            and verify_standard_webhook(secret, request.headers, request.content, now=now)
        }

    await rig.attempt()
    await trio.sleep(59.999)
    await rig.attempt()
    read_in_time = await store.get_signing_secrets(account_id)
    assert read_in_time is not None and read_in_time.previous == SECRET
    await trio.sleep(0.001)
    claimed = await rig.world.start_one(url=HOOK)
    await rig.sender.attempt(claimed, read_in_time)
    await trio.sleep(3600)
    await rig.attempt()
    assert [verified_by(r) for r in rig.endpoint.requests] == [
        {"old", "new"},
        {"old", "new"},
        {"new"},
        {"new"},
    ]
    for request in rig.endpoint.requests[2:]:
        assert "x-chronos-signature-previous" not in request.headers
        assert len(request.headers["webhook-signature"].split()) == 1


async def test_timeout_after_exactly_the_jobs_timeout(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    async def hang(_request: httpx.Request) -> httpx.Response:
        await trio.sleep(100)
        return httpx.Response(200)

    rig.endpoint.respond = hang
    claimed = await rig.world.start_one(url=HOOK, timeout=5)
    started = trio.current_time()
    with trio.fail_after(60):
        outcome = await rig.sender.attempt(claimed)
    assert trio.current_time() - started == 5
    assert outcome.status is ExecutionStatus.TIMEOUT and outcome.retryable
    assert outcome.error is not None and outcome.error.name == "Timeout"
    assert len(rig.endpoint.requests) == 1


async def test_slow_dns_counts_against_the_timeout(
    rig: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    async def slow_resolver(host: str, port: int) -> list[str]:
        await trio.sleep(100)
        return [PUBLIC_IP]

    rig.sender = PushSender(rig.world.p, rig.transport, PushSettings(), slow_resolver)
    claimed = await rig.world.start_one(url=HOOK, timeout=3)
    started = trio.current_time()
    outcome = await rig.sender.attempt(claimed)
    assert trio.current_time() - started == 3
    assert outcome.status is ExecutionStatus.TIMEOUT
    assert rig.endpoint.requests == []


@pytest.mark.parametrize(("concurrency", "max_idle"), [(1000, 20), (256, 20), (8, 8)])
async def test_shared_transport_settings(concurrency: int, max_idle: int) -> None:
    async with new_push_transport(PushSettings(concurrency=concurrency)) as transport:
        assert transport.max_idle == max_idle

"""The send-time guard reads hosts as resolvers do and judges IPv6 answers by the IPv4 address
they carry (spec §9.6): numeric forms are refused without a lookup, 6to4 and NAT64 answers for a
private address are refused, and a refusal fails the job at once naming the address. A stored
header name no request can carry fails the job at once too, instead of on every attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from chronos_server.core.models import ExecutionStatus
from chronos_server.delivery.push import (
    BlockedDestination,
    PinnedRequest,
    PushSender,
    PushSettings,
    pin_destination,
)
from tests.delivery.fakes import FakeResolver, World, open_world


async def pin(url: str, resolver: FakeResolver, *, allow_private: bool = False) -> PinnedRequest:
    return await pin_destination(url, allow_private=allow_private, resolver=resolver)


@pytest.mark.parametrize(
    ("host", "named"),
    [
        ("2130706433", "2130706433 (127.0.0.1)"),
        ("0x7f000001", "0x7f000001 (127.0.0.1)"),
        ("127.1", "127.1 (127.0.0.1)"),
        ("0x7f.1", "0x7f.1 (127.0.0.1)"),
        ("127.0.0.1.", "127.0.0.1. (127.0.0.1)"),
        ("0xa9fea9fe", "0xa9fea9fe (169.254.169.254)"),
        ("[2002:7f00:1::]", "2002:7f00:1::"),
        ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1"),
        ("[::127.0.0.1]", "::127.0.0.1 (::7f00:1)"),
    ],
)
async def test_numeric_and_embedded_forms_are_blocked_without_a_lookup(
    host: str, named: str
) -> None:
    resolver = FakeResolver()
    with pytest.raises(BlockedDestination) as caught:
        await pin(f"https://{host}/hook", resolver)
    assert str(caught.value) == f"{named} is a private, loopback or link-local address"
    assert resolver.calls == []


@pytest.mark.parametrize(
    "answer",
    ["2002:7f00:1::", "2002:a9fe:a9fe::1", "64:ff9b::a00:1", "64:ff9b:1::1", "::127.0.0.1"],
)
async def test_answers_carrying_a_blocked_ipv4_address_are_blocked(answer: str) -> None:
    resolver = FakeResolver({"tunnel.example": [answer]})
    with pytest.raises(BlockedDestination) as caught:
        await pin("https://tunnel.example/hook", resolver)
    assert str(caught.value) == f"tunnel.example resolves to {answer}, a blocked address"


async def test_answers_carrying_a_public_ipv4_address_are_pinned() -> None:
    resolver = FakeResolver({"nat64.example": ["64:ff9b::5db8:d822"]})
    pinned = await pin("https://nat64.example/hook", resolver)
    assert pinned.url == "https://[64:ff9b::5db8:d822]/hook"


async def test_public_numeric_form_is_sent_to_its_canonical_address() -> None:
    resolver = FakeResolver()
    pinned = await pin("https://1572395042:8443/hook?x=1", resolver)
    assert pinned == PinnedRequest("https://93.184.216.34:8443/hook?x=1", None, None)
    assert resolver.calls == []


async def test_allow_private_leaves_numeric_forms_alone() -> None:
    resolver = FakeResolver()
    for url in ["http://2130706433/x", "http://[2002:7f00:1::]/x"]:
        assert await pin(url, resolver, allow_private=True) == PinnedRequest(url, None, None)
    assert resolver.calls == []


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with open_world() as world:
        yield world


def _sender(world: World, requests: list[httpx.Request]) -> PushSender:
    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200)

    resolver = FakeResolver({"hooks.example.com": ["93.184.216.34"]})
    return PushSender(world.p, httpx.MockTransport(record), PushSettings(), resolver)


async def test_blocked_numeric_host_fails_the_job_at_once(world: World) -> None:
    requests: list[httpx.Request] = []
    claimed = await world.start_one(url="https://2130706433/hook")
    outcome = await _sender(world, requests).attempt(claimed)
    assert outcome.status is ExecutionStatus.FAILED and not outcome.retryable
    assert outcome.error is not None and outcome.error.name == "BlockedDestination"
    assert "127.0.0.1" in outcome.error.message
    assert requests == []


@pytest.mark.parametrize("name", ["X-\u00dcnicode", "\uff38-A"])
async def test_stored_non_ascii_header_name_fails_the_job_at_once(world: World, name: str) -> None:
    requests: list[httpx.Request] = []
    claimed = await world.start_one(headers={name: "1"})
    outcome = await _sender(world, requests).attempt(claimed)
    assert outcome.status is ExecutionStatus.FAILED and not outcome.retryable
    assert outcome.error is not None and outcome.error.name == "InvalidHeader"
    assert repr(name) in outcome.error.message
    assert requests == []

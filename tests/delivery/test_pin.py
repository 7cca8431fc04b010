"""The send-time SSRF guard (spec §9.6, G-19): resolve once, refuse any blocked address, and
connect to the address that was checked while Host and SNI keep the name."""

from __future__ import annotations

import pytest

from chronos_server.delivery.push import BlockedDestination, PinnedRequest, pin_destination
from tests.delivery.fakes import PUBLIC_IP, FakeResolver


async def pin(url: str, resolver: FakeResolver, *, allow_private: bool = False) -> PinnedRequest:
    return await pin_destination(url, allow_private=allow_private, resolver=resolver)


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "127.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:10.0.0.1]",
        "[fd00::1]",
        "[fe80::1]",
    ],
)
async def test_blocked_literal_addresses(host: str) -> None:
    resolver = FakeResolver()
    with pytest.raises(BlockedDestination):
        await pin(f"https://{host}/hook", resolver)
    assert resolver.calls == []  # a literal is never looked up


async def test_public_literal_is_sent_as_is() -> None:
    resolver = FakeResolver()
    pinned = await pin(f"https://{PUBLIC_IP}:8443/hook?x=1", resolver)
    assert pinned == PinnedRequest(f"https://{PUBLIC_IP}:8443/hook?x=1", None, None)
    assert resolver.calls == []


async def test_name_resolving_to_a_private_address_is_blocked() -> None:
    resolver = FakeResolver({"internal.example": ["10.0.0.1"]})
    with pytest.raises(BlockedDestination, match=r"10\.0\.0\.1"):
        await pin("https://internal.example/hook", resolver)


@pytest.mark.parametrize("order", [["93.184.216.34", "10.0.0.1"], ["10.0.0.1", "93.184.216.34"]])
async def test_any_blocked_address_among_several_blocks(order: list[str]) -> None:
    resolver = FakeResolver({"mixed.example": order})
    with pytest.raises(BlockedDestination, match=r"10\.0\.0\.1"):
        await pin("https://mixed.example/hook", resolver)


async def test_ipv6_loopback_and_mapped_answers_are_blocked() -> None:
    resolver = FakeResolver({"v6.example": ["::1"], "mapped.example": ["::ffff:169.254.169.254"]})
    with pytest.raises(BlockedDestination):
        await pin("https://v6.example/", resolver)
    with pytest.raises(BlockedDestination):
        await pin("https://mapped.example/", resolver)


async def test_https_name_is_pinned_to_the_checked_address() -> None:
    resolver = FakeResolver({"hooks.example.com": [PUBLIC_IP]})
    pinned = await pin("https://hooks.example.com/chronos?tenant=7", resolver)
    assert pinned == PinnedRequest(
        url=f"https://{PUBLIC_IP}/chronos?tenant=7",
        host_header="hooks.example.com",
        sni_hostname="hooks.example.com",
    )
    assert resolver.calls == [("hooks.example.com", 443)]  # exactly one lookup


async def test_explicit_port_is_kept_in_url_and_host_header() -> None:
    resolver = FakeResolver({"hooks.example.com": [PUBLIC_IP]})
    pinned = await pin("https://hooks.example.com:8443/chronos", resolver)
    assert pinned.url == f"https://{PUBLIC_IP}:8443/chronos"
    assert pinned.host_header == "hooks.example.com:8443"
    assert pinned.sni_hostname == "hooks.example.com"
    assert resolver.calls == [("hooks.example.com", 8443)]


async def test_plain_http_has_no_sni() -> None:
    resolver = FakeResolver({"hooks.example.com": [PUBLIC_IP]})
    pinned = await pin("http://hooks.example.com/x", resolver)
    assert pinned == PinnedRequest(f"http://{PUBLIC_IP}/x", "hooks.example.com", None)
    assert resolver.calls == [("hooks.example.com", 80)]


async def test_public_ipv6_answer_is_bracketed() -> None:
    resolver = FakeResolver({"v6.example": ["2606:2800:220:1:248:1893:25c8:1946"]})
    pinned = await pin("https://v6.example:8443/x", resolver)
    assert pinned.url == "https://[2606:2800:220:1:248:1893:25c8:1946]:8443/x"
    assert pinned.host_header == "v6.example:8443"


async def test_first_checked_address_is_the_one_used() -> None:
    resolver = FakeResolver({"multi.example": ["93.184.216.35", PUBLIC_IP]})
    pinned = await pin("https://multi.example/", resolver)
    assert pinned.url == "https://93.184.216.35/"


async def test_allow_private_leaves_the_url_alone_and_never_resolves() -> None:
    resolver = FakeResolver({"internal.example": ["10.0.0.1"]})
    for url in ["http://internal.example:8080/x", "http://10.0.0.1/x", "http://[::1]/x"]:
        assert await pin(url, resolver, allow_private=True) == PinnedRequest(url, None, None)
    assert resolver.calls == []


async def test_resolver_failure_propagates_as_oserror() -> None:
    with pytest.raises(OSError):
        await pin("https://nowhere.example/", FakeResolver())


async def test_empty_answer_is_a_resolution_failure() -> None:
    with pytest.raises(OSError, match="did not resolve"):
        await pin("https://empty.example/", FakeResolver({"empty.example": []}))


async def test_internationalised_name_is_resolved_and_sent_as_its_a_label() -> None:
    # Host headers and SNI are ASCII on the wire: the name must be IDNA-encoded once, here.
    resolver = FakeResolver({"xn--bcher-kva.example": [PUBLIC_IP]})
    pinned = await pin("https://bücher.example/x", resolver)
    assert pinned == PinnedRequest(
        f"https://{PUBLIC_IP}/x", "xn--bcher-kva.example", "xn--bcher-kva.example"
    )


@pytest.mark.parametrize("allow_private", [False, True])
async def test_host_name_that_cannot_be_encoded_is_refused(allow_private: bool) -> None:
    resolver = FakeResolver()
    with pytest.raises(BlockedDestination, match="not have a valid host name"):
        await pin("https://a\u200bb.example/", resolver, allow_private=allow_private)
    assert resolver.calls == []

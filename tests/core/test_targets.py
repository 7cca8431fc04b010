"""Push target rules, pure and table-driven: hosts read as resolvers read them (decimal, hex,
octal, shorthand, trailing dot), IPv6 forms that carry an IPv4 address judged by it, and header
names held to ASCII tokens (spec §9.4, §9.6)."""

from __future__ import annotations

import ipaddress

import pytest

from chronos_server.core.targets import (
    check_headers,
    check_url,
    embedded_ipv4,
    host_address,
    is_blocked_address,
    is_token,
)

PRIVATE = "must not point to a private, loopback or link-local address"
LOCALHOST = "must not point to localhost"


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # one decimal number
        ("0x7f000001", "127.0.0.1"),  # one hex number
        ("0X7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),  # octal part
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),  # shorthand: the last part fills the bytes left
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),  # trailing dot
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),  # WHATWG: "0x" alone is 0
        ("169.254.43518", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11", "127.0.0.1"),  # full width
        ("127\u30020\u30020\u30021", "127.0.0.1"),  # ideographic full stops
        ("%31%32%37.0.0.1", "127.0.0.1"),  # percent-escapes
        ("134744072", "8.8.8.8"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("example.com", None),
        ("example.com.", None),
        ("localhost", None),
        ("1e3.example", None),
        ("0xg.example", None),
    ],
)
def test_host_address_reads_numeric_hosts_as_resolvers_do(host: str, address: str | None) -> None:
    expected = ipaddress.ip_address(address) if address is not None else None
    assert host_address(host) == expected


@pytest.mark.parametrize(
    "host",
    ["1.2.3.4.5", "4294967296", "256.1.1.1", "1.256.1.1", "1.2.65536", "08.0.0.1", "1..1", "x.1"],
)
def test_host_ending_in_a_number_that_is_no_address_is_invalid(host: str) -> None:
    with pytest.raises(ValueError):
        host_address(host)


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped
        ("2002:7f00:1::", "127.0.0.1"),  # 6to4
        ("2002:a9fe:a9fe:1::1", "169.254.169.254"),
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64 well-known prefix
        ("64:ff9b::a00:1", "10.0.0.1"),
        ("2606:4700::1", None),
    ],
)
def test_embedded_ipv4(address: str, embedded: str | None) -> None:
    expected = ipaddress.IPv4Address(embedded) if embedded else None
    assert embedded_ipv4(ipaddress.IPv6Address(address)) == expected


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("100.64.0.1", True),
        ("169.254.169.254", True),
        ("8.8.8.8", False),
        ("::1", True),
        ("::", True),
        ("fd00::1", True),
        ("fe80::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:8.8.8.8", False),
        ("::127.0.0.1", True),  # IPv4-compatible: refused whole (deprecated)
        ("::8.8.8.8", True),
        ("2002:7f00:1::", True),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", True),  # 6to4 of 10.0.0.1
        ("2002:a9fe:a9fe::", True),  # 6to4 of 169.254.169.254
        ("2002:6440:1::", True),  # 6to4 of 100.64.0.1 (CGNAT)
        ("2002:808:808::", False),  # 6to4 of 8.8.8.8
        ("64:ff9b::7f00:1", True),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", True),
        ("64:ff9b::808:808", False),  # NAT64 of 8.8.8.8: a public destination
        ("64:ff9b:1::808:808", True),  # local-use NAT64: refused whole
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", True),  # Teredo: refused whole
        ("2606:4700::1111", False),
    ],
)
def test_is_blocked_address(address: str, blocked: bool) -> None:
    assert is_blocked_address(ipaddress.ip_address(address)) is blocked


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://2130706433/h", PRIVATE),
        ("https://0x7f000001/h", PRIVATE),
        ("https://127.1/h", PRIVATE),
        ("https://0177.0.0.1/h", PRIVATE),
        ("https://127.0.0.1./h", PRIVATE),
        ("https://0xa9fea9fe/latest/meta-data", PRIVATE),
        ("https://10.1/h", PRIVATE),
        ("https://localhost./h", LOCALHOST),
        ("https://LOCALHOST/h", LOCALHOST),
        ("https://api.LocalHost./h", LOCALHOST),
        ("https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/h", LOCALHOST),
        ("https://[::ffff:127.0.0.1]/h", PRIVATE),
        ("https://[::127.0.0.1]/h", PRIVATE),
        ("https://[2002:7f00:1::]/h", PRIVATE),
        ("https://[64:ff9b::7f00:1]/h", PRIVATE),
        ("https://[64:ff9b:1::7f00:1]/h", PRIVATE),
        ("https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/h", PRIVATE),
        ("https://1.2.3.4.5/h", "is not a valid URL (its host is not a valid IP address)"),
        ("https://134744072/h", None),
        ("https://[2002:808:808::]/h", None),
        ("https://[64:ff9b::808:808]/h", None),
        ("https://hooks.example.com./h", None),
        ("https://8.8.8.8/h", None),
    ],
)
def test_check_url_reads_hosts_as_resolvers_do(url: str, problem: str | None) -> None:
    assert check_url(url, allow_http=False, allow_private=False) == problem


@pytest.mark.parametrize(
    "url", ["http://2130706433/h", "http://localhost./h", "http://[2002:7f00:1::]/h"]
)
def test_allow_private_turns_the_host_checks_off(url: str) -> None:
    assert check_url(url, allow_http=True, allow_private=True) is None


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("X-Api-Key", True),
        ("x_y.z~1!#$%&'*+^`|", True),
        ("X-\u00dcnicode", False),  # Ü: isalnum() says yes
        ("\uff38-A", False),  # full-width X
        ("X-\u0661", False),  # Arabic-Indic digit one: isdigit() says yes
        ("X-\u00b2", False),  # superscript two
        ("X A", False),
        ("X:A", False),
        ("", False),
    ],
)
def test_header_names_are_ascii_tokens(name: str, valid: bool) -> None:
    assert is_token(name) is valid


@pytest.mark.parametrize("name", ["X-\u00dcnicode", "\uff38-A", "X-\u0661"])
def test_non_ascii_header_name_is_refused_at_create(name: str) -> None:
    assert check_headers({name: "v", "X-Ok": "v"}) == [(name, "is not a valid header name")]

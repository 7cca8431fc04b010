"""Push target rules checked at create/update time (spec §4.4, §9.4, §9.6, G-17, G-19, G-33).

Pure: literal addresses only. The send-time DNS check (resolve, refuse private ranges, pin the
checked address) belongs to the push sender, which uses `host_address` and `is_blocked_address`
from here so both checks read a host the same way.

A host is read the way resolvers and WHATWG URL parsing read it, not only as dotted decimal:
`2130706433`, `0x7f000001`, `0177.0.0.1` and `127.1` all name 127.0.0.1 to `inet_aton` (which
getaddrinfo uses) and to browsers; a trailing dot, percent-escapes and full-width characters do
not change the name. IPv6 addresses that carry an IPv4 address (IPv4-mapped, 6to4, NAT64) are
judged by the IPv4 address they reach.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import unquote, urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# The headers Chronos sets, and the hop-by-hop and framing headers that belong to the connection
# rather than the request (a custom `Transfer-Encoding` or `Connection` would change how the
# request is framed or whether the connection is reused).
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-connection",
    }
)
MAX_URL = 2048
MAX_HEADERS = 20
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 4096

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
# Refused whole: IPv4-compatible addresses (::/96, deprecated; :: and ::1 among them), the
# local-use NAT64 prefix (RFC 8215: where the IPv4 address sits depends on the prefix length the
# operator chose) and Teredo (2001::/32: the client's IPv4 address is obfuscated in it).
_BLOCKED_V6 = tuple(ipaddress.IPv6Network(net) for net in ("::/96", "64:ff9b:1::/48", "2001::/32"))
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token, ASCII only
_FULL_STOPS = re.compile("[\u3002\uff0e\uff61]")  # read as "." by IDNA (UTS 46)
_RADIX_DIGITS = {10: frozenset("0123456789"), 8: frozenset("01234567")}
_RADIX_DIGITS[16] = frozenset("0123456789abcdef")


def embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a packet to `addr` reaches: IPv4-mapped (::ffff:0:0/96), 6to4
    (2002::/16) and NAT64 (64:ff9b::/96) addresses carry one."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def is_blocked_address(addr: Address) -> bool:
    """Loopback, private (RFC 1918, ULA), link-local, CGNAT, multicast, unspecified, reserved;
    an IPv6 address carrying an IPv4 address is judged by that IPv4 address."""
    if isinstance(addr, ipaddress.IPv6Address):
        if any(addr in net for net in _BLOCKED_V6):
            return True
        embedded = embedded_ipv4(addr)
        if embedded is not None:
            return is_blocked_address(embedded)
    return (
        addr.is_loopback
        or addr.is_private
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_unspecified
        or addr.is_reserved
        or (isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT)
    )


def normalise_host(host: str) -> str:
    """A host name as a resolver sees it: percent-escapes decoded, compatibility characters
    folded (full-width letters and digits, ideographic full stops), lower case, and without
    the one trailing dot that marks a fully qualified name."""
    host = _FULL_STOPS.sub(".", unicodedata.normalize("NFKC", unquote(host))).lower()
    return host[:-1] if host.endswith(".") and len(host) > 1 else host


def host_address(host: str) -> Address | None:
    """The address a URL host names if it is numeric, else None (a name, to be resolved).

    IPv6 (brackets optional) and every IPv4 form `inet_aton` and WHATWG URL parsing accept:
    one to four parts, each decimal, octal (leading 0) or hex (0x), the last filling the bytes
    left. A host that ends in a number but is no such address raises ValueError (a WHATWG URL
    parser refuses it too)."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    host = normalise_host(host)
    if ":" in host:
        return ipaddress.IPv6Address(host)  # ValueError if not an address either
    return _ipv4(host)


def _ipv4(host: str) -> ipaddress.IPv4Address | None:
    parts = host.split(".")
    if not _ends_in_number(parts[-1]):
        return None  # a name
    if len(parts) > 4:
        raise ValueError(f"{host!r} has more than four IPv4 parts")
    numbers = [_ipv4_number(part) for part in parts]
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host!r} is out of the IPv4 range")
    return ipaddress.IPv4Address(last + sum(n << 8 * (3 - i) for i, n in enumerate(leading)))


def _ends_in_number(label: str) -> bool:
    """WHATWG's test for a host to be read as IPv4: its last label is all decimal digits or a
    valid IPv4 number (so `0x1f` counts, `0xg` does not)."""
    if label.isascii() and label.isdigit():
        return True
    try:
        _ipv4_number(label)
    except ValueError:
        return False
    return True


def _ipv4_number(part: str) -> int:
    """One IPv4 part: decimal, octal after a leading 0, hex after 0x; "0x" alone is 0."""
    radix, digits = 10, part
    if part[:2] == "0x":
        radix, digits = 16, part[2:]
    elif len(part) > 1 and part[0] == "0":
        radix, digits = 8, part[1:]
    # Explicit digit sets: int() would also take "_", spaces and non-ASCII digits.
    if not part or not set(digits) <= _RADIX_DIGITS[radix]:
        raise ValueError(f"{part!r} is not an IPv4 number")
    return int(digits, radix) if digits else 0


def check_url(url: str, *, allow_http: bool, allow_private: bool) -> str | None:
    """Return why `url` is refused, or None when it is acceptable."""
    if len(url) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an absolute https URL"
    if parts.scheme == "http" and not allow_http:
        return "must use https"
    if parts.username or parts.password:
        return "must not contain credentials"
    if allow_private:
        return None
    name = normalise_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        return "must not point to localhost"
    try:
        addr = host_address(host)
    except ValueError:
        return "is not a valid URL (its host is not a valid IP address)"
    if addr is None:
        return None
    if is_blocked_address(addr):
        return "must not point to a private, loopback or link-local address"
    return None


def is_token(name: str) -> bool:
    """An RFC 9110 token (a header name): ASCII letters, digits and ``!#$%&'*+-.^_`|~``.
    Not `str.isalnum()`: it accepts `Ü` and full-width letters, which no header can carry."""
    return _TOKEN.fullmatch(name) is not None


def check_headers(headers: dict[str, str]) -> list[tuple[str, str]]:
    """(header name, problem) for every custom header that is not allowed."""
    problems: list[tuple[str, str]] = []
    if len(headers) > MAX_HEADERS:
        problems.append(("", f"at most {MAX_HEADERS} headers are allowed"))
    for name, value in headers.items():
        lowered = name.lower()
        if not name or len(name) > MAX_HEADER_NAME:
            problems.append((name, f"header names must be 1-{MAX_HEADER_NAME} characters"))
        elif (
            lowered in RESERVED_HEADERS
            or lowered.startswith("x-chronos-")
            or lowered.startswith("webhook-")
        ):
            problems.append((name, "is a reserved header"))
        elif not is_token(name):
            problems.append((name, "is not a valid header name"))
        if len(value) > MAX_HEADER_VALUE:
            problems.append((name, f"header values must be at most {MAX_HEADER_VALUE} characters"))
        elif not all(c == "\t" or " " <= c <= "~" for c in value):
            # Line breaks would inject headers; other control or non-ASCII characters cannot be
            # sent as written (HTTP/1.1 header values are bytes, in practice ASCII).
            problems.append((name, "header values must be printable ASCII (no line breaks)"))
    return problems

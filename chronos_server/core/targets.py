"""Push target rules checked at create/update time (spec §4.4, §9.4, §9.6, G-17, G-19, G-33).

Pure: literal addresses only. The send-time DNS check (resolve, refuse private ranges, pin the
checked address) belongs to the push sender.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

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


def is_blocked_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private (RFC 1918, ULA), link-local, CGNAT, multicast, unspecified, reserved."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return is_blocked_address(addr.ipv4_mapped)
    return (
        addr.is_loopback
        or addr.is_private
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_unspecified
        or addr.is_reserved
        or (isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT)
    )


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
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return "must not point to localhost"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return None
    if is_blocked_address(addr):
        return "must not point to a private, loopback or link-local address"
    return None


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
        elif not all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name):
            problems.append((name, "is not a valid header name"))
        if len(value) > MAX_HEADER_VALUE:
            problems.append((name, f"header values must be at most {MAX_HEADER_VALUE} characters"))
        elif not all(c == "\t" or " " <= c <= "~" for c in value):
            # Line breaks would inject headers; other control or non-ASCII characters cannot be
            # sent as written (HTTP/1.1 header values are bytes, in practice ASCII).
            problems.append((name, "header values must be printable ASCII (no line breaks)"))
    return problems

"""`PushTransport`: the httpx transport push delivery sends through — HTTP/1.1 on h11 over Trio
sockets, with a keep-alive pool whose cost per request does not grow with the pool.

Why not httpx's default transport (httpcore): its connection pool re-examines every connection
and every queued request on each request start and each response close (encode/httpcore#1035),
so a burst of a thousand concurrent pushes costs millions of checks, and its layers cost about
0.6 ms of CPU per request on this class of machine. Push fan-out (issue 3: 1,000 requests due at
once) is bounded by exactly that CPU. This transport keeps the parts that are a library's job in
libraries — HTTP/1.1 framing and parsing in h11 (the parser httpcore itself uses), TLS in the
standard `ssl` module through `trio.SSLStream`, requests and responses as httpx objects — and
does the rest, which push needs in a narrow form, directly:

- one request per connection at a time, no queueing: `PushSender` already bounds concurrency;
- idle connections kept per (scheme, address, port, TLS server name), most recently used first,
  at most `max_idle` in all (the one idle longest, or an expired one, makes room for a newer),
  each for at most `keepalive_expiry` seconds; taking and returning one is O(1) amortised. The
  TLS server name is part of the key because push connects to the address it checked (SSRF
  pinning) and sends the name as SNI: two names on one address never share a connection;
- a reused connection that turns out closed or reset by the peer before any byte of the response
  arrived is replaced by a fresh one and the request sent once more: the keep-alive race, where
  the server timed the connection out as the request arrived. The server may have read the
  request before closing, so a push can reach a receiver twice (push is at-least-once; receivers
  use `job_id` / `X-Chronos-Delivery-Id` to deduplicate, as the README says);
- a connection is pooled only when the response ended cleanly and nothing follows it (bytes a
  server sent after its response would otherwise be read as the next request's response);
- no proxies from the environment (they would resolve the name themselves and defeat the SSRF
  pinning), no cookies, no redirects, no decompression: the body is read raw, as received.

Timeouts are the caller's cancel scopes. Errors surface as httpx exceptions (`ConnectError`,
`ReadError`, `WriteError`, `RemoteProtocolError`), so callers handle them as with any transport.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import socket
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import h11
import httpx
import trio

PoolKey = tuple[str, str, int, str | None]
READ_SIZE = 65536
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(eq=False)
class _Connection:
    stream: trio.abc.Stream
    sock: trio.socket.SocketType
    h11: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0
    requests: int = 0
    # Opened (or taken from the pool) before its request was due (`PushTransport.open_ahead`):
    # like a reused connection, one the peer dropped meanwhile is replaced once at send time.
    ahead: bool = False

    def peer_closed(self) -> bool:
        """True if the idle socket is readable: the peer closed it (or sent something unasked)."""
        poller = select.poll()  # not select.select: it cannot watch descriptors >= 1024
        try:
            poller.register(self.sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        """Close at once, without a TLS close_notify: HTTP/1.1 framing says where the response
        ended, so nothing is lost, and a close costs no round trip (or checkpoint)."""
        with contextlib.suppress(OSError):
            self.sock.close()


class PushTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        max_idle: int = 20,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_idle = max_idle
        self._keepalive_expiry = keepalive_expiry
        # httpx's default: certifi's CA bundle, hostname checks, TLS 1.2+.
        if ssl_context is None:
            ssl_context = httpx.create_ssl_context()
            ssl_context.set_alpn_protocols(["http/1.1"])
        self._ssl_context = ssl_context
        self._idle: dict[PoolKey, deque[_Connection]] = {}  # per destination, newest first
        self._lru: OrderedDict[_Connection, PoolKey] = OrderedDict()  # all idle, oldest first
        self._closed = False
        self.connections_opened = 0

    @property
    def idle_count(self) -> int:
        return len(self._lru)

    @property
    def max_idle(self) -> int:
        return self._max_idle

    async def open_ahead(self, request: httpx.Request) -> Ahead:
        """The request serialized and its connection opened (TLS handshake included) or taken
        from the pool now, before it is due: `handle_async_request(request, ahead)` then only
        sends. The caller closes the `Ahead` if the request is never sent."""
        key = self._key(request)
        data = _serialize(request)
        connection = self._take_idle(key) or await self._connect(request, key)
        connection.ahead = True
        return Ahead(key, data, connection)

    async def handle_async_request(
        self, request: httpx.Request, ahead: Ahead | None = None
    ) -> httpx.Response:
        if ahead is not None:
            key, data, connection = ahead.key, ahead.data, ahead.take()
        else:
            key = self._key(request)
            data = _serialize(request)
            connection = self._take_idle(key)
        try:
            event, connection = await self._exchange_on(connection, key, data, request)
        except _StaleConnection:
            # Once, and on a new connection, never on another pooled one: a receiver that drops
            # connections after acting on a request sees it at most twice.
            event, connection = await self._exchange_on(None, key, data, request)
        return httpx.Response(
            event.status_code,
            headers=event.headers,
            stream=_ResponseStream(self, key, connection, request),
            request=request,
            extensions={
                "http_version": b"HTTP/" + event.http_version,
                "reason_phrase": event.reason,
            },
        )

    def _key(self, request: httpx.Request) -> PoolKey:
        if self._closed:
            raise httpx.TransportError("the push transport is closed")
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                f"unsupported URL scheme {url.scheme!r}", request=request
            )
        port = url.port or _DEFAULT_PORTS[url.scheme]
        sni = request.extensions.get("sni_hostname")
        return (url.scheme, url.host, port, sni if isinstance(sni, str) else None)

    async def aclose(self) -> None:
        self._closed = True
        idle = list(self._lru)
        self._idle.clear()
        self._lru.clear()
        for connection in idle:
            connection.close()

    # --- connections -----------------------------------------------------------------------

    async def _connect(self, request: httpx.Request, key: PoolKey) -> _Connection:
        scheme, host, port, sni = key
        try:
            sock = await _open_socket(host, port)
            stream: trio.abc.Stream = trio.SocketStream(sock)
            if scheme == "https":
                tls = trio.SSLStream(
                    stream, self._ssl_context, server_hostname=sni or host, https_compatible=True
                )
                try:
                    await tls.do_handshake()
                except BaseException:
                    sock.close()
                    raise
                stream = tls
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        self.connections_opened += 1
        return _Connection(stream, sock)

    def _take_idle(self, key: PoolKey) -> _Connection | None:
        now = time.monotonic()
        while connections := self._idle.get(key):
            connection = connections.popleft()
            self._forget(key, connection)
            if self._fresh(connection, now) and not connection.peer_closed():
                return connection
            connection.close()
        return None

    def _release(self, key: PoolKey, connection: _Connection) -> None:
        conn = connection.h11
        if (
            self._closed
            or conn.our_state is not h11.DONE
            or conn.their_state is not h11.DONE
            or conn.trailing_data[0]
        ):
            connection.close()
            return
        # Make room: expired connections go first (whatever their destination), then the one
        # idle longest, so a full pool of stale entries for other endpoints never blocks reuse.
        now = time.monotonic()
        while self._lru:
            oldest, oldest_key = next(iter(self._lru.items()))
            if self._fresh(oldest, now) and len(self._lru) < self._max_idle:
                break
            self._idle[oldest_key].remove(oldest)
            self._forget(oldest_key, oldest)
            oldest.close()
        if self._max_idle <= 0:
            connection.close()
            return
        conn.start_next_cycle()
        connection.idle_since = now
        self._idle.setdefault(key, deque()).appendleft(connection)
        self._lru[connection] = key

    def _forget(self, key: PoolKey, connection: _Connection) -> None:
        """Drop the bookkeeping of an idle connection already taken out of its deque."""
        del self._lru[connection]
        if not self._idle[key]:
            del self._idle[key]

    def _fresh(self, connection: _Connection, now: float) -> bool:
        return now - connection.idle_since < self._keepalive_expiry

    # --- one exchange ----------------------------------------------------------------------

    async def _exchange_on(
        self, connection: _Connection | None, key: PoolKey, data: bytes, request: httpx.Request
    ) -> tuple[h11.Response, _Connection]:
        """The request on `connection` (a pooled one) or on a new one; `_StaleConnection` only
        from a pooled connection that failed before any byte of a response."""
        if connection is None:
            connection = await self._connect(request, key)
        try:
            return await self._exchange(connection, data, request), connection
        except BaseException:
            connection.close()
            raise

    async def _exchange(
        self, connection: _Connection, data: bytes, request: httpx.Request
    ) -> h11.Response:
        conn = connection.h11
        connection.requests += 1
        # h11 reads the response; it needs to know a request of this method went out.
        conn.send(_h11_request_view(request.method.encode("ascii")))
        conn.send(_END)
        try:
            await connection.stream.send_all(data)
        except (OSError, trio.BrokenResourceError) as exc:
            if _replaceable(connection):
                raise _StaleConnection(str(exc)) from exc
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc
        received_any = False
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if not received_any and _replaceable(connection):
                    raise _StaleConnection(str(exc)) from exc
                raise httpx.RemoteProtocolError(str(exc), request=request) from exc
            if event is h11.NEED_DATA:
                try:
                    chunk = await _receive(connection, request)
                except httpx.ReadError as exc:
                    if not received_any and _replaceable(connection):
                        raise _StaleConnection(str(exc)) from exc  # reset instead of closed
                    raise
                received_any = received_any or bool(chunk)
                conn.receive_data(chunk)
            elif isinstance(event, h11.Response):
                return event
            elif isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue and friends: the final response follows
            else:  # h11 raises on anything else before a response; a ConnectionClosed lands here
                raise httpx.RemoteProtocolError(
                    "connection closed before a response", request=request
                )


@dataclass(eq=False)
class Ahead:
    """A request made ready before it is due: its bytes and its open connection."""

    key: PoolKey
    data: bytes
    connection: _Connection | None

    def take(self) -> _Connection | None:
        connection, self.connection = self.connection, None
        return connection

    def close(self) -> None:
        """Close the connection unless the request went out on it."""
        connection = self.take()
        if connection is not None:
            connection.close()


class _StaleConnection(Exception):
    """A reused keep-alive connection failed before any byte of a response arrived."""


class _ResponseStream(httpx.AsyncByteStream):
    """The response body, raw; closing it returns the connection to the pool if it is clean."""

    def __init__(
        self,
        transport: PushTransport,
        key: PoolKey,
        connection: _Connection,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._key = key
        self._connection = connection
        self._request = request
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._connection.h11
        try:
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    raise httpx.RemoteProtocolError(str(exc), request=self._request) from exc
                if event is h11.NEED_DATA:
                    conn.receive_data(await _receive(self._connection, self._request))
                elif isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return
                else:
                    raise httpx.RemoteProtocolError(
                        "unexpected end of response", request=self._request
                    )
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._transport._release(self._key, self._connection)


def _replaceable(connection: _Connection) -> bool:
    """A failure before any byte of a response is the connection's, not the receiver's, if it
    was reused or opened ahead: the peer may have closed it while it sat idle."""
    return connection.requests > 1 or connection.ahead


async def _receive(connection: _Connection, request: httpx.Request) -> bytes:
    try:
        return bytes(await connection.stream.receive_some(READ_SIZE))
    except (OSError, trio.BrokenResourceError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc


async def _open_socket(host: str, port: int) -> trio.socket.SocketType:
    """A connected TCP socket. Push URLs are pinned to an address already (SSRF check), so the
    usual case is one literal address, connected to without a lookup; a name (private targets
    allowed) is resolved here and its addresses tried in turn."""
    family = _literal_family(host)
    targets: list[tuple[socket.AddressFamily, Any]]
    if family is not None:
        targets = [(family, (host, port))]
    else:
        infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
        targets = [(info[0], info[4]) for info in infos]
    last: OSError | None = None
    for family, address in targets:
        try:
            return await _connect_socket(family, address)
        except OSError as exc:
            last = exc
    raise last or OSError(f"{host} did not resolve")


async def _connect_socket(family: socket.AddressFamily, address: Any) -> trio.socket.SocketType:
    """A non-blocking connect and a wait for writability: what `trio.socket.SocketType.connect`
    does, minus its per-call address normalisation (a getaddrinfo round and checks), which cost
    more than the connect itself on loopback. The address is already numeric here."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        err = sock.connect_ex(address)
        if err == errno.EINPROGRESS:
            await trio.lowlevel.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, f"connect to {address[0]} port {address[1]}: {os.strerror(err)}")
    except BaseException:
        sock.close()
        raise
    return trio.socket.from_stdlib_socket(sock)


def _literal_family(host: str) -> socket.AddressFamily | None:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$")
_TARGET = re.compile(rb"[\x21-\x7e]+")
# Lines of `name: value` (CRLF after each), names already checked one by one with `_TOKEN`;
# values empty, or visible bytes (obs-text included) with spaces and tabs only inside: what
# `_BAD_VALUE` accepts.
_HEADER_BLOCK = re.compile(
    rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+: (?:[\x21-\x7e\x80-\xff](?:[\x20-\x7e\x80-\xff\t]*"
    rb"[\x21-\x7e\x80-\xff])?)?\r\n)*"
)
_END = h11.EndOfMessage()
# Framing and hop-by-hop headers: refused at create (reserved names), refused here too so a row
# written before that rule can never change how the request is framed.
_CONNECTION_HEADERS = frozenset(
    {
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
        b"proxy-connection",
    }
)


def _serialize(request: httpx.Request) -> bytes:
    """The request as bytes: request line, headers, body (Content-Length framing; httpx added
    Host and Content-Length). h11's own serializer validates through layers of Python that cost
    more than the rest of a push; this does the same checks with compiled patterns, the headers
    all in one pass: method and header names are tokens, header values hold no control
    characters (no CR/LF, so no header injection) and no outer whitespace, the target is
    visible ASCII."""
    method = request.method.encode("ascii")
    target = request.url.raw_path
    if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        raise httpx.LocalProtocolError(f"invalid request line {method!r} {target!r}")
    raw = request.headers.raw
    for name, _ in raw:
        # Names one by one: in the block, a name holding ": " would read as a name and a value.
        if not _TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError(f"invalid header {name!r}")
        if name.lower() in _CONNECTION_HEADERS:
            raise httpx.LocalProtocolError(f"{name.decode()} is not allowed on a push request")
    block = b"".join([b"%s: %s\r\n" % header for header in raw])
    # One CRLF per header: a value holding "\r\nName: x" would otherwise pass as two lines.
    if not _HEADER_BLOCK.fullmatch(block) or block.count(b"\r\n") != len(raw):
        _refuse_header(raw)
    return b"".join((method, b" ", target, b" HTTP/1.1\r\n", block, b"\r\n", request.content))


def _refuse_header(headers: list[tuple[bytes, bytes]]) -> None:
    """Name the header whose value the block check refused."""
    for name, value in headers:
        if _BAD_VALUE.search(value):
            raise httpx.LocalProtocolError(f"invalid header {name!r}")
    raise httpx.LocalProtocolError("invalid headers")  # unreachable: the checks agree


@lru_cache(maxsize=16)
def _h11_request_view(method: bytes) -> h11.Request:
    """What h11 is told was sent: the method decides how the response is framed (HEAD has no
    body); the headers here only satisfy h11 (the request's own framing is Content-Length and
    push never sends `Connection: close` or `Expect`, which are reserved header names)."""
    return h11.Request(
        method=method, target=b"/", headers=[(b"host", b"-"), (b"content-length", b"0")]
    )

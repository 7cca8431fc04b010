"""`PushTransport` against real HTTP/1.1 servers on 127.0.0.1 (h11 in the server role, or raw bytes
where a server must misbehave): the request arrives exactly, keep-alive reuse and its limits (pool
key with the TLS name, `max_idle`, `keepalive_expiry`, `Connection: close`), stale connections,
framing (chunked, large, HEAD, 1xx), errors as httpx exceptions, cancellation and closing."""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, cast

import h11
import httpx
import pytest
import trio
import trio.testing
import trustme

from chronos_server.delivery.transport import Ahead, PushTransport, _serialize

Handler = Callable[[trio.SocketStream], Awaitable[None]]
TIMEOUT = 5

# A connection the transport drops without closing is closed by the garbage collector with a
# ResourceWarning: make that a failure, so "closed, not leaked" is checked, not assumed.
pytestmark = pytest.mark.filterwarnings(
    "error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning"
)


# --- servers -------------------------------------------------------------------------------


async def serve(nursery: trio.Nursery, handler: Handler) -> int:
    """Serve `handler` on an ephemeral port of 127.0.0.1 until the test ends; the port."""
    serve_tcp = functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
    listeners: list[trio.SocketListener] = await nursery.start(serve_tcp)
    return int(listeners[0].socket.getsockname()[1])


@dataclass
class Received:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]  # as sent: order and case kept
    body: bytes
    connection: int  # which accepted connection (0, 1, ...) it arrived on


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b"ok"
    chunks: list[bytes] | None = None  # sent chunked (one write each) instead of `body`
    reason: bytes = b""
    hang_up: bool = False  # close the socket after this response, without `Connection: close`
    drop: bool = False  # close the socket instead of answering


App = Callable[[Received], Awaitable[Reply]]


async def answer_ok(_: Received) -> Reply:
    return Reply()


def out(conn: h11.Connection, event: h11.Event) -> bytes:
    data = conn.send(event)
    assert data is not None
    return data


@dataclass(eq=False)
class H11Server:
    """A well-behaved HTTP/1.1 server (keep-alive) that records what it received."""

    app: App = answer_ok
    port: int = 0
    connections: int = 0
    requests: list[Received] = field(default_factory=list)
    client_closed: int = 0  # connections that ended by the client closing (EOF or reset)
    server_closed: int = 0  # connections the server closed itself (hang_up / drop)
    _changed: trio.Event = field(default_factory=trio.Event)

    async def wait_client_closed(self, count: int) -> None:
        """Until `count` connections have been closed by the client."""
        while self.client_closed < count:
            await self._changed.wait()

    async def wait_server_closed(self, count: int) -> None:
        while self.server_closed < count:
            await self._changed.wait()

    def _note(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def handle(self, stream: trio.SocketStream) -> None:
        index = self.connections
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        async with stream:
            try:
                while True:
                    received = await self._read(conn, stream, index)
                    if received is None:
                        break
                    self.requests.append(received)
                    reply = await self.app(received)
                    if reply.drop:
                        await stream.aclose()
                        self.server_closed += 1
                        self._note()
                        return
                    await self._send(conn, stream, reply)
                    if reply.hang_up:
                        await stream.aclose()
                        self.server_closed += 1
                        self._note()
                        return
                    if conn.our_state is h11.MUST_CLOSE:
                        # Said `Connection: close` but wait for the client to close first.
                        while await stream.receive_some(65536):
                            pass
                        break
                    conn.start_next_cycle()
            except trio.BrokenResourceError:
                pass
        self.client_closed += 1
        self._note()

    @staticmethod
    async def _read(conn: h11.Connection, stream: trio.SocketStream, index: int) -> Received | None:
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                headers = [(bytes(n), bytes(v)) for n, v in request.headers.raw_items()]
                return Received(request.method, request.target, headers, body, index)
            elif isinstance(event, h11.ConnectionClosed):
                return None

    @staticmethod
    async def _send(conn: h11.Connection, stream: trio.SocketStream, reply: Reply) -> None:
        headers = list(reply.headers)
        names = {name.lower() for name, _ in headers}
        if reply.chunks is not None:
            headers.append((b"transfer-encoding", b"chunked"))
        elif b"content-length" not in names:
            headers.append((b"content-length", str(len(reply.body)).encode()))
        response = h11.Response(status_code=reply.status, headers=headers, reason=reply.reason)
        if reply.chunks is None:
            data = out(conn, response)
            if reply.body:
                data += out(conn, h11.Data(data=reply.body))
            await stream.send_all(data + out(conn, h11.EndOfMessage()))
            return
        await stream.send_all(out(conn, response))
        for chunk in reply.chunks:
            await stream.send_all(out(conn, h11.Data(data=chunk)))
            await trio.sleep(0.001)  # separate segments: the client parses across reads
        await stream.send_all(out(conn, h11.EndOfMessage()))


async def start_h11(nursery: trio.Nursery, app: App = answer_ok) -> H11Server:
    server = H11Server(app)
    server.port = await serve(nursery, server.handle)
    return server


@dataclass(eq=False)
class AllAtOnce:
    """An app whose first `n` requests wait for one another, so they are in flight together on
    `n` connections (which then go idle in the client's pool); later ones go to `then`."""

    n: int
    then: App = answer_ok
    arrived: int = 0
    _all_in: trio.Event = field(default_factory=trio.Event)

    async def __call__(self, received: Received) -> Reply:
        self.arrived += 1
        if self.arrived > self.n:
            return await self.then(received)
        if self.arrived == self.n:
            self._all_in.set()
        await self._all_in.wait()
        return Reply()


async def fill_pool(transport: PushTransport, url: str, n: int) -> None:
    """`n` GETs at once (to an `AllAtOnce(n)` server): `n` connections, all idle afterwards."""
    async with trio.open_nursery() as clients:
        for _ in range(n):
            clients.start_soon(get, transport, url)


async def read_head(stream: trio.SocketStream) -> bytes:
    """One request head (the requests in raw tests have no body); b"" if the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return b""
        data += chunk
    return data


OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def abort(stream: trio.SocketStream) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a server does on a timeout with data unread."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


# --- client side helpers -------------------------------------------------------------------


@pytest.fixture
async def make_transport() -> AsyncIterator[Callable[..., PushTransport]]:
    """PushTransport(**kwargs); every one made is closed at the end of the test."""
    made: list[PushTransport] = []

    def make(**kwargs: object) -> PushTransport:
        transport = PushTransport(**kwargs)  # type: ignore[arg-type]
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.aclose()


async def fetch(
    transport: PushTransport, request: httpx.Request, ahead: Ahead | None = None
) -> tuple[httpx.Response, bytes]:
    response = await transport.handle_async_request(request, ahead)
    try:
        body = await response.aread()
    finally:
        await response.aclose()
    return response, body


async def get(
    transport: PushTransport, url: str, *, sni: str | None = None
) -> tuple[httpx.Response, bytes]:
    extensions = {"sni_hostname": sni} if sni is not None else {}
    return await fetch(transport, httpx.Request("GET", url, extensions=extensions))


def body_stream(response: httpx.Response) -> httpx.AsyncByteStream:
    assert isinstance(response.stream, httpx.AsyncByteStream)
    return response.stream


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the request arrives, the response comes back ------------------------------------------


async def test_post_arrives_exactly_and_the_response_comes_back(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    async def app(_: Received) -> Reply:
        headers = [(b"X-Reply", b"yes"), (b"Content-Type", b"text/plain")]
        return Reply(201, headers, b"created!", reason=b"Created")

    server = await start_h11(nursery, app)
    transport = make_transport()
    request = httpx.Request(
        "POST",
        f"http://127.0.0.1:{server.port}/hooks/a?x=1&y=%20two",
        headers={
            "Host": "hooks.example:8443",
            "X-Signature": "v1,c2ln",
            "Content-Type": "application/json",
        },
        content=b'{"n": 1}',
    )
    with trio.fail_after(TIMEOUT):
        response, body = await fetch(transport, request)

    [received] = server.requests
    assert received.method == b"POST"
    assert received.target == b"/hooks/a?x=1&y=%20two"
    assert received.headers == [
        (b"Host", b"hooks.example:8443"),
        (b"X-Signature", b"v1,c2ln"),
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"8"),
    ]
    assert received.body == b'{"n": 1}'
    assert response.status_code == 201
    assert response.extensions["reason_phrase"] == b"Created"
    assert response.extensions["http_version"] == b"HTTP/1.1"
    assert response.headers["x-reply"] == "yes"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["content-length"] == "8"
    assert body == b"created!"


async def test_header_injection_is_refused_before_connecting(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    server = await start_h11(nursery)
    transport = make_transport()
    request = httpx.Request(
        "GET", f"http://127.0.0.1:{server.port}/", headers={"X-Evil": "a\r\nX-Injected: 1"}
    )
    with pytest.raises(httpx.LocalProtocolError):
        await transport.handle_async_request(request)
    assert transport.connections_opened == 0
    assert server.connections == 0


@pytest.mark.parametrize(
    "value",
    [b"a\r\nX-Injected: 1", b"a\r\n", b"a\nb", b"a\rb", b"a\x00b", b"\x7f", b" a", b"a\t"],
)
def test_serializer_refuses_header_values_that_could_change_framing(value: bytes) -> None:
    request = httpx.Request("POST", "http://hooks.example.com/", headers=[(b"X-Bad", value)])
    with pytest.raises(httpx.LocalProtocolError, match="X-Bad"):
        _serialize(request)


@pytest.mark.parametrize(
    "name", [b"Bad Name", b"x:y", b"", b"x\r\ny", b"X: y", b"Transfer-Encoding: chunked"]
)
def test_serializer_refuses_header_names_that_are_not_tokens(name: bytes) -> None:
    request = httpx.Request("POST", "http://hooks.example.com/", headers=[(name, b"1")])
    with pytest.raises(httpx.LocalProtocolError, match="invalid header"):
        _serialize(request)


def test_serializer_writes_valid_headers_as_given() -> None:
    headers = [(b"X-Empty", b""), (b"X-Inner", b"a b\tc"), (b"X-Obs", b"caf\xc3\xa9"), (b"X", b"1")]
    request = httpx.Request(
        "POST", "http://hooks.example.com/p?q=1", headers=headers, content=b"{}"
    )
    assert _serialize(request) == (
        b"POST /p?q=1 HTTP/1.1\r\nHost: hooks.example.com\r\nX-Empty: \r\n"
        b"X-Inner: a b\tc\r\nX-Obs: caf\xc3\xa9\r\nX: 1\r\nContent-Length: 2\r\n\r\n{}"
    )


@pytest.mark.parametrize(
    "name", ["Connection", "Transfer-Encoding", "Expect", "Upgrade", "Keep-Alive", "TE"]
)
async def test_framing_and_hop_by_hop_headers_are_refused(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport], name: str
) -> None:
    server = await start_h11(nursery)
    transport = make_transport()
    request = httpx.Request(
        "POST", f"http://127.0.0.1:{server.port}/", headers={name: "x"}, content=b"{}"
    )
    with pytest.raises(httpx.LocalProtocolError, match=name):
        await transport.handle_async_request(request)
    assert transport.connections_opened == 0
    assert server.connections == 0


# --- keep-alive ----------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_connection(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    server = await start_h11(nursery)
    transport = make_transport()
    url = f"http://127.0.0.1:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        response = await transport.handle_async_request(httpx.Request("GET", url))
        assert transport.idle_count == 0  # in use until the response is closed
        assert await response.aread() == b"ok"
        await response.aclose()
        assert transport.idle_count == 1
        _, body = await get(transport, url)

    assert body == b"ok"
    assert transport.connections_opened == 1
    assert server.connections == 1
    assert [r.connection for r in server.requests] == [0, 0]
    assert transport.idle_count == 1


async def test_tls_server_names_do_not_share_a_connection(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    server = await start_h11(nursery)
    transport = make_transport()
    url = f"http://127.0.0.1:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        await get(transport, url, sni="a.example")
        await get(transport, url, sni="b.example")
        await get(transport, url, sni="a.example")  # back to the first name: its connection
        await get(transport, url)  # no name: a key of its own

    assert [r.connection for r in server.requests] == [0, 1, 0, 2]
    assert transport.connections_opened == 3
    assert transport.idle_count == 3


async def test_max_idle_bounds_the_pool_and_closes_the_rest(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    server = await start_h11(nursery, AllAtOnce(3))
    transport = make_transport(max_idle=1)
    assert transport.max_idle == 1
    url = f"http://127.0.0.1:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        await fill_pool(transport, url, 3)
        assert transport.connections_opened == 3
        assert server.connections == 3
        assert transport.idle_count == 1
        await server.wait_client_closed(2)  # the two not kept were closed

        await get(transport, url)  # and the one kept is used
    assert transport.connections_opened == 3
    assert server.connections == 3
    assert server.client_closed == 2
    assert transport.idle_count == 1


async def test_a_full_pool_makes_room_for_another_destination(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    """Idle connections to one endpoint must not keep every other endpoint from reuse: the one
    idle longest is closed to make room."""
    a = await start_h11(nursery, AllAtOnce(2))
    b = await start_h11(nursery)
    transport = make_transport(max_idle=2)
    with trio.fail_after(TIMEOUT):
        await fill_pool(transport, f"http://127.0.0.1:{a.port}/", 2)
        assert transport.idle_count == 2
        for _ in range(3):
            await get(transport, f"http://127.0.0.1:{b.port}/")
        await a.wait_client_closed(1)  # A's oldest idle connection made room
    assert b.connections == 1
    assert transport.idle_count == 2


async def test_connection_close_from_the_server_is_honoured(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    async def app(received: Received) -> Reply:
        # The server says `Connection: close` but leaves the socket open: only the header can
        # tell the client not to reuse it.
        if len(server.requests) == 1:
            return Reply(headers=[(b"Connection", b"close")])
        return Reply()

    server = await start_h11(nursery, app)
    transport = make_transport()
    url = f"http://127.0.0.1:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        response, body = await get(transport, url)
        assert response.headers["connection"] == "close"
        assert body == b"ok"
        assert transport.idle_count == 0
        await server.wait_client_closed(1)  # the client closed it itself

        _, body = await get(transport, url)
    assert body == b"ok"
    assert transport.connections_opened == 2
    assert [r.connection for r in server.requests] == [0, 1]


async def test_idle_connection_closed_by_the_server_is_replaced(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    async def app(_: Received) -> Reply:
        return Reply(hang_up=len(server.requests) == 1)  # no `Connection: close` header

    server = await start_h11(nursery, app)
    transport = make_transport()
    url = f"http://127.0.0.1:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        await get(transport, url)
        assert transport.idle_count == 1
        await server.wait_server_closed(1)
        response, body = await get(transport, url)

    assert response.status_code == 200
    assert body == b"ok"
    assert transport.connections_opened == 2
    assert [r.connection for r in server.requests] == [0, 1]
    assert transport.idle_count == 1


async def test_idle_connection_with_unasked_bytes_is_not_reused(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    """A server that answers a keep-alive timeout with a `408` before closing (the bytes wait
    in the idle socket): the next request must not take them for its response."""
    first_done = trio.Event()
    hung_up = trio.Event()
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        async with stream:
            assert await read_head(stream)
            await stream.send_all(OK_RESPONSE)
            if first:
                await first_done.wait()
                await stream.send_all(
                    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                    b"Content-Length: 0\r\n\r\n"
                )
                await stream.aclose()
                hung_up.set()
                return
            while await read_head(stream):
                await stream.send_all(OK_RESPONSE)

    port = await serve(nursery, handler)
    transport = make_transport()
    url = f"http://127.0.0.1:{port}/hook"
    with trio.fail_after(TIMEOUT):
        await get(transport, url)
        assert transport.idle_count == 1
        first_done.set()
        await hung_up.wait()
        response, body = await get(transport, url)

    assert (response.status_code, body) == (200, b"ok")
    assert transport.connections_opened == 2
    assert connections == 2


async def test_reused_connection_closed_before_any_response_byte_is_retried_once(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    """The idle connection passes the readability check, then the server closes it on the
    request (a keep-alive timeout racing the request): the transport's own retry path."""

    async def app(received: Received) -> Reply:
        return Reply(drop=received.connection == 0 and len(server.requests) == 2)

    server = await start_h11(nursery, app)
    transport = make_transport()
    url = f"http://127.0.0.1:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        await get(transport, url)
        response, body = await get(transport, url)

    assert (response.status_code, body) == (200, b"ok")
    assert [r.connection for r in server.requests] == [0, 0, 1]
    assert transport.connections_opened == 2
    assert transport.idle_count == 1


async def test_a_request_dropped_everywhere_is_sent_at_most_twice(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    """With several pooled connections to a receiver that acts on a request and then drops the
    connection, the retry goes to one new connection, not to each pooled one in turn."""

    async def drop(_: Received) -> Reply:
        return Reply(drop=True)

    app = AllAtOnce(3, then=drop)
    server = await start_h11(nursery, app)
    transport = make_transport(max_idle=3)
    url = f"http://127.0.0.1:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        await fill_pool(transport, url, 3)
        assert transport.idle_count == 3
        with pytest.raises(httpx.RemoteProtocolError):
            await get(transport, url)
    assert app.arrived == 3 + 2
    assert transport.connections_opened == 4
    assert transport.idle_count == 2


async def test_reused_connection_reset_before_any_response_byte_is_retried_once(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    """As above, but the server resets the connection (it closes with the request unread,
    as on a keep-alive timeout that fires once the request has arrived): still closed by the
    peer before any byte of the response, so the request goes out again on a fresh one."""
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        async with stream:
            assert await read_head(stream)
            await stream.send_all(OK_RESPONSE)
            if first:
                await trio.lowlevel.wait_readable(stream.socket)  # the second request is here
                abort(stream)
                return
            while await read_head(stream):
                await stream.send_all(OK_RESPONSE)

    port = await serve(nursery, handler)
    transport = make_transport()
    url = f"http://127.0.0.1:{port}/hook"
    with trio.fail_after(TIMEOUT):
        await get(transport, url)
        response, body = await get(transport, url)

    assert (response.status_code, body) == (200, b"ok")
    assert transport.connections_opened == 2
    assert connections == 2


async def test_reused_connection_closed_after_part_of_a_response_is_not_retried(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    requests = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal requests
        async with stream:
            assert await read_head(stream)
            requests += 1
            await stream.send_all(OK_RESPONSE)
            assert await read_head(stream)
            requests += 1
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Le")  # then close

    port = await serve(nursery, handler)
    transport = make_transport()
    url = f"http://127.0.0.1:{port}/hook"
    with trio.fail_after(TIMEOUT):
        await get(transport, url)
        with pytest.raises(httpx.RemoteProtocolError):
            await get(transport, url)

    assert transport.connections_opened == 1
    assert requests == 2
    assert transport.idle_count == 0


async def test_fresh_connection_closed_without_a_response_is_not_retried(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    async def app(_: Received) -> Reply:
        return Reply(drop=True)

    server = await start_h11(nursery, app)
    transport = make_transport()
    with trio.fail_after(TIMEOUT), pytest.raises(httpx.RemoteProtocolError):
        await get(transport, f"http://127.0.0.1:{server.port}/hook")

    assert transport.connections_opened == 1
    assert server.connections == 1
    assert len(server.requests) == 1
    assert transport.idle_count == 0


async def test_a_request_opened_ahead_is_sent_on_the_connection_opened_for_it(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    """`open_ahead` connects before the request is due; sending then uses that connection."""
    server = await start_h11(nursery)
    transport = make_transport()
    request = httpx.Request("POST", f"http://127.0.0.1:{server.port}/hook", content=b"{}")
    with trio.fail_after(TIMEOUT):
        ahead = await transport.open_ahead(request)
        await trio.testing.wait_all_tasks_blocked()
        assert (server.connections, len(server.requests)) == (1, 0)  # connected, nothing sent
        _, body = await fetch(transport, request, ahead)
        assert body == b"ok"
        ahead.close()  # sent: nothing left to close

    assert [(r.method, r.body, r.connection) for r in server.requests] == [(b"POST", b"{}", 0)]
    assert transport.connections_opened == 1 and transport.idle_count == 1


async def test_a_connection_opened_ahead_and_dropped_by_the_server_is_replaced_once(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    """Like a pooled one, a connection opened ahead may be closed by the receiver while it
    waits (an idle timeout): the request then goes once more, on a new connection."""

    async def app(received: Received) -> Reply:
        return Reply(drop=received.connection == 0)

    server = await start_h11(nursery, app)
    transport = make_transport()
    request = httpx.Request("GET", f"http://127.0.0.1:{server.port}/hook")
    with trio.fail_after(TIMEOUT):
        ahead = await transport.open_ahead(request)
        response, body = await fetch(transport, request, ahead)

    assert (response.status_code, body) == (200, b"ok")
    assert [r.connection for r in server.requests] == [0, 1]
    assert transport.connections_opened == 2


async def test_a_connection_opened_ahead_and_never_used_is_closed(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    server = await start_h11(nursery)
    transport = make_transport()
    request = httpx.Request("GET", f"http://127.0.0.1:{server.port}/hook")
    with trio.fail_after(TIMEOUT):
        ahead = await transport.open_ahead(request)
        ahead.close()
        await server.wait_client_closed(1)
    assert server.requests == [] and transport.idle_count == 0


async def test_idle_connection_older_than_keepalive_expiry_is_not_reused(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    server = await start_h11(nursery)
    transport = make_transport(keepalive_expiry=0.05)
    url = f"http://127.0.0.1:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        await get(transport, url)
        assert transport.idle_count == 1
        await trio.sleep(0.1)
        _, body = await get(transport, url)
        await server.wait_client_closed(1)  # the expired one was closed

    assert body == b"ok"
    assert transport.connections_opened == 2
    assert [r.connection for r in server.requests] == [0, 1]
    assert transport.idle_count == 1


# --- framing -------------------------------------------------------------------------------

LARGE = bytes(range(256)) * 1200  # 300 KiB, more than one read


async def test_chunked_body_is_read_completely(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    chunks = [b"first,", b"second,", LARGE[:70_000], b"end"]

    async def app(_: Received) -> Reply:
        return Reply(chunks=chunks)

    server = await start_h11(nursery, app)
    transport = make_transport()
    request = httpx.Request("GET", f"http://127.0.0.1:{server.port}/hook")
    with trio.fail_after(TIMEOUT):
        response = await transport.handle_async_request(request)
        data = b""
        async for chunk in body_stream(response):
            data += chunk
        await response.aclose()

    assert response.headers["transfer-encoding"] == "chunked"
    assert data == b"".join(chunks)
    assert transport.idle_count == 1  # read to the end: clean, kept


async def test_body_larger_than_64_kib_is_read_completely(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    async def app(_: Received) -> Reply:
        return Reply(body=LARGE)

    server = await start_h11(nursery, app)
    transport = make_transport()
    with trio.fail_after(TIMEOUT):
        response, body = await get(transport, f"http://127.0.0.1:{server.port}/hook")

    assert response.headers["content-length"] == str(len(LARGE))
    assert len(body) == len(LARGE)
    assert body == LARGE
    assert transport.idle_count == 1


async def test_head_response_has_no_body_and_the_connection_is_reused(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    async def app(received: Received) -> Reply:
        if received.method == b"HEAD":
            return Reply(headers=[(b"content-length", b"100")], body=b"")
        return Reply()

    server = await start_h11(nursery, app)
    transport = make_transport()
    url = f"http://127.0.0.1:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        response, body = await fetch(transport, httpx.Request("HEAD", url))
        assert (response.headers["content-length"], body) == ("100", b"")
        assert transport.idle_count == 1
        _, body = await get(transport, url)

    assert body == b"ok"
    assert transport.connections_opened == 1


async def test_informational_responses_are_skipped(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            assert await read_head(stream)
            await stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            await trio.sleep(0.001)
            await stream.send_all(
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 4\r\n\r\ndone"
            )
            while await read_head(stream):
                await stream.send_all(OK_RESPONSE)

    port = await serve(nursery, handler)
    transport = make_transport()
    url = f"http://127.0.0.1:{port}/hook"
    with trio.fail_after(TIMEOUT):
        response, body = await get(transport, url)
        assert transport.idle_count == 1
        _, second = await get(transport, url)  # the stream is still in step

    assert response.status_code == 200
    assert response.headers["x-final"] == "yes"
    assert "link" not in response.headers
    assert body == b"done"
    assert second == b"ok"
    assert transport.connections_opened == 1


# --- errors --------------------------------------------------------------------------------


async def test_connection_closed_mid_body_raises_and_is_not_pooled(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        async with stream:
            assert await read_head(stream)
            if first:  # promises 100 bytes, sends 10, closes
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
                return
            while True:
                await stream.send_all(OK_RESPONSE)
                if not await read_head(stream):
                    return

    port = await serve(nursery, handler)
    transport = make_transport()
    url = f"http://127.0.0.1:{port}/hook"
    with trio.fail_after(TIMEOUT):
        response = await transport.handle_async_request(httpx.Request("GET", url))
        assert response.status_code == 200
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await response.aread()
        await response.aclose()
        assert transport.idle_count == 0

        _, body = await get(transport, url)
    assert body == b"ok"
    assert transport.connections_opened == 2
    assert connections == 2


async def test_connection_refused_is_connect_error(
    make_transport: Callable[..., PushTransport],
) -> None:
    transport = make_transport()
    port = unused_port()
    with trio.fail_after(TIMEOUT), pytest.raises(httpx.ConnectError):
        await get(transport, f"http://127.0.0.1:{port}/hook")
    assert transport.connections_opened == 0
    assert transport.idle_count == 0


async def test_unsupported_scheme(make_transport: Callable[..., PushTransport]) -> None:
    transport = make_transport()
    with pytest.raises(httpx.UnsupportedProtocol):
        await get(transport, "ftp://127.0.0.1:2121/file")
    assert transport.connections_opened == 0


# --- cancellation and closing --------------------------------------------------------------


async def test_cancelled_while_waiting_for_the_response(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    closed_by_client = trio.Event()

    async def silent(stream: trio.SocketStream) -> None:
        async with stream:
            assert await read_head(stream)
            while await stream.receive_some(65536):  # never answers; waits for the close
                pass
            closed_by_client.set()

    silent_port = await serve(nursery, silent)
    healthy = await start_h11(nursery)
    transport = make_transport()
    with trio.fail_after(TIMEOUT):
        start = trio.current_time()
        with trio.move_on_after(0.2) as scope:
            await get(transport, f"http://127.0.0.1:{silent_port}/hook")
        assert scope.cancelled_caught
        assert trio.current_time() - start < 2
        assert transport.idle_count == 0
        await closed_by_client.wait()  # the connection was closed, not leaked

        _, body = await get(transport, f"http://127.0.0.1:{healthy.port}/hook")
    assert body == b"ok"
    assert transport.idle_count == 1


async def test_cancelled_while_reading_the_body(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    closed_by_client = trio.Event()

    async def stalls(stream: trio.SocketStream) -> None:
        async with stream:
            assert await read_head(stream)
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
            while await stream.receive_some(65536):
                pass
            closed_by_client.set()

    port = await serve(nursery, stalls)
    transport = make_transport()
    with trio.fail_after(TIMEOUT):
        response = await transport.handle_async_request(
            httpx.Request("GET", f"http://127.0.0.1:{port}/hook")
        )
        with trio.move_on_after(0.2) as scope:
            await response.aread()
        assert scope.cancelled_caught
        await response.aclose()
        assert transport.idle_count == 0
        await closed_by_client.wait()


async def test_response_not_read_to_the_end_is_closed_not_pooled(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    async def app(_: Received) -> Reply:
        return Reply(body=LARGE)

    server = await start_h11(nursery, app)
    transport = make_transport()
    request = httpx.Request("GET", f"http://127.0.0.1:{server.port}/hook")
    with trio.fail_after(TIMEOUT):
        response = await transport.handle_async_request(request)  # body not read at all
        await response.aclose()
        assert transport.idle_count == 0
        await server.wait_client_closed(1)

        response = await transport.handle_async_request(request)
        chunks = cast(AsyncGenerator[bytes, None], body_stream(response).__aiter__())
        async with contextlib.aclosing(chunks):
            assert await anext(chunks)  # part of it, as push reads a prefix
            await response.aclose()
        assert transport.idle_count == 0
        await server.wait_client_closed(2)

    assert transport.connections_opened == 2


async def test_closed_transport_closes_idle_connections_and_refuses_requests(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    server = await start_h11(nursery)
    transport = make_transport()
    url = f"http://127.0.0.1:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        in_flight = await transport.handle_async_request(httpx.Request("GET", url))
        await get(transport, url)  # on a second connection, kept idle
        assert transport.idle_count == 1
        await transport.aclose()
        assert transport.idle_count == 0
        await server.wait_client_closed(1)  # the idle one

        assert await in_flight.aread() == b"ok"  # one in use finishes, then is closed too
        await in_flight.aclose()
        assert transport.idle_count == 0
        await server.wait_client_closed(2)

        with pytest.raises(httpx.TransportError):
            await get(transport, url)
    assert server.connections == 2


# --- names ---------------------------------------------------------------------------------


async def test_host_name_is_resolved(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    server = await start_h11(nursery)
    transport = make_transport()
    with trio.fail_after(TIMEOUT):
        _, body = await get(transport, f"http://localhost:{server.port}/hook")
    assert body == b"ok"
    assert server.requests[0].headers[0] == (b"Host", f"localhost:{server.port}".encode())


AddrInfo = (
    tuple[Literal[socket.AddressFamily.AF_INET], socket.SocketKind, int, str, tuple[str, int]]
    | tuple[
        Literal[socket.AddressFamily.AF_INET6],
        socket.SocketKind,
        int,
        str,
        tuple[str, int, int, int] | tuple[int, bytes],
    ]
)


@dataclass
class FixedResolver(trio.abc.HostnameResolver):
    answers: list[AddrInfo]

    async def getaddrinfo(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        return self.answers

    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
    ) -> tuple[str, str]:
        raise NotImplementedError


async def test_addresses_of_a_name_are_tried_in_turn(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    server = await start_h11(nursery)
    dead = unused_port()
    stream = socket.SocketKind.SOCK_STREAM
    refused: AddrInfo = (socket.AddressFamily.AF_INET, stream, 6, "", ("127.0.0.1", dead))
    live: AddrInfo = (socket.AddressFamily.AF_INET, stream, 6, "", ("127.0.0.1", server.port))
    transport = make_transport()
    url = f"http://multi.test:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        trio.socket.set_custom_hostname_resolver(FixedResolver([refused, live]))
        _, body = await get(transport, url)
        assert body == b"ok"
        assert transport.connections_opened == 1

        trio.socket.set_custom_hostname_resolver(FixedResolver([refused]))
        with pytest.raises(httpx.ConnectError):
            await get(transport, f"http://other.test:{server.port}/hook")


async def test_bytes_after_a_response_keep_the_connection_out_of_the_pool(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    """A server that writes more than its response: the extra bytes must never be read as the
    next request's response, so the connection is closed, not pooled."""
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        async with stream:
            while await read_head(stream):
                extra = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfake!"
                await stream.send_all(OK_RESPONSE + extra)

    port = await serve(nursery, handler)
    transport = make_transport()
    url = f"http://127.0.0.1:{port}/"
    with trio.fail_after(TIMEOUT):
        _, first = await get(transport, url)
        assert transport.idle_count == 0
        _, second = await get(transport, url)
    assert (first, second) == (b"ok", b"ok")
    assert transport.connections_opened == 2 and connections == 2


async def test_something_else_than_http_is_a_protocol_error(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            await read_head(stream)
            await stream.send_all(b"220 smtp.example ESMTP ready\r\n\r\n")

    port = await serve(nursery, handler)
    with trio.fail_after(TIMEOUT), pytest.raises(httpx.RemoteProtocolError):
        await get(make_transport(), f"http://127.0.0.1:{port}/")


# --- TLS -----------------------------------------------------------------------------------


async def serve_tls(
    nursery: trio.Nursery, ca: trustme.CA, name: str, sni_seen: list[str | None]
) -> H11Server:
    """An HTTPS server holding a certificate for `name`; records the SNI name of each handshake."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)

    def remember(_sock: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        sni_seen.append(server_name)

    context.sni_callback = remember
    server = H11Server()

    async def handler(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, context, server_side=True)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError:
            await stream.aclose()
            return
        await server.handle(cast(trio.SocketStream, tls))  # it only sends and receives

    server.port = await serve(nursery, handler)
    return server


async def test_https_verifies_the_certificate_for_the_tls_name_not_the_address(
    nursery: trio.Nursery, make_transport: Callable[..., PushTransport]
) -> None:
    """Push pins the URL to the checked address and sends the name as SNI: the certificate must
    match that name, and a connection made for it is reused without a second handshake."""
    ca = trustme.CA()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    sni_seen: list[str | None] = []
    server = await serve_tls(nursery, ca, "hooks.example.com", sni_seen)
    transport = make_transport(ssl_context=client_context)
    url = f"https://127.0.0.1:{server.port}/hook"
    with trio.fail_after(TIMEOUT):
        for _ in range(2):
            response, body = await get(transport, url, sni="hooks.example.com")
            assert (response.status_code, body) == (200, b"ok")
        assert transport.connections_opened == 1
        assert sni_seen == ["hooks.example.com"]

        with pytest.raises(httpx.ConnectError):  # a certificate for another name
            await get(transport, url, sni="other.example.com")
        with pytest.raises(httpx.ConnectError):  # no name: checked against 127.0.0.1
            await get(transport, url)
    assert transport.idle_count == 1

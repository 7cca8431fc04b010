"""`PushTransport` against real servers on 127.0.0.1: the bytes on the wire, keep-alive reuse and
its limits, stale and misbehaving connections, errors as httpx exceptions, cancellation."""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import h11
import httpx
import pytest
import trio
import trustme

from chronos_server.delivery.transport import PushTransport

Handler = Callable[[trio.SocketStream], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[int]:
    """A TCP server on an ephemeral port, one task per connection; yields the port."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@dataclass
class Seen:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


Answer = tuple[int, list[tuple[str, str]], bytes]


@dataclass
class H11Server:
    """An h11 server: records every request and the connection it came on, answers with
    `answer(seen)`. `close_after` closes each connection after that many responses."""

    answer: Callable[[Seen], Answer] = lambda _seen: (200, [], b"ok")
    close_after: int | None = None
    requests: list[Seen] = field(default_factory=list)
    connection_of: list[int] = field(default_factory=list)
    connections: int = 0
    eofs: int = 0  # connections the client closed
    closed: int = 0  # connections closed, by either side
    gate: trio.Event | None = None  # answers wait for it when set

    async def __call__(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        number = self.connections
        conn = h11.Connection(h11.SERVER)
        answered = 0
        try:
            while True:
                event = await _next(conn, stream)
                if isinstance(event, h11.ConnectionClosed):
                    self.eofs += 1
                    return
                assert isinstance(event, h11.Request)
                body = b""
                while not isinstance(part := await _next(conn, stream), h11.EndOfMessage):
                    assert isinstance(part, h11.Data)
                    body += part.data
                seen = Seen(event.method, event.target, list(event.headers), body)
                self.requests.append(seen)
                self.connection_of.append(number)
                if self.gate is not None:
                    await self.gate.wait()
                status, headers, content = self.answer(seen)
                headers = [*headers, ("content-length", str(len(content)))]
                data = conn.send(h11.Response(status_code=status, headers=headers)) or b""
                data += (conn.send(h11.Data(data=content)) or b"") if content else b""
                data += conn.send(h11.EndOfMessage()) or b""
                await stream.send_all(data)
                answered += 1
                if conn.our_state is not h11.DONE or answered == self.close_after:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            self.closed += 1
            await stream.aclose()


async def _next(conn: h11.Connection, stream: trio.abc.Stream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(bytes(await stream.receive_some(65536)))


async def read_all(transport: PushTransport, request: httpx.Request) -> httpx.Response:
    """Send, read the whole body, close: what push does (it reads a prefix)."""
    with trio.fail_after(5):
        response = await transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
    return response


def post(port: int, path: str = "/hook", **kwargs: object) -> httpx.Request:
    return httpx.Request("POST", f"http://127.0.0.1:{port}{path}", content=b"{}", **kwargs)  # type: ignore[arg-type]


async def eventually(check: Callable[[], bool]) -> None:
    """Wait (at most 5 s) until `check()` holds: a server task updates what it looks at."""
    with trio.fail_after(5):
        while not check():  # noqa: ASYNC110 - the state lives in another task's counters
            await trio.sleep(0.01)


async def closed_port() -> int:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


# --- the exchange ----------------------------------------------------------------------------


async def test_request_goes_out_exactly_and_the_response_comes_back() -> None:
    server = H11Server(answer=lambda _s: (201, [("x-answer", "yes")], b'{"ok":true}'))
    async with serving(server) as port, PushTransport() as transport:
        request = httpx.Request(
            "PUT",
            f"http://127.0.0.1:{port}/chronos?tenant=7&x=%20y",
            content=b'{"job_id":"j1"}',
            headers={"Host": "hooks.example.com", "X-App-Secret": "s3", "User-Agent": "ua/1"},
        )
        response = await read_all(transport, request)
    [seen] = server.requests
    assert seen.method == b"PUT"
    assert seen.target == b"/chronos?tenant=7&x=%20y"
    headers = dict(seen.headers)
    assert headers[b"host"] == b"hooks.example.com"
    assert headers[b"x-app-secret"] == b"s3"
    assert headers[b"user-agent"] == b"ua/1"
    assert headers[b"content-length"] == b"15"
    assert seen.body == b'{"job_id":"j1"}'
    assert response.status_code == 201
    assert response.headers["x-answer"] == "yes"
    assert response.content == b'{"ok":true}'
    assert response.request is request


async def test_chunked_and_large_bodies_are_read_whole() -> None:
    big = bytes(range(256)) * 400  # 100 KiB: several reads

    async def chunked(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while not isinstance(await _next(conn, stream), h11.EndOfMessage):
            pass
        headers = [("transfer-encoding", "chunked")]
        data = conn.send(h11.Response(status_code=200, headers=headers)) or b""
        for i in range(0, len(big), 30_000):
            data += conn.send(h11.Data(data=big[i : i + 30_000])) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        await stream.send_all(data)
        await stream.aclose()

    async with serving(chunked) as port, PushTransport() as transport:
        response = await read_all(transport, post(port))
    assert response.content == big


async def test_informational_response_is_skipped() -> None:
    async def continue_then_ok(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while not isinstance(await _next(conn, stream), h11.EndOfMessage):
            pass
        data = conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
        data += conn.send(h11.Response(status_code=200, headers=[("content-length", "4")])) or b""
        data += (conn.send(h11.Data(data=b"done")) or b"") + (conn.send(h11.EndOfMessage()) or b"")
        await stream.send_all(data)
        await stream.aclose()

    async with serving(continue_then_ok) as port, PushTransport() as transport:
        response = await read_all(transport, post(port))
    assert response.status_code == 200 and response.content == b"done"


async def test_head_response_has_no_body_even_with_a_length() -> None:
    async def head_answer(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while not isinstance(await _next(conn, stream), h11.EndOfMessage):
            pass
        headers = [("content-length", "1000")]
        data = conn.send(h11.Response(status_code=200, headers=headers)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        await stream.send_all(data)
        await trio.sleep_forever()  # keeps the connection open: no EOF to end a body early

    async with serving(head_answer) as port, PushTransport() as transport:
        request = httpx.Request("HEAD", f"http://127.0.0.1:{port}/")
        response = await read_all(transport, request)
    assert response.status_code == 200 and response.content == b""


# --- keep-alive ------------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_connection() -> None:
    server = H11Server()
    async with serving(server) as port, PushTransport() as transport:
        await read_all(transport, post(port))
        assert transport.idle_count == 1
        await read_all(transport, post(port))
        assert transport.idle_count == 1
        assert transport.connections_opened == 1
    assert server.connection_of == [1, 1]


async def test_different_tls_names_never_share_a_connection() -> None:
    server = H11Server()
    async with serving(server) as port, PushTransport() as transport:
        await read_all(transport, post(port, extensions={"sni_hostname": "a.example"}))
        await read_all(transport, post(port, extensions={"sni_hostname": "b.example"}))
        await read_all(transport, post(port, extensions={"sni_hostname": "a.example"}))
    assert server.connection_of == [1, 2, 1]


async def test_at_most_max_idle_connections_are_kept() -> None:
    server = H11Server(gate=trio.Event())
    async with serving(server) as port, PushTransport(max_idle=1) as transport:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(read_all, transport, post(port))
            await eventually(lambda: len(server.requests) == 3)
            server.gate.set()  # type: ignore[union-attr]
        assert transport.connections_opened == 3
        assert transport.idle_count == 1
        await eventually(lambda: server.eofs == 2)  # the two beyond max_idle were closed


async def test_connection_close_from_the_server_is_honoured() -> None:
    server = H11Server(answer=lambda _s: (200, [("connection", "close")], b"bye"))
    async with serving(server) as port, PushTransport() as transport:
        await read_all(transport, post(port))
        assert transport.idle_count == 0
        await read_all(transport, post(port))
    assert server.connection_of == [1, 2]


async def test_idle_connection_closed_by_the_server_is_replaced() -> None:
    server = H11Server(close_after=1)  # closes after each response, without saying so
    async with serving(server) as port, PushTransport() as transport:
        await read_all(transport, post(port))
        await eventually(lambda: server.closed == 1)
        await trio.sleep(0.05)  # the FIN has reached the client's socket
        response = await read_all(transport, post(port))
    assert response.status_code == 200
    assert transport.connections_opened == 2
    assert server.connection_of == [1, 2]


async def test_request_on_a_connection_that_dies_unanswered_is_sent_again_once() -> None:
    """The keep-alive race: the server closes a reused connection as the request arrives (it
    never answered it), so the request goes once more, on a new connection."""
    calls = 0

    async def drop_second_request(stream: trio.SocketStream) -> None:
        nonlocal calls
        calls += 1
        conn = h11.Connection(h11.SERVER)
        while not isinstance(await _next(conn, stream), h11.EndOfMessage):
            pass
        data = conn.send(h11.Response(status_code=200, headers=[("content-length", "2")])) or b""
        data += (conn.send(h11.Data(data=b"ok")) or b"") + (conn.send(h11.EndOfMessage()) or b"")
        await stream.send_all(data)
        if calls == 1:
            conn.start_next_cycle()
            while not isinstance(await _next(conn, stream), h11.EndOfMessage):
                pass  # read the second request, then hang up without an answer
        await stream.aclose()

    async with serving(drop_second_request) as port, PushTransport() as transport:
        await read_all(transport, post(port))
        response = await read_all(transport, post(port))
    assert response.content == b"ok"
    assert calls == 2 and transport.connections_opened == 2


async def test_expired_idle_connection_is_not_reused() -> None:
    server = H11Server()
    async with serving(server) as port, PushTransport(keepalive_expiry=0.05) as transport:
        await read_all(transport, post(port))
        await trio.sleep(0.1)
        await read_all(transport, post(port))
    assert server.connection_of == [1, 2]


async def test_response_closed_unread_closes_its_connection() -> None:
    server = H11Server(answer=lambda _s: (200, [], b"x" * 10_000))
    async with serving(server) as port, PushTransport() as transport:
        with trio.fail_after(5):
            response = await transport.handle_async_request(post(port))
            await response.aclose()
        assert transport.idle_count == 0


# --- failures --------------------------------------------------------------------------------


async def test_connection_refused_is_a_connect_error() -> None:
    port = await closed_port()
    async with PushTransport() as transport:
        with pytest.raises(httpx.ConnectError):
            await read_all(transport, post(port))


async def test_body_cut_short_is_an_error_and_the_connection_is_dropped() -> None:
    async def short_body(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while not isinstance(await _next(conn, stream), h11.EndOfMessage):
            pass
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await stream.aclose()

    async with serving(short_body) as port, PushTransport() as transport:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await read_all(transport, post(port))
        assert transport.idle_count == 0


async def test_garbage_instead_of_a_response_is_a_protocol_error() -> None:
    async def garbage(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"SMTP ready\r\n\r\n")
        await stream.aclose()

    async with serving(garbage) as port, PushTransport() as transport:
        with pytest.raises(httpx.RemoteProtocolError):
            await read_all(transport, post(port))


async def test_unsupported_scheme() -> None:
    async with PushTransport() as transport:
        with pytest.raises(httpx.UnsupportedProtocol):
            await read_all(transport, httpx.Request("POST", "ftp://127.0.0.1/x", content=b"{}"))


@pytest.mark.parametrize(
    "headers",
    [
        [(b"X-Evil", b"a\r\nInjected: yes")],
        [(b"X-Nul", b"a\x00b")],
        [(b"Transfer-Encoding", b"chunked")],
        [(b"Connection", b"close")],
        [(b"Bad Name", b"v")],
    ],
)
async def test_headers_that_would_change_the_request_are_refused(
    headers: list[tuple[bytes, bytes]],
) -> None:
    server = H11Server()
    async with serving(server) as port, PushTransport() as transport:
        request = httpx.Request("POST", f"http://127.0.0.1:{port}/", content=b"{}")
        request.headers = httpx.Headers([*request.headers.raw, *headers])
        with pytest.raises(httpx.LocalProtocolError):
            await read_all(transport, request)
    assert server.requests == []


async def test_cancelled_request_leaves_nothing_behind() -> None:
    async def never_answers(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    server = H11Server()
    async with (
        serving(never_answers) as silent,
        serving(server) as port,
        PushTransport() as transport,
    ):
        with trio.move_on_after(0.2) as scope:
            await transport.handle_async_request(post(silent))
        assert scope.cancelled_caught
        assert transport.idle_count == 0
        response = await read_all(transport, post(port))
        assert response.status_code == 200


async def test_closed_transport_refuses_requests_and_closes_idle_connections() -> None:
    server = H11Server()
    async with serving(server) as port:
        transport = PushTransport()
        await read_all(transport, post(port))
        assert transport.idle_count == 1
        await transport.aclose()
        assert transport.idle_count == 0
        await eventually(lambda: server.eofs == 1)
        with pytest.raises(httpx.TransportError):
            await read_all(transport, post(port))


async def test_a_host_name_is_resolved() -> None:
    server = H11Server()
    async with serving(server) as port, PushTransport() as transport:
        if not socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM):
            pytest.skip("localhost does not resolve here")
        request = httpx.Request("POST", f"http://localhost:{port}/", content=b"{}")
        response = await read_all(transport, request)
    assert response.status_code == 200


# --- TLS -------------------------------------------------------------------------------------


@asynccontextmanager
async def serving_tls(
    ca: trustme.CA, name: str, seen_names: list[str | None]
) -> AsyncIterator[int]:
    """An HTTPS server whose certificate is for `name`; records the SNI name each client sent."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)

    def remember_sni(_sock: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        seen_names.append(server_name)

    context.sni_callback = remember_sni
    plain = H11Server(answer=lambda _s: (200, [], b"secure"))

    async def handler(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, context, server_side=True)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError:
            return
        await plain(tls)

    async with serving(handler) as port:
        yield port


async def test_https_checks_the_certificate_against_the_sni_name() -> None:
    ca = trustme.CA()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    names: list[str | None] = []
    async with (
        serving_tls(ca, "hooks.example.com", names) as port,
        PushTransport(ssl_context=client_context) as transport,
    ):
        # Pinned as push pins it: the address in the URL, the name in Host and SNI.
        request = httpx.Request(
            "POST",
            f"https://127.0.0.1:{port}/hook",
            content=b"{}",
            headers={"Host": f"hooks.example.com:{port}"},
            extensions={"sni_hostname": "hooks.example.com"},
        )
        response = await read_all(transport, request)
        assert response.content == b"secure"
        await read_all(transport, request)  # reused: no second handshake
        assert transport.connections_opened == 1
        assert names == ["hooks.example.com"]

        wrong = httpx.Request(
            "POST",
            f"https://127.0.0.1:{port}/hook",
            content=b"{}",
            extensions={"sni_hostname": "other.example.com"},
        )
        with pytest.raises(httpx.ConnectError):
            await read_all(transport, wrong)

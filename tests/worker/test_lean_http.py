"""The worker's own HTTP/1.1 client (`lean_http`) against scripted servers on real sockets, and
which sender `transport.open_sender` picks. Real I/O, so no autojump clock: every test is bounded
by a real-time `fail_after` and nothing in it sleeps."""

from __future__ import annotations

import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import httpx
import pytest
import trio
import trio.lowlevel
import trio.testing
import trustme

from chronos_worker import lean_http
from chronos_worker.lean_http import LeanClient, LeanHTTPError
from chronos_worker.settings import WorkerSettings
from chronos_worker.transport import HttpxSender, LeanSender, open_sender

from .conftest import API_KEY

LIMIT = 10  # real seconds; every exchange here is local and immediate
HEADERS = {"Authorization": f"Bearer {API_KEY}", "User-Agent": "test"}
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

Serve = Callable[["Peer"], Awaitable[None]]


class Peer:
    """One accepted connection of the scripted server: read requests, write raw answers."""

    def __init__(self, stream: trio.SocketStream, number: int) -> None:
        self.stream = stream
        self.number = number  # 1 for the server's first connection, ...
        self._buffer = bytearray()

    async def request(self) -> tuple[str, dict[str, str], bytes]:
        """The next request: its start line, headers (lower-case names) and body."""
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._buffer += await self._receive()
        start, *lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            self._buffer += await self._receive()
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        return start, headers, body

    async def _receive(self) -> bytes:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError
        return data

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)


@asynccontextmanager
async def scripted_server(serve: Serve) -> AsyncIterator[tuple[int, list[Peer]]]:
    """A server on 127.0.0.1 running `serve` for each connection; yields (port, peers)."""
    peers: list[Peer] = []

    async def handle(stream: trio.SocketStream) -> None:
        peer = Peer(stream, len(peers) + 1)
        peers.append(peer)
        try:
            await serve(peer)
        except (EOFError, trio.BrokenResourceError):
            pass
        finally:
            await stream.aclose()

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
            yield listeners[0].socket.getsockname()[1], peers
            nursery.cancel_scope.cancel()


def client(port: int) -> LeanClient:
    return LeanClient(scheme="http", host="127.0.0.1", port=port, prefix="", headers=HEADERS)


async def answer_all(peer: Peer, answer: bytes = OK) -> None:
    while True:
        await peer.request()
        await peer.send(answer)


async def test_requests_reuse_one_connection_and_carry_the_fixed_headers() -> None:
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def serve(peer: Peer) -> None:
        while True:
            seen.append(await peer.request())
            await peer.send(OK)

    async with scripted_server(serve) as (port, peers):
        lean = client(port)
        for n in range(3):
            answer = await lean.request("POST", f"/v1/things/{n}", b'{"n":%d}' % n)
            assert (answer.status, answer.reason, answer.body) == (200, "OK", b"ok")
        assert (await lean.request("GET", "/v1/jobs/j1", None)).body == b"ok"
        await lean.aclose()

    assert len(peers) == 1
    assert [start for start, _, _ in seen] == [
        "POST /v1/things/0 HTTP/1.1",
        "POST /v1/things/1 HTTP/1.1",
        "POST /v1/things/2 HTTP/1.1",
        "GET /v1/jobs/j1 HTTP/1.1",
    ]
    _, headers, body = seen[1]
    assert body == b'{"n":1}'
    assert headers == {
        "host": f"127.0.0.1:{port}",
        "authorization": f"Bearer {API_KEY}",
        "user-agent": "test",
        "content-length": "7",
    }
    assert "content-length" not in seen[3][1]


async def test_a_base_url_prefix_goes_before_every_path() -> None:
    starts: list[str] = []

    async def serve(peer: Peer) -> None:
        starts.append((await peer.request())[0])
        await peer.send(OK)

    async with scripted_server(serve) as (port, _):
        lean = LeanClient(scheme="http", host="127.0.0.1", port=port, prefix="/chronos", headers={})
        await lean.request("POST", "/v1/worker/jobs/claim", b"{}")
        await lean.aclose()
    assert starts == ["POST /chronos/v1/worker/jobs/claim HTTP/1.1"]


@pytest.mark.parametrize(
    ("answer", "body", "reused"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello", True),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello", b"hello", True),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\nhel\r\n2\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n",
            b"hello",
            True,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"ok",
            True,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", b"ok", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok", False),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            % len(gzip.compress(b"zipped"))
            + gzip.compress(b"zipped"),
            b"zipped",
            True,
        ),
    ],
    ids=["length", "repeated-length", "chunked", "100-continue", "204", "close", "http1.0", "gzip"],
)
async def test_answer_framings(answer: bytes, body: bytes, reused: bool) -> None:
    async with scripted_server(lambda peer: answer_all(peer, answer)) as (port, peers):
        lean = client(port)
        assert (await lean.request("POST", "/a", b"x")).body == body
        assert (await lean.request("POST", "/a", b"x")).body == body
        await lean.aclose()
    assert len(peers) == (1 if reused else 2)


async def test_a_body_delimited_by_the_close_of_the_connection() -> None:
    async def serve(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\n\r\nbusy, ")
        await peer.send(b"come back later")

    async with scripted_server(serve) as (port, peers):
        lean = client(port)
        answer = await lean.request("POST", "/a", b"x")
        assert (answer.status, answer.reason) == (503, "Service Unavailable")
        assert answer.headers == {"retry-after": "3"}
        assert answer.body == b"busy, come back later"
        await lean.request("POST", "/a", b"x")  # a new connection: that one is closed
        await lean.aclose()
    assert len(peers) == 2


async def test_an_idle_connection_the_server_closed_is_replaced_before_use() -> None:
    async def serve(peer: Peer) -> None:
        await peer.request()
        await peer.send(OK)  # keep-alive in the answer, then closed anyway (idle timeout)

    async with scripted_server(serve) as (port, peers):
        lean = client(port)
        await lean.request("POST", "/a", b"x")
        [idle] = lean._idle
        await trio.lowlevel.wait_readable(idle.socket)  # the close has reached the client
        assert idle.stale()
        assert (await lean.request("POST", "/a", b"x")).body == b"ok"
        await lean.aclose()
    assert len(peers) == 2


async def test_a_reused_connection_closed_without_an_answer_is_retried_once_on_a_new_one() -> None:
    requests: list[int] = []

    async def serve(peer: Peer) -> None:
        await peer.request()
        requests.append(peer.number)
        await peer.send(OK)
        if peer.number == 1:
            await peer.request()  # the second request arrives; closed unanswered
            requests.append(peer.number)
            return
        await answer_all(peer)

    async with scripted_server(serve) as (port, peers):
        lean = client(port)
        await lean.request("POST", "/a", b"x")
        assert (await lean.request("POST", "/a", b"y")).body == b"ok"
        await lean.aclose()
    assert requests == [1, 1, 2]
    assert len(peers) == 2


async def test_a_new_connection_closed_without_an_answer_is_an_error_not_retried() -> None:
    async def serve(peer: Peer) -> None:
        await peer.request()

    async with scripted_server(serve) as (port, peers):
        lean = client(port)
        with pytest.raises(LeanHTTPError, match="without answering"):
            await lean.request("POST", "/a", b"x")
        await lean.aclose()
    assert len(peers) == 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "mid-answer"),
        (b"SMTP ready\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "malformed content-length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "malformed content-length"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported transfer-encoding"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\n\r\n", "unsupported content-encoding"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000, "answer head too large"),
    ],
    ids=["cut", "status", "length", "two-lengths", "header", "chunk", "te", "ce", "huge-head"],
)
async def test_an_unusable_answer_is_an_error_and_the_connection_is_dropped(
    answer: bytes, error: str
) -> None:
    async def serve(peer: Peer) -> None:
        if peer.number > 1:
            await answer_all(peer)
        await peer.request()
        await peer.send(answer)

    async with scripted_server(serve) as (port, peers):
        lean = client(port)
        with pytest.raises(LeanHTTPError, match=error):
            await lean.request("POST", "/a", b"x")
        assert (await lean.request("POST", "/a", b"x")).body == b"ok"
        await lean.aclose()
    assert len(peers) == 2


async def test_a_cancelled_request_does_not_leave_its_connection_for_reuse() -> None:
    arrived = trio.Event()

    async def serve(peer: Peer) -> None:
        await peer.request()
        if peer.number == 1:
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
            arrived.set()
            await trio.sleep_forever()
        await peer.send(OK)

    async with scripted_server(serve) as (port, peers):
        lean = client(port)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lean.request, "POST", "/a", b"x")
            await arrived.wait()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert (await lean.request("POST", "/a", b"x")).body == b"ok"
        await lean.aclose()
    assert len(peers) == 2


async def test_requests_beyond_the_connection_limit_wait_for_a_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lean_http, "MAX_CONNECTIONS", 2)
    release = trio.Event()
    arrived: list[int] = []

    async def serve(peer: Peer) -> None:
        while True:
            await peer.request()
            arrived.append(peer.number)
            await release.wait()
            await peer.send(OK)

    async with scripted_server(serve) as (port, peers):
        lean = client(port)
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(lean.request, "POST", "/a", b"x")
            await trio.testing.wait_all_tasks_blocked()
            assert sorted(arrived) == [1, 2]  # the third request waits for a free connection
            release.set()
        await lean.aclose()
    assert sorted(arrived) == [1, 1, 2] or sorted(arrived) == [1, 2, 2]
    assert len(peers) == 2


async def test_no_server_is_an_error() -> None:
    async with scripted_server(answer_all) as (port, _):
        pass  # the port is free again
    lean = client(port)
    with trio.fail_after(LIMIT), pytest.raises(LeanHTTPError, match="cannot connect"):
        await lean.request("POST", "/a", b"x")
    await lean.aclose()


async def test_https_with_the_ssl_settings_httpx_would_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)

    async def serve(peer: Peer) -> None:
        tls = trio.SSLStream(peer.stream, server_context, server_side=True)
        peer.stream = tls  # type: ignore[assignment]
        await answer_all(peer)

    with ca.cert_pem.tempfile() as ca_file:
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # honoured by httpx.create_ssl_context
        async with scripted_server(serve) as (port, peers):
            settings = WorkerSettings.create(api_key=API_KEY, base_url=f"https://localhost:{port}")
            async with open_sender(settings, HEADERS) as sender:
                assert isinstance(sender, LeanSender)
                for _ in range(2):
                    answer = await sender.send("POST", "/a", b"x", LIMIT)
                    assert (answer.status, answer.body) == (200, b"ok")
    assert len(peers) == 1


@pytest.mark.parametrize(
    ("base_url", "env", "lean"),
    [
        ("http://127.0.0.1:8080", {}, True),
        ("https://chronos.example", {}, True),
        ("http://chronos.example/prefix", {}, True),
        ("http://127.0.0.1:8080", {"HTTP_PROXY": "http://proxy:3128"}, False),
        ("https://chronos.example", {"https_proxy": "http://proxy:3128"}, False),
        ("https://chronos.example", {"ALL_PROXY": "http://proxy:3128"}, False),
        ("http://user:secret@chronos.example", {}, False),
    ],
)
async def test_the_sender_is_lean_unless_a_proxy_or_credentials_need_httpx(
    monkeypatch: pytest.MonkeyPatch, base_url: str, env: dict[str, str], lean: bool
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = WorkerSettings.create(api_key=API_KEY, base_url=base_url)
    async with open_sender(settings, HEADERS) as sender:
        assert isinstance(sender, LeanSender if lean else HttpxSender)


async def test_an_injected_http_client_is_always_used() -> None:
    async with httpx.AsyncClient() as injected:
        settings = WorkerSettings.create(
            api_key=API_KEY, base_url="http://127.0.0.1:8080", http_client=injected
        )
        async with open_sender(settings, HEADERS) as sender:
            assert isinstance(sender, HttpxSender)

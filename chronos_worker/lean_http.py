"""`LeanClient`: the worker's own HTTP/1.1 client for its few kinds of request to one server.

Why not httpx for these: a claim or a report through `httpx.AsyncClient` costs 0.5-0.8 ms of
CPU in the worker (URL and header models, cookies, auth and redirect flows, the httpcore pool),
which at one job per claim is most of the worker's time. Here a request is one pre-built head
(`Host`, `Authorization`, `Content-Type`, `Accept`, `User-Agent` encoded once) plus the
`Content-Length` and the body, written in one `send_all`; the answer is parsed just enough: the
status line, the headers, and a body delimited by `Content-Length`, `chunked` or the close of the
connection (1xx answers are skipped; `gzip`/`deflate` bodies are decoded, though none is asked
for). It is used only when the SDK opens the connection itself and no proxy is configured
(`transport.open_sender`); an `http_client` given to `Chronos(...)` is always used as is.

Connections are kept alive and reused, one request at a time each, as many as there are
concurrent requests (the worker has a claim, a report and now and then a job lookup in flight;
more with single reports at a high `concurrency`), up to `MAX_CONNECTIONS`.
An idle connection the server has closed meanwhile is noticed before reuse (its socket is
readable: an EOF, or bytes nobody asked for) and replaced; if the server closes a reused
connection without a byte of answer (it closed it as idle just as the request left), the
request is sent once more on a new connection. A connection on which anything went wrong, or
whose request was cancelled, is closed, never reused.

Every failure (refused, reset, TLS, a malformed or oversized answer) is a `LeanHTTPError`; the
caller bounds each request with a Trio cancel scope.
"""

from __future__ import annotations

import select
import ssl
import zlib
from dataclasses import dataclass
from typing import Protocol

import trio

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
# httpx's defaults: at most 100 connections (more requests wait for one), 20 kept when idle.
MAX_CONNECTIONS = 100
MAX_IDLE = 20
READ_SIZE = 65536
_HAS_POLL = hasattr(select, "poll")


class LeanHTTPError(Exception):
    """The request got no usable answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, reason, headers (names in lower case), the whole body."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


class _Readable(Protocol):
    def fileno(self) -> int: ...


class _Connection:
    """One TCP (or TLS) connection and the bytes read from it but not used yet."""

    __slots__ = ("buffer", "socket", "stream")

    def __init__(self, stream: trio.abc.Stream, socket: _Readable) -> None:
        self.stream = stream
        self.socket = socket
        self.buffer = bytearray()

    def stale(self) -> bool:
        """True when the server closed it (or sent something) while it was idle."""
        if _HAS_POLL:
            poll = select.poll()
            poll.register(self.socket.fileno(), select.POLLIN)
            return bool(poll.poll(0))
        readable, _, _ = select.select([self.socket], [], [], 0)  # Windows
        return bool(readable)

    async def fill(self) -> None:
        """Read more into the buffer; `_Closed` at the end of the stream."""
        data = await self.stream.receive_some(READ_SIZE)
        if not data:
            raise _Closed
        self.buffer += data

    async def read_until_close(self) -> bytes:
        while len(self.buffer) <= MAX_BODY_BYTES:
            try:
                await self.fill()
            except _Closed:
                body = bytes(self.buffer)
                self.buffer.clear()
                return body
        raise LeanHTTPError("answer body too large")

    async def read_line(self, limit: int) -> bytes:
        """One CRLF-terminated line (without the CRLF)."""
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > limit:
                raise LeanHTTPError("answer line too long")
            await self.fill()
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    async def read_exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            await self.fill()
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    async def read_head(self) -> bytes:
        """The status line and headers, up to the blank line (excluded)."""
        start = 0
        while (end := self.buffer.find(b"\r\n\r\n", start)) < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise LeanHTTPError("answer head too large")
            start = max(0, len(self.buffer) - 3)
            await self.fill()
        head = bytes(self.buffer[:end])
        del self.buffer[: end + 4]
        return head


class _Closed(Exception):
    """The server closed the connection (an EOF where more was expected)."""


class LeanClient:
    """Keep-alive HTTP/1.1 to one origin (`scheme`, `host` in ASCII, `port`); `prefix` (a path
    without a trailing slash) goes before every request path and `headers` with every request."""

    def __init__(
        self,
        *,
        scheme: str,
        host: str,
        port: int,
        prefix: str,
        headers: dict[str, str],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._prefix = prefix
        self._ssl = ssl_context if scheme == "https" else None
        default_port = 443 if scheme == "https" else 80
        authority = host if ":" not in host else f"[{host}]"
        if port != default_port:
            authority = f"{authority}:{port}"
        lines = [f"Host: {authority}"] + [f"{name}: {value}" for name, value in headers.items()]
        self._fixed = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._idle: list[_Connection] = []
        self._in_use = trio.Semaphore(MAX_CONNECTIONS)
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await trio.aclose_forcefully(conn.stream)

    async def request(self, method: str, path: str, body: bytes | None) -> Answer:
        """Send one request, return its answer; `LeanHTTPError` if there is none."""
        head = self._head(method, path, body)
        data = head + body if body is not None else head
        try:
            self._in_use.acquire_nowait()
        except trio.WouldBlock:
            await self._in_use.acquire()
        try:
            conn, reused = await self._checkout()
            try:
                return await self._exchange(conn, method, data, reused=reused)
            except _Retry:
                pass
            conn, _ = await self._checkout(fresh=True)
            return await self._exchange(conn, method, data, reused=False)
        finally:
            self._in_use.release()

    def _head(self, method: str, path: str, body: bytes | None) -> bytes:
        start = f"{method} {self._prefix}{path} HTTP/1.1\r\n".encode("latin-1")
        length = b"" if body is None else b"Content-Length: %d\r\n" % len(body)
        return start + self._fixed + length + b"\r\n"

    async def _checkout(self, *, fresh: bool = False) -> tuple[_Connection, bool]:
        if self._closed:
            raise LeanHTTPError("client closed")
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.buffer and not conn.stale():
                return conn, True
            await trio.aclose_forcefully(conn.stream)
        return await self._connect(), False

    async def _connect(self) -> _Connection:
        try:
            tcp = await trio.open_tcp_stream(self._host, self._port)
        except OSError as exc:
            raise LeanHTTPError(f"cannot connect to {self._host}:{self._port}: {exc}") from exc
        if self._ssl is None:
            return _Connection(tcp, tcp.socket)
        tls = trio.SSLStream(tcp, self._ssl, server_hostname=self._host, https_compatible=True)
        try:
            await tls.do_handshake()
        except (trio.BrokenResourceError, OSError) as exc:
            await trio.aclose_forcefully(tcp)
            raise LeanHTTPError(f"TLS handshake with {self._host} failed: {exc!r}") from exc
        return _Connection(tls, tcp.socket)

    async def _exchange(
        self, conn: _Connection, method: str, data: bytes, *, reused: bool
    ) -> Answer:
        keep = False
        try:
            try:
                await conn.stream.send_all(data)
                await conn.fill()  # the first bytes of the answer
            except (_Closed, trio.BrokenResourceError, OSError) as exc:
                if reused:
                    raise _Retry from exc
                if isinstance(exc, _Closed):
                    raise LeanHTTPError("server closed the connection without answering") from exc
                raise LeanHTTPError(repr(exc)) from exc
            answer, keep = await _read_answer(conn, method)
            return answer
        except _Closed as exc:
            raise LeanHTTPError("server closed the connection mid-answer") from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise LeanHTTPError(repr(exc)) from exc
        finally:
            if keep and not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
            else:
                await trio.aclose_forcefully(conn.stream)


class _Retry(Exception):
    """A reused connection failed before any answer came: send again on a new one."""


async def _read_answer(conn: _Connection, method: str) -> tuple[Answer, bool]:
    """The next answer on `conn` and whether the connection can be reused."""
    while True:
        version, status, reason, headers = _parse_head(await conn.read_head())
        if status >= 200:
            break
        if status == 101:
            raise LeanHTTPError("unexpected protocol switch")
    keep = version == "HTTP/1.1" and "close" not in _tokens(headers.get("connection", ""))
    if method == "HEAD" or status in (204, 304):
        body = b""
    elif "transfer-encoding" in headers:
        if _tokens(headers["transfer-encoding"])[-1:] != ["chunked"]:
            raise LeanHTTPError(f"unsupported transfer-encoding {headers['transfer-encoding']!r}")
        body = await _read_chunked(conn)
    elif "content-length" in headers:
        body = await conn.read_exactly(_content_length(headers["content-length"]))
    else:
        body, keep = await conn.read_until_close(), False
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        body = _decode(body, encoding)
    return Answer(status, reason, headers, body), keep


def _parse_head(head: bytes) -> tuple[str, int, str, dict[str, str]]:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise LeanHTTPError(f"malformed status line {status_line[:100]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise LeanHTTPError(f"malformed header line {line[:100]!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return version, int(code), reason, headers


def _tokens(value: str) -> list[str]:
    return [token.strip().lower() for token in value.split(",") if token.strip()]


def _content_length(value: str) -> int:
    # Repeated identical values (`5, 5`) are allowed by RFC 9110; anything else is not.
    values = set(_tokens(value))
    if len(values) != 1 or not (length := values.pop()).isdigit():
        raise LeanHTTPError(f"malformed content-length {value!r}")
    if int(length) > MAX_BODY_BYTES:
        raise LeanHTTPError("answer body too large")
    return int(length)


async def _read_chunked(conn: _Connection) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_text = (await conn.read_line(1024)).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise LeanHTTPError(f"malformed chunk size {size_text[:20]!r}") from None
        if size < 0:
            raise LeanHTTPError("malformed chunk size")
        if size == 0:
            while await conn.read_line(MAX_HEAD_BYTES):  # trailers, up to the blank line
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise LeanHTTPError("answer body too large")
        parts.append(await conn.read_exactly(size))
        if await conn.read_exactly(2) != b"\r\n":
            raise LeanHTTPError("malformed chunk")


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise LeanHTTPError(f"unsupported content-encoding {encoding!r}")
    try:
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:  # raw deflate, as some servers send it
                return zlib.decompress(body, -zlib.MAX_WBITS)
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    except zlib.error as exc:
        raise LeanHTTPError(f"undecodable {encoding} body: {exc}") from exc

"""`HttpServer`: HTTP/1.1 on trio sockets and h11 — the connection loop, its limits, the stop.

Why not Hypercorn: it cost ~400 µs of CPU per request here against ~80 µs for this loop, and the
hardening work needs control it does not give (docs/decisions.md, "HTTP server").

One task per connection, in the server's nursery. Rules that keep connections from hanging:
- A request's head and its whole body (at most `max_body_bytes`) are read before the application
  sees it, so no answer leaves while the client is still sending and the next request on the
  connection always starts on a clean boundary. A body over the limit is answered 413 with
  `Connection: close`; the connection then lingers (write side shut, the rest read and dropped,
  bounded) so the client reads the answer instead of a reset.
- Idle between requests: `keep_alive_seconds` once the connection carried an authenticated
  request, `unauthenticated_idle_seconds` before; a started request must arrive within
  `head_timeout_seconds` (head) and `body_timeout_seconds` (body); a slow reader gets
  `body_timeout_seconds` to take a response. A client that leaves is noticed at once: idle
  connections read its EOF, and long-polls watch for it (`Request.cancel_on_disconnect`).
- At most `max_connections` are served at once. A new connection past the cap takes the place of
  an idle one (never authenticated first, then the longest idle), or else of the oldest parked
  long-poll (answered "no job" and closed); so idle sockets can never lock real clients out. When
  every connection is busy, up to `overflow_connections` more are accepted only to answer one
  request — `/healthz` and `/readyz` as usual, anything else 503 with `Retry-After` — and closed;
  beyond those, a new connection is closed at once.

Graceful stop (`stop()`): idle keep-alive connections close at once; requests in progress finish
and answer with `Connection: close`; the listener stays open, so a worker can still report a
result during the grace period (the application decides what it still serves).
`requests_in_flight` tells the owner when nothing is left; the owner cancels the nursery.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

import h11
import trio

from chronos_server.web.messages import App, Request, Response
from chronos_server.web.websocket import WebSocket, accept

log = logging.getLogger("chronos.http")

RECEIVE_BYTES = 65536
WATCH_BUFFER_BYTES = 65536  # a long-poll stops watching a client that keeps sending
LINGER_BYTES = 4 * 1024 * 1024
UNDER_PRESSURE_PATHS = frozenset({"/healthz", "/readyz"})
# accept() failures that mean "out of descriptors or memory right now": wait, do not crash.
CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


@dataclass(frozen=True)
class Limits:
    max_connections: int = 1000
    overflow_connections: int = 64
    keep_alive_seconds: float = 75.0  # > the 20 s long-poll plus margin (spec §10.2)
    unauthenticated_idle_seconds: float = 10.0
    head_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    overflow_timeout_seconds: float = 2.0
    linger_seconds: float = 1.0
    max_body_bytes: int = 1024 * 1024


_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True).encode())
    return _date[1]


class HttpServer:
    def __init__(self, app: App, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self.stopping = False
        self.connections = 0
        self.overflow = 0
        self.requests_in_flight = 0
        # Connections waiting for their next request, and long-polls watching their client,
        # oldest first: what a new connection past the cap may take the place of.
        self._idle: dict[_Connection, None] = {}
        self._parked: dict[_Connection, None] = {}
        self._quiet = trio.lowlevel.ParkingLot()

    async def serve(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept on every listener until cancelled (the owner cancels after the stop)."""
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept_loop, listener, nursery)
            task_status.started()

    def stop(self) -> None:
        """Begin the graceful stop: close idle keep-alive connections now (a connection that has
        not sent its first request yet may be a worker come to report), `Connection: close` on
        every answer from now on."""
        self.stopping = True
        for conn in list(self._idle):
            if conn.served:
                conn.close_if_idle()

    async def wait_quiet(self) -> None:
        """Wait until no request is being handled."""
        while self.requests_in_flight:
            await self._quiet.park()

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in CAPACITY_ERRNOS:
                        raise
                    log.error("accept: %s; pausing 100 ms", errno.errorcode.get(exc.errno or 0))
                    await trio.sleep(0.1)
                    continue
                if self.connections < self.limits.max_connections or self._evict_one():
                    self.connections += 1
                    nursery.start_soon(self._serve, stream, False)
                elif self.overflow < self.limits.overflow_connections:
                    self.overflow += 1
                    nursery.start_soon(self._serve, stream, True)
                else:
                    stream.socket.close()

    async def _serve(self, stream: trio.SocketStream, overflow: bool) -> None:
        conn = _Connection(self, stream, overflow)
        try:
            await conn.run()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            if overflow:
                self.overflow -= 1
            else:
                self.connections -= 1
            await conn.close()

    def _evict_one(self) -> bool:
        """Make room past the cap: close an idle connection (unauthenticated first, then the
        longest idle) or else answer the oldest parked long-poll. False if all are busy."""
        victim = next((c for c in self._idle if not c.authenticated), None)
        victim = victim or next(iter(self._idle), None) or next(iter(self._parked), None)
        if victim is None:
            return False
        victim.evict()
        return True

    def _idle_changed(self, conn: _Connection, idle: bool) -> None:
        if idle:
            self._idle[conn] = None
        else:
            self._idle.pop(conn, None)

    def _parked_changed(self, conn: _Connection, parked: bool) -> None:
        if parked:
            self._parked[conn] = None
        else:
            self._parked.pop(conn, None)

    def _request_started(self) -> None:
        self.requests_in_flight += 1

    def _request_done(self) -> None:
        self.requests_in_flight -= 1
        if self.requests_in_flight == 0:
            self._quiet.unpark_all()


class _Connection:
    def __init__(self, server: HttpServer, stream: trio.SocketStream, overflow: bool) -> None:
        self.server = server
        self.limits = server.limits
        self.stream = stream
        self.overflow = overflow
        self.h11 = h11.Connection(h11.SERVER)
        self.authenticated = False
        self.unread_body = False  # answered before the whole body arrived: linger on close
        self.peer_gone = False
        self.evicted = False  # made room for a new connection: answer, then close
        self.head_request = False
        self.served = 0
        self.upgraded = False  # handed over to a WebSocket: no HTTP response, then closed
        self._idle_scope: trio.CancelScope | None = None
        self._park_scope: trio.CancelScope | None = None
        try:
            self.client = str(stream.socket.getpeername()[0])
        except OSError:
            self.client = ""

    def close_if_idle(self) -> None:
        if self._idle_scope is not None:
            self._idle_scope.cancel()
            self.server._idle_changed(self, False)

    def evict(self) -> None:
        self.evicted = True
        self.close_if_idle()
        if self._park_scope is not None:
            self._park_scope.cancel()
            self.server._parked_changed(self, False)

    async def run(self) -> None:
        while not self.peer_gone:
            try:
                request = await self._read_request()
            except h11.RemoteProtocolError as exc:
                await self._refuse(exc.error_status_hint, "bad_request", "Malformed HTTP request")
                return
            if request is None:
                return
            if isinstance(request, Response):
                await self._write(request)
                return
            response = await self._respond(request)
            self.served += 1
            if self.peer_gone or self.upgraded:
                return
            await self._write(response)
            if self.h11.our_state is h11.MUST_CLOSE:
                return
            self.h11.start_next_cycle()

    async def _respond(self, request: Request) -> Response:
        if self.overflow and request.path not in UNDER_PRESSURE_PATHS:
            response = self.server.app.error(
                503, "service_unavailable", "Too many connections; try again shortly"
            )
            response.headers.append(("Retry-After", "1"))
            return response
        self.server._request_started()
        try:
            return await self.server.app.handle(request)
        finally:
            self.server._request_done()
            self.authenticated = self.authenticated or request.authenticated

    # --- reading ----------------------------------------------------------------------------

    async def _read_request(self) -> Request | Response | None:
        """The next request with its body; a Response to send and close on; None to close."""
        event = self.h11.next_event()
        idle = event is h11.NEED_DATA and not self.h11.trailing_data[0]
        if idle and not await self._wait_for_data():
            return None
        with trio.move_on_after(self.limits.head_timeout_seconds):
            if event is h11.NEED_DATA:
                event = await self._next_event()
            if isinstance(event, h11.Request):
                return await self._with_body(event)
        return None  # connection closed, or the head did not arrive in time

    async def _wait_for_data(self) -> bool:
        """Idle between requests: True once bytes arrive; False on EOF, timeout or stop (a
        new connection still gets its first request: a worker may connect to report)."""
        if self.server.stopping and self.served:
            return False
        if self.overflow:
            timeout = self.limits.overflow_timeout_seconds
        elif self.authenticated:
            timeout = self.limits.keep_alive_seconds
        else:
            timeout = self.limits.unauthenticated_idle_seconds
        with trio.move_on_after(timeout) as scope:
            self._idle_scope = scope
            self.server._idle_changed(self, True)
            try:
                data = await self.stream.receive_some(RECEIVE_BYTES)
            finally:
                self.server._idle_changed(self, False)
                self._idle_scope = None
        if scope.cancelled_caught or not data:
            return False
        self.h11.receive_data(data)
        return True

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            self.h11.receive_data(await self.stream.receive_some(RECEIVE_BYTES))

    async def _with_body(self, head: h11.Request) -> Request | Response | None:
        limit = self.limits.max_body_bytes
        declared = _content_length(list(head.headers))
        if declared is not None and declared > limit:
            return self._too_large()
        if self.h11.they_are_waiting_for_100_continue:
            await self.stream.send_all(
                self.h11.send(h11.InformationalResponse(status_code=100, headers=[]))
            )
        chunks: list[bytes] = []
        size = 0
        with trio.move_on_after(self.limits.body_timeout_seconds):
            while True:
                event = await self._next_event()
                if isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > limit:
                        return self._too_large()
                    chunks.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return self._request(head, b"".join(chunks))
                else:
                    return None
        return None

    def _request(self, head: h11.Request, body: bytes) -> Request:
        path, _, query = head.target.decode("latin-1").partition("?")
        self.head_request = head.method == b"HEAD"
        headers = list(head.headers)
        upgrade = any(k == b"upgrade" and v.lower() == b"websocket" for k, v in headers)
        return Request(
            head.method.decode("ascii"),
            path,
            query,
            headers,
            body,
            self.client,
            cancel_on_disconnect=self.cancel_on_disconnect,
            accept_websocket=(
                (lambda extra: self._accept_websocket(headers, head.target, extra))
                if upgrade
                else None
            ),
        )

    async def _accept_websocket(
        self,
        headers: list[tuple[bytes, bytes]],
        target: bytes,
        extra: list[tuple[bytes, bytes]],
    ) -> WebSocket:
        protocol, data = accept(headers, target.decode("latin-1"), extra)
        await self.stream.send_all(data)
        self.upgraded = True
        return WebSocket(self.stream, protocol, self.h11.trailing_data[0])

    def _too_large(self) -> Response:
        self.unread_body = True
        response = self.server.app.error(413, "bad_request", "Request body too large")
        response.close = True
        return response

    # --- a long-poll watching its client ----------------------------------------------------

    @asynccontextmanager
    async def cancel_on_disconnect(self) -> AsyncIterator[None]:
        # An error of the block (the store unavailable, say) leaves the nursery as itself, not
        # wrapped in an ExceptionGroup, so the application answers it as it would anywhere
        # else (503, not 500). Cancellations are not caught: the nursery's scope needs them.
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_for_eof, nursery.cancel_scope)
            self._park_scope = nursery.cancel_scope
            self.server._parked_changed(self, True)
            try:
                yield
            except Exception as exc:
                failure = exc
            finally:
                self.server._parked_changed(self, False)
                self._park_scope = None
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _watch_for_eof(self, scope: trio.CancelScope) -> None:
        try:
            while len(self.h11.trailing_data[0]) < WATCH_BUFFER_BYTES:
                data = await self.stream.receive_some(RECEIVE_BYTES)
                if not data:
                    break
                self.h11.receive_data(data)  # a pipelined next request: kept for later
            else:
                return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.peer_gone = True
        scope.cancel()

    # --- writing and closing ----------------------------------------------------------------

    async def _refuse(self, status: int, code: str, message: str) -> None:
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.unread_body = True
            response = self.server.app.error(status, code, message)
            response.close = True
            await self._write(response)

    async def _write(self, response: Response) -> None:
        close = response.close or self.overflow or self.evicted or self.server.stopping
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
            (b"date", http_date()),
        ]
        if response.status == 204:  # no content: neither a type nor a length (RFC 9110 §8.6)
            headers = headers[2:]
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers)
        if close:
            headers.append((b"connection", b"close"))
        try:
            reason = HTTPStatus(response.status).phrase.encode()
        except ValueError:
            reason = b""
        out = self.h11.send(
            h11.Response(status_code=response.status, headers=headers, reason=reason)
        )
        if response.body and not self.head_request:
            out += self.h11.send(h11.Data(data=response.body)) or b""
        out += self.h11.send(h11.EndOfMessage()) or b""
        with trio.move_on_after(self.limits.body_timeout_seconds) as scope:
            await self.stream.send_all(out or b"")
        if scope.cancelled_caught:
            self.peer_gone = True

    async def close(self) -> None:
        """Close; after an answer sent before the whole request arrived, shut the write side
        and read what is left for a moment, so the client sees the answer, not a reset."""
        try:
            if self.unread_body and not self.peer_gone:
                await self._linger()
        finally:
            self.stream.socket.close()  # never blocks, also when the stop cancels us

    async def _linger(self) -> None:
        with (
            trio.move_on_after(self.limits.linger_seconds),
            suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            await self.stream.send_eof()
            left = LINGER_BYTES
            while left > 0:
                data = await self.stream.receive_some(RECEIVE_BYTES)
                if not data:
                    break
                left -= len(data)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    return None

"""`WebSocket`: a server-side WebSocket on a connection the HTTP server upgraded (wsproto does
the handshake and the framing; RFC 6455).

Text messages only (a binary one closes the channel, 1003); a message over `max_message_bytes`
closes it (1009); pings are answered; a close from the peer is answered and ends `receive()`.
`send()` may be called from several tasks (one lock), and gives up on a peer that does not read
for `send_timeout_seconds` (the channel closes: the server never buffers without bound).
A peer whose host vanished (no FIN, no RST) is noticed by the kernel: TCP keep-alive probes an
idle connection after `KEEPALIVE_IDLE_SECONDS` and gives up after `KEEPALIVE_PROBES` unanswered
probes `KEEPALIVE_INTERVAL_SECONDS` apart, and data left unacknowledged that long fails too
(`TCP_USER_TIMEOUT`): the next `receive()` or `send()` raises `WebSocketClosed`, at no CPU cost
to the server while the peer is alive (application pings cost a read and a write each).
"""

from __future__ import annotations

import socket
from contextlib import suppress

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

RECEIVE_BYTES = 65536
KEEPALIVE_IDLE_SECONDS = 20
KEEPALIVE_INTERVAL_SECONDS = 5
KEEPALIVE_PROBES = 2  # a vanished peer: given up 30 s after the last byte from it


def keep_alive(sock: trio.socket.SocketType) -> None:
    """TCP keep-alive on `sock` (and the user timeout, where the platform has them)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_SECONDS),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_SECONDS),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
        (
            "TCP_USER_TIMEOUT",
            1000 * (KEEPALIVE_IDLE_SECONDS + KEEPALIVE_INTERVAL_SECONDS * KEEPALIVE_PROBES),
        ),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class WebSocketClosed(Exception):
    """The channel is closed (by either side, or the connection broke)."""


class HandshakeRefused(Exception):
    """The upgrade request is not a valid WebSocket handshake."""


def accept(
    headers: list[tuple[bytes, bytes]], path: str, extra_headers: list[tuple[bytes, bytes]]
) -> tuple[Connection, bytes]:
    """Check an upgrade request already parsed by the HTTP layer; the frame protocol object and
    the `101 Switching Protocols` bytes to send."""
    handshake = WSConnection(ConnectionType.SERVER)
    try:
        handshake.initiate_upgrade_connection(headers, path)
        if not any(isinstance(e, Request) for e in handshake.events()):
            raise HandshakeRefused("not a WebSocket handshake")
        data = handshake.send(AcceptConnection(extra_headers=extra_headers))
    except (RemoteProtocolError, LocalProtocolError) as exc:
        raise HandshakeRefused(str(exc)) from exc
    assert handshake.connection is not None
    return handshake.connection, data


class WebSocket:
    def __init__(
        self,
        stream: trio.SocketStream,
        protocol: Connection,
        leftover: bytes = b"",
        *,
        max_message_bytes: int = 1024 * 1024,
        send_timeout_seconds: float = 30.0,
    ) -> None:
        self._stream = stream
        self._ws = protocol
        self._send_lock = trio.Lock()
        self._max = max_message_bytes
        self._send_timeout = send_timeout_seconds
        self._parts: list[str] = []
        self._size = 0
        self.close_code: int | None = None
        self.close_reason = ""
        with suppress(OSError):  # not a TCP socket (a test's socket pair): nothing to set
            keep_alive(stream.socket)
        if leftover:
            self._ws.receive_data(leftover)

    @property
    def open(self) -> bool:
        return self._ws.state is ConnectionState.OPEN

    async def receive(self) -> str:
        """The next text message; raises WebSocketClosed once the channel is closed."""
        while True:
            for event in self._ws.events():
                message = await self._handle(event)
                if message is not None:
                    return message
            if self._ws.state is ConnectionState.CLOSED:
                raise WebSocketClosed(self.close_reason)
            try:
                data = await self._stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise WebSocketClosed("connection lost") from exc
            if not data:
                self.close_code = self.close_code or 1006
                raise WebSocketClosed("connection lost")
            try:
                self._ws.receive_data(data)
            except RemoteProtocolError as exc:
                await self.close(1002, "protocol error")
                raise WebSocketClosed(str(exc)) from exc

    async def _handle(self, event: object) -> str | None:
        if isinstance(event, TextMessage):
            self._size += len(event.data)
            if self._size > self._max:
                await self.close(1009, "message too big")
                raise WebSocketClosed("message too big")
            self._parts.append(event.data)
            if not event.message_finished:
                return None
            message, self._parts, self._size = "".join(self._parts), [], 0
            return message
        if isinstance(event, BytesMessage):
            await self.close(1003, "text messages only")
            raise WebSocketClosed("binary message")
        if isinstance(event, Ping):
            await self._send_bytes(self._ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            self.close_code, self.close_reason = event.code, event.reason or ""
            with suppress(LocalProtocolError):
                await self._send_bytes(self._ws.send(event.response()))
            raise WebSocketClosed(self.close_reason)
        return None

    async def send(self, text: str) -> None:
        if self._ws.state is not ConnectionState.OPEN:
            raise WebSocketClosed(self.close_reason or "closed")
        await self._send_bytes(self._ws.send(TextMessage(data=text)))

    async def ping(self) -> None:
        if self._ws.state is ConnectionState.OPEN:
            await self._send_bytes(self._ws.send(Ping()))

    async def _send_bytes(self, data: bytes) -> None:
        async with self._send_lock:
            with trio.move_on_after(self._send_timeout) as scope:
                try:
                    await self._stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise WebSocketClosed("connection lost") from exc
            if scope.cancelled_caught:
                self._stream.socket.close()
                raise WebSocketClosed("the peer does not read")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once), then close the connection."""
        if self._ws.state is ConnectionState.OPEN:
            self.close_code, self.close_reason = code, reason
            with suppress(WebSocketClosed, LocalProtocolError):
                await self._send_bytes(self._ws.send(CloseConnection(code=code, reason=reason)))
        self._stream.socket.close()

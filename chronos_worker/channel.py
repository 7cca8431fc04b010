"""The client end of the worker channel (`GET /v1/worker/stream`, extension): opening the
WebSocket (trio-websocket does the handshake and the framing), the messages as JSON, and the
mapping of every failure to the SDK's tree at this boundary.

    open_channel(settings)   -> a `WebSocketConnection`, closed (1000) on exit
      401/403 to the upgrade -> ChronosAuthError
      another 4xx (404 ...)  -> NoChannel: the server has no channel (e.g. the hosted API)
      no answer, a 5xx, 429,
      a broken channel       -> ChronosRequestError (`status` None, or the HTTP status;
                                `retry_after` for 429/503; `close_code` when the server closed)

`channel_possible(settings)`: whether `protocol="auto"` tries the channel at all. Not with an
injected `http_client` (requests go through it, for tests or a proxy; a WebSocket cannot) nor
with a proxy configured in the environment for the base URL's scheme (trio-websocket connects
directly).
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from .api import USER_AGENT
from .errors import ChronosAuthError, ChronosError, ChronosRequestError
from .settings import WorkerSettings

CHANNEL_PATH = "/v1/worker/stream"
CONNECT_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 5.0
# What the worker accepts from the server: a `jobs` message holds up to the credits granted
# (at most 1,000 jobs), each with its payload.
MAX_RECEIVED_BYTES = 64 * 1024 * 1024


class NoChannel(ChronosError):
    """The server answered the upgrade with a refusal that means "no such endpoint here"."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ChannelBroken(ChronosRequestError):
    """The channel closed or broke after it was open; `close_code` if the server closed it."""

    def __init__(self, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


def channel_url(base_url: str) -> str:
    """`http(s)://host[:port][/prefix]` -> `ws(s)://host[:port][/prefix]/v1/worker/stream`."""
    scheme, rest = base_url.split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest + CHANNEL_PATH


def channel_possible(settings: WorkerSettings) -> bool:
    if settings.http_client is not None:
        return False
    url = httpx.URL(settings.base_url)
    proxies = urllib.request.getproxies_environment()
    return not (url.userinfo or proxies.get(url.scheme) or proxies.get("all"))


@asynccontextmanager
async def open_channel(settings: WorkerSettings) -> AsyncIterator[WebSocketConnection]:
    headers = [
        (b"authorization", f"Bearer {settings.api_key}".encode()),
        (b"user-agent", USER_AGENT.encode()),
    ]
    url = channel_url(settings.base_url)
    ssl_context = httpx.create_ssl_context() if url.startswith("wss:") else None
    try:
        async with open_websocket_url(
            url,
            ssl_context,
            extra_headers=headers,
            max_message_size=MAX_RECEIVED_BYTES,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            disconnect_timeout=CLOSE_TIMEOUT_SECONDS,
        ) as ws:
            _keep_alive(ws)
            yield ws
    except ConnectionRejected as exc:
        raise _rejected(exc) from exc
    except HandshakeError as exc:
        cause = exc.__cause__ or exc
        raise ChronosRequestError(f"worker channel: no connection ({cause!r})") from exc
    except ConnectionClosed as exc:
        code = exc.reason.code if exc.reason is not None else None
        why = exc.reason.reason if exc.reason is not None else None
        raise ChannelBroken(f"worker channel closed ({code} {why or ''})".strip(), code) from exc


KEEPALIVE_IDLE_SECONDS = 20
KEEPALIVE_INTERVAL_SECONDS = 5
KEEPALIVE_PROBES = 2


def _keep_alive(ws: WebSocketConnection) -> None:
    """TCP keep-alive on the channel's socket: a server whose host vanished (no FIN, no RST) is
    given up ~30 s after the last byte from it, where pings (every `heartbeat_seconds`, 60 on
    Chronos) would take twice that. trio-websocket keeps its stream private: where it is not a
    TCP socket (or not reachable), the pings alone remain."""
    stream = getattr(ws, "_stream", None)
    stream = getattr(stream, "transport_stream", stream)  # under TLS
    sock = getattr(stream, "socket", None)
    if sock is None:
        return
    options = (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_SECONDS),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_SECONDS),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
        (
            "TCP_USER_TIMEOUT",
            1000 * (KEEPALIVE_IDLE_SECONDS + KEEPALIVE_INTERVAL_SECONDS * KEEPALIVE_PROBES),
        ),
    )
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in options:
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
    except OSError:
        return


def _rejected(exc: ConnectionRejected) -> ChronosError:
    status = exc.status_code
    body = (exc.body or b"").decode("utf-8", "replace")[:200]
    text = f"worker channel refused: HTTP {status} {body}".strip()
    if status in (401, 403):
        return ChronosAuthError(text, status)
    if status in (408, 429) or status >= 500:
        return ChronosRequestError(text, status, _retry_after(exc), None)
    return NoChannel(text, status)


def _retry_after(exc: ConnectionRejected) -> float | None:
    for name, value in exc.headers or []:
        if name.lower() == b"retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if 0 <= seconds < float("inf") else None
    return None


async def send_json(ws: WebSocketConnection, message: dict[str, Any]) -> None:
    await ws.send_message(json.dumps(message, separators=(",", ":")))


async def receive_json(ws: WebSocketConnection, limit_s: float) -> dict[str, Any]:
    """The next message, an object with a string `type`; `ChronosRequestError` if none came
    within `limit_s` or it is malformed."""
    with trio.move_on_after(limit_s):
        text = await ws.get_message()
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ChronosRequestError(f"worker channel: malformed message {str(text)[:100]!r}")
        return message
    raise ChronosRequestError(f"worker channel: no message from the server in {limit_s:g} s")

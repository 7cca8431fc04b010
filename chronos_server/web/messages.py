"""`Request` and `Response`: what the server hands the application and what it writes back.

A `Request` carries its whole body: the server reads it (bounded) before the application sees
the request, so no answer is ever sent while the client is still sending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chronos_server.web.websocket import WebSocket


@asynccontextmanager
async def _no_watch() -> AsyncIterator[None]:
    yield


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    client: str = ""
    # Set by the application once the request carried a valid API key: the connection then gets
    # the long keep-alive timeout instead of the short one for unauthenticated clients.
    authenticated: bool = False
    # `async with request.cancel_on_disconnect():` cancels the block if the client goes away
    # (a long-poll must not outlive its caller); the server supplies it.
    cancel_on_disconnect: Callable[[], AbstractAsyncContextManager[None]] = _no_watch
    # For an `Upgrade: websocket` request: completes the handshake and hands the connection
    # over (the server then writes no HTTP response); raises HandshakeRefused if it is not one.
    accept_websocket: Callable[[list[tuple[bytes, bytes]]], Awaitable[WebSocket]] | None = None

    def header(self, name: bytes) -> str | None:
        """The first value of a header (`name` in lower case), decoded as Latin-1."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"
    close: bool = False  # answer with `Connection: close` and close after sending


class App(Protocol):
    """What the server serves: every request becomes one response; never raises."""

    async def handle(self, request: Request) -> Response: ...

    def error(self, status: int, code: str, message: str) -> Response:
        """An error answer in the application's envelope, for what the server refuses itself
        (malformed HTTP, a body over the limit, too many connections)."""
        ...

"""A raw HTTP/1.1 client for connection-level tests: one socket, requests written byte for byte,
responses parsed with h11, so a test controls exactly what reaches the server and when."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11
import trio


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        parts = urlsplit(url)
        assert parts.hostname and parts.port
        return cls(await trio.open_tcp_stream(parts.hostname, parts.port))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        chunked: bool = False,
        pace: float = 0.0,
    ) -> RawResponse:
        await self.send_request(
            method, path, body=body, headers=headers, chunked=chunked, pace=pace
        )
        return await self.response()

    async def send_request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        chunked: bool = False,
        pace: float = 0.0,
    ) -> None:
        """Send a request; with `pace`, its body goes in 64 KiB pieces that far apart (a client
        still sending when an early answer arrives)."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        head = [("Host", "test"), *(headers or {}).items()]
        if chunked:
            head.append(("Transfer-Encoding", "chunked"))
        elif body or method in ("POST", "PUT", "PATCH"):
            head.append(("Content-Length", str(len(body))))
        await self.stream.send_all(
            self.h11.send(h11.Request(method=method, target=path, headers=head)) or b""
        )
        step = 65536 if pace else max(1, len(body))
        for start in range(0, len(body), step):
            await self.stream.send_all(
                self.h11.send(h11.Data(data=body[start : start + step])) or b""
            )
            if pace:
                await trio.sleep(pace)
        await self.stream.send_all(self.h11.send(h11.EndOfMessage()) or b"")

    async def response(self) -> RawResponse:
        status, headers, chunks = 0, {}, []
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return RawResponse(status, headers, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before a response")

    async def closed_by_server(self) -> bool:
        """True once the server has closed its side (EOF), reading and dropping anything else."""
        try:
            while await self.stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        return True

    async def aclose(self) -> None:
        await self.stream.aclose()

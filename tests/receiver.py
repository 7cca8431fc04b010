"""A real push receiver for tests: a Hypercorn ASGI app on 127.0.0.1:0.

It verifies the Chronos signature with its own HMAC code (independent of the server's) and the
Standard Webhooks signature with the `standardwebhooks` package, records every delivery, and
answers from a script of (status, delay) steps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from standardwebhooks.webhooks import Webhook

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Delivery:
    method: str
    headers: dict[str, str]
    body: bytes
    chronos_ok: bool
    standard_ok: bool
    arrived: float = field(default_factory=time.time)  # wall clock, when the body was read

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    secret: str
    script: list[tuple[int, float]] = field(default_factory=list)  # (status, delay seconds)
    after_script: tuple[int, float] = (200, 0.0)  # the answer once the script is used up
    deliveries: list[Delivery] = field(default_factory=list)
    url: str = ""
    received: trio.Event = field(default_factory=trio.Event)

    def chronos_valid(self, headers: dict[str, str], body: bytes) -> bool:
        sig = headers.get("x-chronos-signature", "")
        ts = headers.get("x-chronos-timestamp", "")
        exec_id = headers.get("x-chronos-delivery-id", "")
        if not (sig.startswith("sha256=") and ts.isdigit() and exec_id):
            return False
        msg = exec_id.encode() + b"." + ts.encode() + b"." + body
        expected = hmac.new(self.secret.encode(), msg, hashlib.sha256).hexdigest()
        return hmac.compare_digest(sig[len("sha256=") :], expected)

    def standard_valid(self, headers: dict[str, str], body: bytes) -> bool:
        try:
            Webhook(self.secret).verify(body, headers)
        except Exception:
            return False
        return True

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]  # startup / shutdown
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.deliveries.append(
            Delivery(
                scope["method"],
                headers,
                body,
                self.chronos_valid(headers, body),
                self.standard_valid(headers, body),
            )
        )
        self.received.set()
        self.received = trio.Event()
        status, delay = self.script.pop(0) if self.script else self.after_script
        if delay:
            await trio.sleep(delay)
        reply = json.dumps({"status": status}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": reply})


async def start_receiver(nursery: trio.Nursery, receiver: Receiver) -> Receiver:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.1

    async def run(*, task_status: trio.TaskStatus[list[str]]) -> None:
        await serve(receiver.app, config, task_status=task_status)  # type: ignore[arg-type]

    urls: list[str] = await nursery.start(run)
    receiver.url = urls[0]
    return receiver

"""An in-process worker channel for worker tests: `FakeChannel.open` replaces
`chronos_worker.streaming.open_channel` and plays the server's side of `GET /v1/worker/stream`
over memory channels (no socket, so `MockClock` drives it).

It hands out the jobs queued on a `FakeServer` (its `add_job`) as credits allow, acknowledges
every result and heartbeat, answers pings and `drain` like the real server (`drained` once every
job sent on the channel is reported), and records what a test checks: the credits granted, the
most jobs the worker could hold at once by the server's count (credits left plus jobs sent and
not yet reported), and how many results came for each execution."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from chronos_worker.settings import WorkerSettings

from .fakes import FakeServer

HEARTBEAT_SECONDS = 15


class FakeWebSocket:
    """The worker's end: what `StreamRunner` uses of a `WebSocketConnection`."""

    def __init__(
        self, incoming: trio.MemoryReceiveChannel[str], outgoing: trio.MemorySendChannel[str]
    ) -> None:
        self._incoming = incoming
        self._outgoing = outgoing

    async def send_message(self, message: str) -> None:
        await self._outgoing.send(message)

    async def get_message(self) -> str:
        return await self._incoming.receive()


class FakeChannel:
    """The server's side of the channel (see the module doc)."""

    def __init__(
        self,
        server: FakeServer,
        lead_ms: int | None = None,
        *,
        offers_brief_acks: bool = False,
        acks: bool = True,
        clock_offset_ms: float | None = None,
        transits_ms: list[float] | None = None,
    ) -> None:
        self.server = server
        self.lead_ms = lead_ms  # said in the welcome (a server that sends jobs ahead)
        self.offers_brief_acks = offers_brief_acks  # said in the welcome
        self.acks = acks  # False: results are recorded, never acknowledged (a stuck server)
        # With an offset, `jobs` messages say `sent_at`: this server's clock (Trio's + the
        # offset) when they left, each the next of `transits_ms` before it arrives (here, now).
        self.clock_offset_ms = clock_offset_ms
        self.transits_ms = list(transits_ms or [])
        self.timed_start = False  # the worker said it starts jobs at `start_in_ms`
        self.brief_acks = False  # the worker said it does not read an ack's `data`
        self.hellos: list[dict[str, Any]] = []
        self.grants: list[int] = []  # `n` of each credit message
        self.credits = 0
        self.unreported: set[str] = set()  # sent on the channel, no result yet
        self.peak_outstanding = 0  # max of credits + unreported, after each hello/credit
        self.outstanding_at_grant: list[int] = []
        self.results: Counter[str] = Counter()
        self.draining = False
        self._changed = trio.Event()

    def add_job(self, **options: Any) -> str:
        execution_id = self.server.add_job(**options)
        self._nudge()
        return execution_id

    @property
    def outstanding(self) -> int:
        return self.credits + len(self.unreported)

    def _nudge(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _granted(self) -> None:
        self.outstanding_at_grant.append(self.outstanding)
        self.peak_outstanding = max(self.peak_outstanding, self.outstanding)
        self._nudge()

    @asynccontextmanager
    async def open(self, settings: WorkerSettings) -> AsyncIterator[FakeWebSocket]:
        to_worker, worker_in = trio.open_memory_channel[str](1000)
        worker_out, from_worker = trio.open_memory_channel[str](1000)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve, to_worker, from_worker)
            yield FakeWebSocket(worker_in, worker_out)
            nursery.cancel_scope.cancel()

    async def _serve(
        self, to_worker: trio.MemorySendChannel[str], from_worker: trio.MemoryReceiveChannel[str]
    ) -> None:
        async def send(message: dict[str, Any]) -> None:
            await to_worker.send(json.dumps(message))

        hello = json.loads(await from_worker.receive())
        assert hello["type"] == "hello"
        self.hellos.append(hello)
        self.draining = False
        self.credits = hello["credits"]
        self._granted()
        welcome: dict[str, Any] = {"type": "welcome", "heartbeat_seconds": HEARTBEAT_SECONDS}
        if self.lead_ms is not None:
            welcome["lead_ms"] = self.lead_ms
        if self.offers_brief_acks:
            welcome["brief_acks"] = True
        await send(welcome)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._dispatch, send)
            async for text in from_worker:
                await self._on_message(json.loads(text), send)

    async def _dispatch(self, send: Any) -> None:
        while True:
            queue = self.server.queue
            if self.credits > 0 and queue and not self.draining:
                jobs = [queue.popleft() for _ in range(min(self.credits, len(queue)))]
                self.credits -= len(jobs)
                self.unreported.update(job["execution_id"] for job in jobs)
                message: dict[str, Any] = {"type": "jobs", "jobs": jobs}
                if self.clock_offset_ms is not None:
                    transit = self.transits_ms.pop(0) if self.transits_ms else 0.0
                    now_ms = trio.current_time() * 1000 + self.clock_offset_ms
                    message["sent_at"] = now_ms - transit
                await send(message)
            else:
                await self._changed.wait()

    async def _on_message(self, message: dict[str, Any], send: Any) -> None:
        kind = message["type"]
        if kind == "credit":
            self.grants.append(message["n"])
            self.credits += message["n"]
            self._granted()
        elif kind == "results":
            acks = []
            for item in message["results"]:
                execution_id = item.pop("execution_id")
                self.results[execution_id] += 1
                self.server.results[execution_id] = item
                self.unreported.discard(execution_id)
                acks.append({"execution_id": execution_id, "success": True})
            if self.acks:
                await send({"type": "acks", "results": acks})
            await self._maybe_drained(send)
        elif kind == "heartbeat":
            acks = [
                {"execution_id": i, "success": True, "lease_expires_at": "2026-01-15T09:01:00Z"}
                for i in message["execution_ids"]
            ]
            await send({"type": "heartbeat_acks", "results": acks})
        elif kind == "drain":
            self.draining = True
            await self._maybe_drained(send)
        elif kind == "ping":
            await send({"type": "pong"})
        elif kind == "timed_start":
            self.timed_start = True
        elif kind == "brief_acks":
            self.brief_acks = True
        self._nudge()
        self.server._notify()  # wakes `FakeServer.wait_for`

    async def _maybe_drained(self, send: Any) -> None:
        if self.draining and not self.unreported:
            await send({"type": "drained"})
